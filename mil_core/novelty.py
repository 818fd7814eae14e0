"""Does the generator a hyper-GAN emits for an input still model it? (MIL Sec. 5.2, issue 13)

A hyper-GAN trained on a few images will embed *any* image and emit a generator for it; far from
what it learned, the generator stops following the input (a model trained on 10 images can
return the same texture for three unseen ones) and nothing in the output says so.

The **novelty score** asks the one question the model can answer about itself: how well does the
emitted generator reconstruct this input, compared with how well it reconstructs its training
images? Per image, the *reconstruction ratio* is the MSE of the fixed-noise reconstruction (MIL
Eq. 13, the path training optimises with weight α) over the MSE of a flat mid-grey image —
0 is perfect, 1 or more means the reconstruction tells nothing about the image
(:func:`reconstruction_ratio`). The score is that ratio over the 95th percentile of the same
ratio on a reference set: the training images by default (:func:`fit_novelty`, kept with the
model after training), or held-out images like them (:meth:`HyperGAN.calibrate_novelty`). About 1
or below: modelled as well as the reference; :meth:`HyperGAN.generate` warns
(:class:`mil_core.errors.NoveltyWarning`) above :data:`NOVELTY_WARN`.

Why not the distance of the input's embedding to the training embeddings? Notebook 07 measured
it first: unseen embeddings crowd together *between* the training embeddings (mean cosine 0.88
between 9 held-out Places images against 0.61 between the training ones, N = 10), so their
nearest training embedding is nearer than the training images are to one another — every
unseen image scored "like the training set" while half were reconstructed worse than flat grey.
:func:`nearest_embedding_distance` keeps that measure for comparison.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ConfigError

__all__ = ["NoveltyReference", "fit_novelty", "reconstruction_ratio",
           "nearest_embedding_distance", "NOVELTY_WARN"]

NOVELTY_WARN = 2.0   # scores above this warn: reconstructed twice as badly as 95 % of the reference


def reconstruction_ratio(recs: torch.Tensor, reals: torch.Tensor) -> torch.Tensor:
    """``(B,)``: per image, MSE(rec, real) / MSE(flat 0, real), images ``(B, 3, H, W)`` in
    [-1, 1] (0 is mid-grey)."""
    if recs.shape != reals.shape or recs.dim() != 4:
        raise ConfigError(f"reconstruction_ratio: reconstructions {tuple(recs.shape)} and real "
                          f"images {tuple(reals.shape)} must both be (B, 3, H, W)")
    err = (recs.float() - reals.float()).pow(2).flatten(1).mean(1)
    grey = reals.float().pow(2).flatten(1).mean(1)
    return (err / grey.clamp_min(1e-12)).cpu()


@dataclass(frozen=True)
class NoveltyReference:
    """The reference images' reconstruction ratios and the scale that makes scores readable."""
    ratios: torch.Tensor        # (N,) reconstruction ratios of the reference images
    scale: float                # their 95th percentile
    source: str = "training"    # "training" or "held-out" (what the ratios were measured on)

    def score(self, ratios: torch.Tensor) -> torch.Tensor:
        """``(B,)``: reconstruction ratios ``(B,)`` over :attr:`scale`."""
        if ratios.dim() != 1:
            raise ConfigError(f"novelty score: reconstruction ratios must be (B,), got "
                              f"{tuple(ratios.shape)}")
        return ratios.float().cpu() / self.scale


def fit_novelty(ratios: torch.Tensor, source: str = "training") -> NoveltyReference:
    """A :class:`NoveltyReference` from the reconstruction ratios ``(N,)`` of N ≥ 2 reference
    images (:func:`reconstruction_ratio`)."""
    if ratios.dim() != 1 or ratios.shape[0] < 2:
        raise ConfigError(f"fit_novelty needs the reconstruction ratios of at least 2 reference "
                          f"images (N,), got {tuple(ratios.shape)}")
    if not torch.isfinite(ratios).all():
        raise ConfigError("fit_novelty: the reconstruction ratios contain NaN or inf")
    r = ratios.detach().float().cpu()
    return NoveltyReference(r.clone(), max(float(torch.quantile(r, 0.95)), 1e-12), source)


def nearest_embedding_distance(e: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """``(B,)``: distance of each row of ``e`` (B, D) to its nearest training embedding
    (N, D), over the 95th percentile of the training embeddings' leave-one-out nearest
    distances — the embedding-space score the module docstring explains we do not use."""
    if e.dim() != 2 or train.dim() != 2 or e.shape[1] != train.shape[1] or train.shape[0] < 2:
        raise ConfigError(f"nearest_embedding_distance: need (B, D) and (N >= 2, D), got "
                          f"{tuple(e.shape)} and {tuple(train.shape)}")
    t = train.detach().float().cpu()
    d = torch.cdist(t, t)
    d.fill_diagonal_(float("inf"))
    scale = max(float(torch.quantile(d.min(dim=1).values, 0.95)), 1e-12)
    return torch.cdist(e.detach().float().cpu(), t).min(dim=1).values / scale
