"""MIL's failure ablations as one experiment (Sec. 4.2, Appendix A; notebooks 04 and 05).

The paper defends two design choices by what goes wrong without them: one ordinary critic for
every image lets patches leak between images (Prop. 2), and one feature extractor shared by the
hyper-generator and the hyper-critic has degenerate equilibria with a zero embedding (Props.
3–4). Every variant here is the *same* hyper-GAN (:class:`~mil_core.models.HyperGANConfig`) in
the mini-batch regime, trained on the same images with the same seed and budget as the proposed
model; only the field named in :data:`VARIANTS` changes.

:func:`train_variant` trains one (variant, seed) and measures it after every scale — leakage of
its samples with the real images' floor beside it (:mod:`mil_core.metrics.leakage`), input
sensitivity and embedding norms (:mod:`mil_core.collapse`) — and once more at the end, with the
mismatch test of Prop. 2 (:mod:`mil_core.mismatch`). :func:`seed_summary` gives mean and 95 %
t-intervals over seeds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
import torch

from .collapse import embedding_norms, image_spread, input_sensitivity
from .errors import ConfigError
from .metrics.leakage import Leakage, leakage, leakage_floor
from .mismatch import mismatch_gap, mismatch_losses
from .models.hypergan import HyperGAN, HyperGANConfig
from .models.hypergan_train import train_hypergan
from .profiles import Profile, get_profile

__all__ = ["ABLATION_IMAGES", "VARIANTS", "PROPOSED", "AblationRun", "variant_config",
           "train_variant", "seed_summary"]

# colour photos of the bundled collection whose palettes differ (mean RGB in [-1, 1]: near
# black; pale pink and blue; saturated red-orange; bright and blue-white), so a leaked patch
# shows by its colour alone
ABLATION_IMAGES = ("hubble_deep_field", "immunohistochemistry", "retina", "china")

PROPOSED = "hyper-critic"
VARIANTS: dict[str, dict[str, str]] = {
    PROPOSED: {},                                            # MIL: separate hyper-networks
    "shared critic": {"discriminator": "shared"},            # Prop. 2
    "shared extractor, Case 1": {"extractor": "shared-both"},   # Props. 3–4: both players
    "shared extractor, Case 2": {"extractor": "shared-g"},      # only the generator
}


@dataclass
class AblationRun:
    """One trained (variant, seed): the model, rows measured after each scale, final numbers."""
    variant: str
    seed: int
    model: HyperGAN
    per_scale: list[dict[str, Any]] = field(default_factory=list)  # one row per finished scale
    final: dict[str, Any] = field(default_factory=dict)            # measured after training
    leakage: Leakage | None = None                                 # final leakage (its matrix)
    mismatch: torch.Tensor | None = None                           # (N, N) mismatch losses
    seconds: float = 0.0                                           # training wall time


def variant_config(profile: str | Profile, variant: str, n_images: int,
                   **overrides: Any) -> HyperGANConfig:
    """The mini-batch config of ``profile`` with ``variant``'s field (:data:`VARIANTS`) and the
    profile's ``gan.ablation_iters_per_scale`` steps per scale."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation variant {variant!r}; choose one of "
                          f"{', '.join(VARIANTS)}")
    prof = get_profile(profile)
    fields = {"iters_per_scale": prof.gan.ablation_iters_per_scale, **VARIANTS[variant],
              **overrides}
    return HyperGANConfig.from_profile(prof, "minibatch", n_images=n_images, **fields)


def _measure(model: HyperGAN, images: Sequence[torch.Tensor], scale: int, n_samples: int,
             seed: int) -> tuple[dict[str, Any], Leakage]:
    reals = list(model.pyramid(images)[scale])
    samples = model.generate(images, n_samples, generator=torch.Generator().manual_seed(seed))
    leak = leakage(list(samples), reals, generator=torch.Generator().manual_seed(seed + 1))
    floor = leakage_floor(reals, generator=torch.Generator().manual_seed(seed + 2))
    row = {"scale": scale, "leakage": leak.mean, "ci low": leak.ci[0], "ci high": leak.ci[1],
           "floor": floor.mean, "chance": leak.chance,
           "input sensitivity": input_sensitivity(model, images, min(4, n_samples),
                                                  torch.Generator().manual_seed(seed + 3)),
           "image spread": image_spread(model, images, scale),
           "embed norm": float(embedding_norms(model, images).mean())}
    return row, leak


def train_variant(images: Sequence[torch.Tensor], profile: str | Profile, variant: str,
                  seed: int = 0, *, n_samples: int = 8, device: str | torch.device | None = None,
                  **overrides: Any) -> AblationRun:
    """Train ``variant`` on ``images`` (all in every step) with ``seed`` and measure it.

    After every scale: leakage of ``n_samples`` samples per image (with its bootstrap CI, the
    real images' floor and chance), input sensitivity, the images' spread at that scale and the
    mean embedding norm. At the end also the mismatch losses and their gap. ``overrides``
    replace :class:`HyperGANConfig` fields (e.g. ``iters_per_scale``).
    """
    if len(images) < 2:
        raise ConfigError(f"the ablations need at least 2 images, got {len(images)}")
    cfg = variant_config(profile, variant, len(images), **overrides)
    run = AblationRun(variant, int(seed), None)                    # type: ignore[arg-type]

    def after_scale(model: HyperGAN, n: int) -> None:
        row, _ = _measure(model, images, n, n_samples, 1000 * int(seed) + n)
        run.per_scale.append({"variant": variant, "seed": int(seed), **row})

    t0 = time.perf_counter()
    run.model = train_hypergan(images, cfg, seed=seed, device=device, show_progress=False,
                               scale_callback=after_scale)
    run.seconds = time.perf_counter() - t0
    last = run.model.n_trained - 1
    row, run.leakage = _measure(run.model, images, last, n_samples, 1000 * int(seed) + 999)
    run.mismatch = mismatch_losses(run.model, images, n_samples,
                                   generator=torch.Generator().manual_seed(int(seed) + 7))
    run.final = {"variant": variant, "seed": int(seed), **row,
                 "mismatch gap": mismatch_gap(run.mismatch), "minutes": run.seconds / 60}
    return run


def seed_summary(rows: pd.DataFrame, columns: Sequence[str], by: str = "variant"
                 ) -> pd.DataFrame:
    """Mean, and the half-width of a 95 % t-interval over seeds, of ``columns`` per ``by``
    (NaN half-width for a single seed). Keeps the order in which groups first appear."""
    from scipy.stats import t

    out = []
    for key, grp in rows.groupby(by, sort=False):
        n = len(grp)
        rec: dict[str, Any] = {by: key, "seeds": n}
        for c in columns:
            m, sd = float(grp[c].mean()), float(grp[c].std(ddof=1)) if n > 1 else math.nan
            rec[c] = m
            rec[f"{c} ±"] = float(t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
        out.append(rec)
    return pd.DataFrame(out).set_index(by)
