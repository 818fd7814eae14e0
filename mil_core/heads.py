"""The projection-head study: MIL's main limitation (Sec. 6) measured and pushed.

MIL's heads are one ``Linear(512, numel)`` per generated tensor — 58.6 M parameters per scale,
~432 M for the generator — which the paper says "affect convergence, runtime and GPU memory
usage". Appendix C tries a frozen ImageNet ResNet-34 with 1-, 3- and 5-layer heads on Places-50
(SIFID 0.26 / 0.14 / 0.17 against 0.05 end-to-end; diversity 0.79 / 0.63 / 0.63 against 0.50).

A :class:`HeadVariant` is one row of that study: a head (depth ``head_layers``, ``head_rank``
for compact heads, :class:`mil_core.models.hypernet.ProjectionHeads`) and an encoder:

- ``"trained"`` — MIL: the encoder trains end to end with the heads;
- ``"frozen"`` — Appendix C's setting with the weights this project can have offline: the
  encoder of a hyper-GAN trained on *another* collection (:func:`train_donor`; the bundled
  photos when the study runs on Places-50), never updated; a user with torchvision's
  ``resnet34`` file passes it as ``encoder_weights`` instead (``norm="batch"``);
- ``"frozen-random"`` — a frozen, randomly initialised encoder: the floor, what the heads can do
  with features nobody trained.

:func:`run_study` trains one hyper-GAN per variant on the same images, seed and budget and
:func:`quality_rows` measures them with the rulers of notebook 03 (SWD per sample, layout,
diversity). :func:`rank_for_fraction` picks the rank whose heads have at most a given fraction
of the linear heads' parameters (the issue's goal: equal quality at ≤ 1/8).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from . import metrics as M
from .errors import ConfigError
from .models.hypergan import HyperGAN, HyperGANConfig
from .models.hypergan_train import train_hypergan
from .models.hypernet import PrimarySpec, ProjectionHeads

__all__ = ["ENCODERS", "HeadVariant", "appendix_c_variants", "compact_variants",
           "rank_for_fraction", "variant_config", "train_donor", "run_study", "quality_rows",
           "smallest_matching", "memory_rows"]

ENCODERS = ("trained", "frozen", "frozen-random")


@dataclass(frozen=True)
class HeadVariant:
    """One row of the study."""
    name: str                  # row label, e.g. "frozen, 3-layer"
    head_layers: int = 1       # Linear layers per head (1: MIL; 3, 5: Appendix C)
    head_rank: int = 0         # 0: full heads; r: rank-r compact heads
    encoder: str = "trained"   # "trained" (end to end), "frozen" (donor's), "frozen-random"
    fan_in_scale: bool = True  # rank-r heads: Adam's step matched to MIL's (ProjectionHeads)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"HeadVariant.encoder must be one of {', '.join(ENCODERS)}, got "
                              f"{self.encoder!r}")


def appendix_c_variants(depths: Sequence[int] = (1, 3, 5), *, trained_depths: Sequence[int] = (1,),
                        random_floor: bool = True) -> list[HeadVariant]:
    """Appendix C's grid: end-to-end heads of ``trained_depths`` (MIL: 1), frozen-encoder heads
    of every depth, and (``random_floor``) a frozen random encoder with 1-layer heads."""
    rows = [HeadVariant(f"end-to-end, {d}-layer", d) for d in trained_depths]
    rows += [HeadVariant(f"frozen, {d}-layer", d, encoder="frozen") for d in depths]
    if random_floor:
        rows.append(HeadVariant("frozen random, 1-layer", 1, encoder="frozen-random"))
    return rows


def rank_for_fraction(spec: PrimarySpec, embed_dim: int, fraction: float) -> int:
    """The largest rank whose heads have at most ``fraction`` of the linear heads' parameters
    (at least 1). E.g. ``1/8`` at MIL's size (64 channels, D = 512): rank 62."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"rank_for_fraction: fraction must be in (0, 1], got {fraction!r}")
    budget = fraction * ProjectionHeads.count(spec, embed_dim)
    n = spec.numel()
    return max(1, int((budget - n) // (embed_dim + n)))     # r·(D + N) + N ≤ budget


def compact_variants(cfg: HyperGANConfig, fractions: Sequence[float]) -> list[HeadVariant]:
    """End-to-end rank-r heads at each parameter ``fraction`` of ``cfg``'s linear heads (a rank
    that two fractions share at small sizes appears once, under the larger fraction)."""
    rows: dict[int, HeadVariant] = {}
    for f in fractions:
        r = rank_for_fraction(cfg.g_spec, cfg.embed_dim, f)
        rows.setdefault(r, HeadVariant(f"rank {r} (≤ 1/{round(1 / f)})", 1, r))
    return list(rows.values())


def variant_config(base: HyperGANConfig, v: HeadVariant, encoder_weights: str | Path | None
                   ) -> HyperGANConfig:
    """``base`` with ``v``'s head and encoder (``encoder_weights``: the donor's file, needed by
    ``encoder="frozen"``)."""
    if v.encoder == "frozen" and not encoder_weights:
        raise ConfigError(f"variant {v.name!r} freezes a transferred encoder: pass "
                          "encoder_weights (a hyper-GAN checkpoint from train_donor, or a "
                          "torchvision-format ResNet file)")
    return dataclasses.replace(base, head_layers=v.head_layers, head_rank=v.head_rank,
                               head_fan_in_scale=v.fan_in_scale,
                               encoder_frozen=v.encoder != "trained",
                               encoder_weights=str(encoder_weights) if v.encoder == "frozen"
                               else "")


def train_donor(images: Sequence[torch.Tensor], base: HyperGANConfig, path: str | Path, *,
                seed: int = 0, device: str | torch.device | None = None) -> HyperGAN:
    """Train MIL's end-to-end hyper-GAN on another collection ``images`` and save it to
    ``path``: its encoder is the frozen encoder of the ``"frozen"`` rows."""
    cfg = dataclasses.replace(base, batch_size=min(base.batch_size, len(images)))
    donor = train_hypergan(list(images), cfg, seed=seed, device=device, show_progress=False)
    donor.save(path)
    return donor


def run_study(images: Sequence[torch.Tensor], base: HyperGANConfig,
              variants: Sequence[HeadVariant], *, encoder_weights: str | Path | None = None,
              seed: int = 0, device: str | torch.device | None = None, log: bool = True,
              coarse: dict[str, list[float]] | None = None) -> dict[str, HyperGAN]:
    """One hyper-GAN per variant on the same ``images``, ``seed`` and budget; one printed line
    per run (minutes, final reconstruction loss, G head parameters per scale).

    ``coarse``: a dict that receives, per variant, the scale-0 reconstruction MSE after each
    scale — how far the coarsest scale drifts while later scales train (its head is frozen, the
    encoder is not, unless it is frozen too; REFERENCE §4)."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"run_study: variant names must be unique, got {names}")
    models = {}
    for v in variants:
        cfg = variant_config(base, v, encoder_weights)
        start = time.perf_counter()
        curve: list[float] = []

        def on_scale(m: HyperGAN, n: int) -> None:
            curve.append(_rec_mse(m, images, 0))

        if coarse is not None:
            coarse[v.name] = curve
        models[v.name] = train_hypergan(list(images), cfg, seed=seed, device=device,
                                        show_progress=False,
                                        scale_callback=on_scale if coarse is not None else None)
        if log:
            m = models[v.name]
            print(f"{v.name:>26}: {(time.perf_counter() - start) / 60:.2f} min, finest rec_loss "
                  f"{m.history[-1]['rec_loss']:.4f}, G head {m.head_parameters()[-1]:,} "
                  "parameters per scale", flush=True)
    return models


def quality_rows(models: dict[str, HyperGAN], images: Sequence[torch.Tensor], *,
                 n_samples: int, n_diversity: int, seed: int = 0,
                 inception: object = None) -> pd.DataFrame:
    """Per variant, the mean over ``images`` of SWD ×1e3 (every 7×7 patch, per sample), layout
    and diversity, the MSE of the fixed-noise reconstruction against the image at the finest
    scale and at scale 0 (does each image's generated GAN fit *that* image — samples' patch
    statistics alone cannot tell) (:func:`mil_core.metrics.image_metrics`; SIFID too with an
    ``inception``), the training minutes per image and
    the G head parameters per scale, with their fraction of the first variant's."""
    rows = []
    for name, model in models.items():
        reals = model.pyramid(list(images))[-1]
        g = torch.Generator().manual_seed(seed)
        fakes = model.generate(list(images), n_samples, generator=g)
        div = model.generate(list(images), n_diversity, generator=g)
        per = pd.DataFrame([M.image_metrics(reals[k], fakes[k], div[k], seed=seed,
                                              inception=inception)
                            for k in range(len(reals))]).mean(numeric_only=True)
        rows.append({"variant": name, **per.to_dict(),
                     "rec MSE": _rec_mse(model, images, model.n_trained - 1),
                     "scale-0 rec MSE": _rec_mse(model, images, 0),
                     "min/image": model.timings["minutes_per_image"],
                     "G head params/scale": model.head_parameters()[-1],
                     "encoder": ("frozen" if model.config.encoder_frozen else "trained")})
    table = pd.DataFrame(rows).set_index("variant")
    table["params vs first"] = table["G head params/scale"] / table["G head params/scale"].iloc[0]
    return table


def _rec_mse(model: HyperGAN, images: Sequence[torch.Tensor], scale: int) -> float:
    """Mean squared error of the reconstructions of ``images`` at ``scale``."""
    real = model.pyramid(list(images))[scale]
    return float((model.reconstruct(list(images), scale=scale).cpu() - real).pow(2).mean())


def smallest_matching(table: pd.DataFrame, reference: str, tolerance: float = 0.10,
                      columns: Sequence[str] = ("SWD ×1e3", "layout")) -> str | None:
    """The variant with the fewest head parameters whose every ``columns`` value (lower is
    better) is within ``tolerance`` of ``reference``'s, or None when none is; ``reference``
    itself qualifies, so a None means the table has no such row at all."""
    if reference not in table.index:
        raise ConfigError(f"smallest_matching: no row {reference!r}; rows are "
                          f"{list(table.index)}")
    ok = pd.Series(True, index=table.index)
    for c in columns:
        ok &= table[c] <= table.loc[reference, c] * (1 + tolerance)
    if not ok.any():
        return None
    return str(table[ok]["G head params/scale"].idxmin())


def memory_rows(base: HyperGANConfig, variants: Sequence[HeadVariant], *,
                encoder_weights: str | Path | None = None, device: str | torch.device = "cpu",
                paper: HyperGANConfig | None = None) -> pd.DataFrame:
    """Peak memory of each variant (:func:`mil_core.memory.peak_memory`, a fresh process per
    phase): training step and inference at ``base``'s sizes, with the process's floor (torch
    and the images) subtracted in the ``above floor`` columns; the closed-form MB of
    parameters, gradients and Adam moments; and the same closed form at ``paper``'s sizes
    (e.g. the ``paper`` profile's config) when given. One row per variant."""
    from . import memory as MEM
    floor = MEM.peak_memory(base, "baseline", device=device)
    rows = []
    for v in variants:
        cfg = variant_config(base, v, encoder_weights)
        train = MEM.peak_memory(cfg, "train", device=device)
        infer = MEM.peak_memory(cfg, "infer", device=device)
        row = {"variant": v.name, "encoder": "trained" if v.encoder == "trained" else "frozen",
               "G head params/scale": MEM.head_parameter_counts(cfg)["G head per scale"],
               "train peak MB": train["process peak MB"],
               "infer peak MB": infer["process peak MB"],
               "train above floor MB": train["process peak MB"] - floor["process peak MB"],
               "infer above floor MB": infer["process peak MB"] - floor["process peak MB"],
               **{f"closed form {k}": x for k, x in MEM.training_state_bytes(cfg).items()}}
        if "GPU peak MB" in train:
            row["train GPU MB"], row["infer GPU MB"] = train["GPU peak MB"], infer["GPU peak MB"]
        if paper is not None:
            rank = _same_fraction_rank(cfg, paper) if v.head_rank else 0
            pcfg = dataclasses.replace(paper, head_layers=v.head_layers, head_rank=rank,
                                       encoder_frozen=v.encoder != "trained")
            st = MEM.training_state_bytes(pcfg)
            row["paper size: G head params/scale"] = MEM.head_parameter_counts(pcfg)[
                "G head per scale"]
            row["paper size: state GB"] = (st["parameters MB"] + st["grad + Adam MB"]) / 1024
        rows.append(row)
    out = pd.DataFrame(rows).set_index("variant")
    out.attrs["floor MB"] = floor["process peak MB"]
    return out


def _same_fraction_rank(cfg: HyperGANConfig, paper: HyperGANConfig) -> int:
    """The rank at ``paper``'s sizes whose heads keep ``cfg``'s fraction of the linear heads."""
    frac = (ProjectionHeads.count(cfg.g_spec, cfg.embed_dim, 1, cfg.head_rank)
            / ProjectionHeads.count(cfg.g_spec, cfg.embed_dim))
    return rank_for_fraction(paper.g_spec, paper.embed_dim, frac)
