"""The papers' reported numbers, in one place, for the notebooks' comparison tables.

Every notebook prints the paper's side of its table from here (never typed into a cell), so a
number is corrected once. Sources: Bensadoun et al., *Meta Internal Learning*, NeurIPS 2021
(Tables 1–3, Appendix C); Zhou et al., *Do Deep Networks Transfer Invariances Across Classes?*,
ICLR 2022 (Sec. 5). Paper numbers are Places-50 / LSUN-50 at 250 px on a GPU; SIFID uses
Inception-v3 features, which this project can compute only with a local weights file.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["MIL_TABLE1", "MIL_TABLE2", "MIL_DATASET_SIZE", "MIL_FROZEN_BACKBONE",
           "MIL_MEMORY_GB", "GIT_CIFAR_LT_ERROR", "mil_table1", "mil_table2", "mil_appendix_c"]

# MIL Table 1: method -> (SIFID, mSIFID, diversity, minutes per image) on Places-50 and LSUN-50.
MIL_TABLE1: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "Places-50": {"SinGAN": (0.09, 0.15, 0.52, 60), "ConSinGAN": (0.06, 0.08, 0.50, 20),
                  "HP-VAE-GAN": (0.17, 0.27, 0.62, 60), "MIL single": (0.03, 0.06, 0.57, 30),
                  "MIL dataset": (0.05, 0.07, 0.50, 5)},
    "LSUN-50": {"SinGAN": (0.11, 0.20, 0.60, 60), "ConSinGAN": (0.08, 0.13, 0.55, 20),
                "HP-VAE-GAN": (0.40, 0.62, 0.78, 60), "MIL single": (0.11, 0.19, 0.65, 30),
                "MIL dataset": (0.11, 0.16, 0.48, 5)},
}

# MIL Table 2 (single mini-batch of 1–5 Places-50 images): ranges over batch sizes.
MIL_TABLE2 = {"SIFID": (0.03, 0.04), "mSIFID": (0.07, 0.08), "diversity": (0.66, 0.73)}

# MIL Table 3 (Valley subsets): size -> (train SIFID, mSIFID, diversity, min/image,
# test SIFID, test mSIFID, test diversity).
MIL_DATASET_SIZE = {"V500": (0.04, 0.07, 0.51, 4.0, 0.47, 2.47, 0.34),
                    "V2500": (0.05, 0.08, 0.52, 3.5, 0.43, 1.86, 0.37),
                    "V5000": (0.05, 0.08, 0.51, 3.0, 0.41, 1.52, 0.40)}

# MIL Appendix C (Places-50): (SIFID, diversity) with a frozen ImageNet ResNet-34 and 1/3/5-layer
# heads, against the end-to-end model of Table 1 (MIL dataset: 0.05, 0.50).
MIL_FROZEN_BACKBONE = {"end-to-end, 1-layer": (0.05, 0.50), "frozen, 1-layer": (0.26, 0.79),
                       "frozen, 3-layer": (0.14, 0.63), "frozen, 5-layer": (0.17, 0.63)}

# MIL Appendix B.5: GPU memory in GB at 256 px (training on one image, on a data set; test time).
MIL_MEMORY_GB = {"train, single image": 11.0, "train, data set": 22.0, "inference": 5.0}

# GIT (Sec. 5): CIFAR-LT (imbalance 100) top-1 error with CE+DRS+GIT, percent.
GIT_CIFAR_LT_ERROR = {"CIFAR-10-LT": 21.24, "CIFAR-100-LT": 55.65}


def mil_table1(dataset: str = "Places-50", methods: tuple[str, ...] | None = None
               ) -> pd.DataFrame:
    """MIL Table 1 for ``dataset`` as a frame (rows: methods; SIFID, mSIFID, diversity,
    min/image), optionally restricted to ``methods`` in that order."""
    rows = MIL_TABLE1[dataset]
    names = list(rows) if methods is None else list(methods)
    return pd.DataFrame([rows[m] for m in names], index=names,
                        columns=["SIFID", "mSIFID", "diversity", "min/image"])


def mil_table2() -> pd.DataFrame:
    """MIL Table 1's single-image row beside Table 2's mini-batch ranges (Places-50)."""
    single = MIL_TABLE1["Places-50"]["MIL single"]
    lo_hi = {k: f"{a:.2f}–{b:.2f}" for k, (a, b) in MIL_TABLE2.items()}
    return pd.DataFrame({"SIFID": [f"{single[0]:.2f}", lo_hi["SIFID"]],
                         "mSIFID": [f"{single[1]:.2f}", lo_hi["mSIFID"]],
                         "diversity": [f"{single[2]:.2f}", lo_hi["diversity"]],
                         "min/image": [f"{single[3]:g}", "—"]},
                        index=["MIL single image", "MIL mini-batch (1–5 images)"])


def mil_appendix_c() -> pd.DataFrame:
    """MIL Appendix C (Places-50): SIFID and diversity of the frozen-backbone heads beside the
    end-to-end model (rows named like :func:`mil_core.heads.appendix_c_variants`)."""
    return pd.DataFrame(list(MIL_FROZEN_BACKBONE.values()), index=list(MIL_FROZEN_BACKBONE),
                        columns=["SIFID", "diversity"])
