"""Measures of the degenerate equilibria of a shared feature extractor (MIL Props. 3–4).

When one encoder feeds both the hyper-generator and the hyper-critic (``HyperGANConfig.extractor``
``"shared-both"`` or ``"shared-g"``), the paper shows training equilibria where the embedding is
zero and every image gets the same generator: the model ignores its input. Two symptoms, both
measured on a trained model and comparable with the proposed model trained the same way:

- the **embedding norm** ``‖e(I)‖`` (logged during training as ``history[...]["embed_norm"]``;
  :func:`embedding_norms` for given images);
- the **input sensitivity**: how different two images' samples are *under the same noise*
  (:func:`input_sensitivity`, the mean over image pairs and samples of the per-pixel RMS
  difference, in [-1, 1] units). A model that ignores its input scores 0; the real images'
  own RMS difference is the natural upper reference (:func:`image_spread`).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import ConfigError
from .models.hypergan import HyperGAN

__all__ = ["embedding_norms", "input_sensitivity", "image_spread"]


def embedding_norms(model: HyperGAN, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(N,)``: ``‖e(I)‖`` of each image (evaluation mode)."""
    return model.embed(images).norm(dim=1).cpu()


def _pairwise_rms(x: torch.Tensor) -> float:
    """Mean over pairs i < j of the RMS difference of ``x[i]`` and ``x[j]``; x (N, ...)."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    d = [(flat[i] - flat[j]).pow(2).mean().sqrt() for i in range(n) for j in range(i + 1, n)]
    return float(torch.stack(d).mean())


def input_sensitivity(model: HyperGAN, images: Sequence[torch.Tensor], n_samples: int = 4,
                      generator: torch.Generator | None = None) -> float:
    """Mean RMS difference between different images' samples drawn with the *same* noise maps
    (sample ``k`` of every image uses noise ``k``). 0: the generator ignores its input."""
    if len(images) < 2:
        raise ConfigError(f"input_sensitivity needs at least 2 images, got {len(images)}")
    model._require_trained()
    e = model.embed(images)
    weights = model.generator_weights(e)
    shapes = model.shapes[:model.n_trained]
    b = e.shape[0]
    noise = [torch.randn(n_samples, 3, *s, generator=generator).repeat(b, 1, 1, 1)
             for s in shapes]                                  # image-major, same per image
    with torch.no_grad():
        out = model.run_scales(weights, n_samples, shapes=shapes, noise=noise).clamp(-1, 1)
    out = out.reshape(b, n_samples, *out.shape[1:]).cpu()      # (N, k, 3, H, W)
    return sum(_pairwise_rms(out[:, k]) for k in range(n_samples)) / n_samples


def image_spread(model: HyperGAN, images: Sequence[torch.Tensor], scale: int = -1) -> float:
    """The same RMS difference between the real images at ``scale`` (default: the finest): the
    reference a generator that follows its input perfectly would show."""
    return _pairwise_rms(model.pyramid(images)[scale])
