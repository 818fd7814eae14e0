"""One row of the papers' tables for one image: SWD, layout, diversity and, when possible, SIFID.

MIL's Table 1–2 (REFERENCE §4–§5) report per image the SIFID of the best sample (min over
samples), the mean SIFID (mSIFID) and the diversity, then average over images. The notebooks
compare every model (SinGAN, ConSinGAN, the hyper-GAN) with this one function, so the numbers in
a table are always computed the same way.

SWD follows the mSIFID protocol: each sample against the real image with every 7×7 patch
(:func:`~mil_core.metrics.swd.swd_per_sample`, exact 0 for an identical copy), then the mean over
samples. So a model with 20 samples per image and a published sample (one per image) stand in
the same table, measured the same way. ``layout`` (:func:`~mil_core.metrics.layout.layout_per_sample`,
the mean over samples) sees what patch statistics cannot: whether a sample keeps its image's
coarse arrangement.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import torch

from .diversity import diversity
from .layout import layout_per_sample
from .sifid import sifid_many
from .swd import swd_per_sample

__all__ = ["image_metrics", "sample_table"]


def image_metrics(real: torch.Tensor, samples: torch.Tensor,
                  diversity_samples: torch.Tensor | None = None, *, inception: Any = None,
                  seed: int = 0) -> dict[str, float]:
    """Metrics of ``samples`` (N, 3, H, W) generated for ``real`` (3, H, W), all in [-1, 1].

    Returns ``{"SWD ×1e3", "layout", "diversity"}`` plus ``{"SIFID", "mSIFID"}`` (min / mean over samples)
    when an ``inception`` feature extractor is given. ``SWD ×1e3`` is the mean over samples of
    each sample's SWD against ``real`` (directions from a generator seeded by ``seed``, shared by
    all samples). ``diversity_samples`` (default: ``samples``) may be a larger set, as in the
    paper (150 samples); diversity needs at least two samples and is NaN for one.
    """
    div = samples if diversity_samples is None else diversity_samples
    sw = swd_per_sample(real, samples, generator=torch.Generator().manual_seed(seed))
    row = {"SWD ×1e3": float(sw["mean"]),
           "layout": float(layout_per_sample(real, samples)["mean"]),
           "diversity": float(diversity(div, real)) if len(div) > 1 else float("nan")}
    if inception is not None:
        scores = sifid_many(real, list(samples), inception)
        row["SIFID"], row["mSIFID"] = min(scores), sum(scores) / len(scores)
    return row


def sample_table(models: Mapping[tuple[str, str], Any], n_samples: int,
                 n_diversity: int | None = None, *, inception: Any = None,
                 seed: int = 0) -> pd.DataFrame:
    """One row per ``(image, method)`` of single-image models (SinGAN, ConSinGAN: anything with
    ``sample(n, generator=)``, ``reals`` and ``timings``): :func:`image_metrics` of
    ``n_samples`` samples against the model's finest real image (``n_diversity`` samples for
    diversity, default ``n_samples``), plus minutes per image.

    Samples come from ``torch.Generator().manual_seed(seed)``, a fresh one per model, so every
    model is measured on the same draws of its own noise.
    """
    rows = []
    for (image, method), model in models.items():
        gen = torch.Generator().manual_seed(seed)
        real = model.reals[-1]                                                # (3, H, W)
        fakes = model.sample(n_samples, generator=gen)                        # (N, 3, H, W)
        div = model.sample(n_diversity, generator=gen) if n_diversity else None
        rows.append({"image": image, "method": method,
                     **image_metrics(real, fakes, div, inception=inception, seed=seed),
                     "min/image": model.timings["total_seconds"] / 60})
    return pd.DataFrame(rows)
