"""One row of the papers' tables for one image: SWD, diversity and, when possible, SIFID.

MIL's Table 1–2 (REFERENCE §4–§5) report per image the SIFID of the best sample (min over
samples), the mean SIFID (mSIFID) and the diversity, then average over images. The notebooks
compare every model (SinGAN, ConSinGAN, the hyper-GAN) with this one function, so the numbers in
a table are always computed the same way.
"""
from __future__ import annotations

from typing import Any

import torch

from .diversity import diversity
from .sifid import sifid_many
from .swd import swd

__all__ = ["image_metrics"]


def image_metrics(real: torch.Tensor, samples: torch.Tensor,
                  diversity_samples: torch.Tensor | None = None, *, inception: Any = None,
                  seed: int = 0) -> dict[str, float]:
    """Metrics of ``samples`` (N, 3, H, W) generated for ``real`` (3, H, W), all in [-1, 1].

    Returns ``{"SWD ×1e3", "diversity"}`` plus ``{"SIFID", "mSIFID"}`` (min / mean over samples)
    when an ``inception`` feature extractor is given. ``diversity_samples`` (default: ``samples``)
    may be a larger set, as in the paper (150 samples). SWD uses a generator seeded by ``seed``.
    """
    div = samples if diversity_samples is None else diversity_samples
    row = {"SWD ×1e3": float(swd([real], list(samples),
                                 generator=torch.Generator().manual_seed(seed))["mean"]),
           "diversity": float(diversity(div, real))}
    if inception is not None:
        scores = sifid_many(real, list(samples), inception)
        row["SIFID"], row["mSIFID"] = min(scores), sum(scores) / len(scores)
    return row
