"""Feed-forward modelling of unseen images (MIL Sec. 5.2, Table 3, Fig. 6).

A hyper-GAN trained over a data set emits a SinGAN for an image it never saw in one forward
pass. Whether that generator is *for that image* is the question :func:`conditioning_gap`
answers: for each test image, the SWD of its own feed-forward samples against it, next to the
SWD against it of samples generated from the *other* test images' embeddings. A gap (other −
own) above 0 means the model reads its input; about 0 means it emits the same family for
everything (see also :mod:`mil_core.novelty`, which says when an input is far from the training
images).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from .errors import ConfigError
from .metrics.swd import swd_per_sample
from .models.hypergan import HyperGAN

__all__ = ["conditioning_gap"]


def conditioning_gap(model: HyperGAN, images: Sequence[torch.Tensor], n_samples: int = 4,
                     seed: int = 0) -> pd.DataFrame:
    """One row per image: ``own`` (SWD×1e3 of its samples against it), ``others`` (the mean
    over the other images' samples against it), ``gap`` = others − own, and its ``novelty``
    score when the model has training embeddings. Needs at least 2 images."""
    if len(images) < 2:
        raise ConfigError(f"conditioning_gap needs at least 2 images, got {len(images)}")
    samples = model.generate(images, n_samples, generator=torch.Generator().manual_seed(seed))
    reals = model.pyramid(images)[model.n_trained - 1]                  # (N, 3, H, W)
    n = len(images)
    scores = model.novelty_scores(images) if model.novelty is not None else None
    rows = []
    for i in range(n):
        swd = [swd_per_sample(reals[i], samples[j])["mean"] for j in range(n)]
        others = sum(swd[j] for j in range(n) if j != i) / (n - 1)
        row = {"image": i, "own": swd[i], "others": others, "gap": others - swd[i]}
        if scores is not None:
            row["novelty"] = float(scores[i])
        rows.append(row)
    return pd.DataFrame(rows)
