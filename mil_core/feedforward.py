"""Feed-forward modelling of unseen images (MIL Sec. 5.2, Table 3, Fig. 6).

A hyper-GAN trained over a data set emits a SinGAN for an image it never saw in one forward
pass. Whether that generator is *for that image* is the question :func:`conditioning_gap`
answers: for each test image, the SWD of its own feed-forward samples against it, next to the
SWD against it of samples generated from the *other* test images' embeddings. A gap (other −
own) above 0 means the model reads its input; about 0 means it emits the same family for
everything (see also :mod:`mil_core.novelty`, which says when the emitted generator reconstructs
its input far worse than the training images).

The Table 3 analog of notebook 07 uses :func:`held_out_split` (one fixed test set, nested
training sets of growing size N) and :func:`quality_rows` (per image: sample quality,
reconstruction error against a flat grey image, novelty); :func:`cosine_spread` is the symptom
of a model that has stopped reading its inputs — unseen embeddings that all point one way.
"""
from __future__ import annotations

import warnings
from typing import Sequence, TypeVar

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import ConfigError, NoveltyWarning
from .metrics.report import image_metrics
from .metrics.swd import swd_per_sample
from .models.hypergan import HyperGAN

__all__ = ["held_out_split", "quality_rows", "cosine_spread", "conditioning_gap"]

T = TypeVar("T")


def held_out_split(items: Sequence[T], n_test: int, sizes: Sequence[int]
                   ) -> tuple[list[T], dict[int, list[T]]]:
    """``(test, {N: train})``: the *last* ``n_test`` items are the fixed test set; the training
    set of size N is the first N of the rest, so every larger set contains the smaller ones and
    no training set ever touches the test set. ``sizes`` must be increasing."""
    sizes = [int(n) for n in sizes]
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ConfigError(f"n_test must be a positive integer, got {n_test!r}")
    if not sizes or any(n < 1 for n in sizes) or sizes != sorted(set(sizes)):
        raise ConfigError(f"sizes must be increasing positive integers, got {sizes}")
    if n_test + sizes[-1] > len(items):
        raise ConfigError(f"held_out_split: {n_test} test + {sizes[-1]} training images need "
                          f"{n_test + sizes[-1]} items, the collection has {len(items)}; use "
                          "smaller sizes (profile image.feedforward_train_sizes) or more images")
    pool, test = list(items[:len(items) - n_test]), list(items[len(items) - n_test:])
    return test, {n: pool[:n] for n in sizes}


def quality_rows(model: HyperGAN, images: Sequence[torch.Tensor], names: Sequence[str], *,
                 n_samples: int, n_diversity: int, seed: int = 0) -> pd.DataFrame:
    """One row per image modelled feed-forward: ``SWD ×1e3``, ``layout``, ``diversity``
    (:func:`mil_core.metrics.image_metrics`), ``rec MSE`` (the fixed-noise reconstruction at
    the finest scale), ``rec / grey`` (that MSE over the MSE of a flat mid-grey image: 1 or
    more means the reconstruction says nothing about the image) and ``novelty``. Novelty
    warnings are not raised here: the score is a column."""
    if len(images) != len(names):
        raise ConfigError(f"quality_rows: {len(images)} images but {len(names)} names")
    reals = model.pyramid(images)[model.n_trained - 1]                   # (B, 3, H, W)
    g = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoveltyWarning)
        fakes = model.generate(images, n_samples, generator=g)          # (B, n, 3, H, W)
        div = model.generate(images, n_diversity, generator=g) if n_diversity > 1 else fakes
    recs = model.reconstruct(images)                                    # (B, 3, H, W)
    novelty = model.novelty_scores(images) if model.novelty is not None else None
    rows = []
    for k, name in enumerate(names):
        rec = float(F.mse_loss(recs[k], reals[k]))
        grey = float(reals[k].pow(2).mean())                  # a flat image at 0 (mid-grey)
        rows.append({"image": name, **image_metrics(reals[k], fakes[k], div[k], seed=seed),
                     "rec MSE": rec, "rec / grey": rec / max(grey, 1e-12),
                     "novelty": float(novelty[k]) if novelty is not None else float("nan")})
    return pd.DataFrame(rows)


def cosine_spread(embeddings: torch.Tensor) -> float:
    """Mean cosine similarity between distinct rows of ``embeddings`` (B, D), B ≥ 2: near 1
    when the inputs' embeddings all point one way (the model no longer tells them apart)."""
    if embeddings.dim() != 2 or embeddings.shape[0] < 2:
        raise ConfigError(f"cosine_spread needs (B, D) with B >= 2, got {tuple(embeddings.shape)}")
    e = F.normalize(embeddings.detach().float(), dim=1)
    c = e @ e.T                                                          # (B, B)
    b = c.shape[0]
    return float((c.sum() - c.diagonal().sum()) / (b * (b - 1)))


def conditioning_gap(model: HyperGAN, images: Sequence[torch.Tensor], n_samples: int = 4,
                     seed: int = 0) -> pd.DataFrame:
    """One row per image: ``own`` (SWD×1e3 of its samples against it), ``others`` (the mean
    over the other images' samples against it), ``gap`` = others − own, and its ``novelty``
    score when the model has training embeddings. Needs at least 2 images."""
    if len(images) < 2:
        raise ConfigError(f"conditioning_gap needs at least 2 images, got {len(images)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoveltyWarning)
        samples = model.generate(images, n_samples,
                                 generator=torch.Generator().manual_seed(seed))
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
