"""How far an input is from what a hyper-GAN was trained on (feed-forward modelling, MIL Sec. 5.2).

A hyper-GAN trained on a few images will embed *any* image and emit a generator for it, but far
from its training images the embeddings of unrelated inputs crowd together and the generators
stop following them (a model trained on 10 images can return the same texture for three unseen
ones). The **novelty score** of an input is the distance of its embedding to the nearest
training embedding, divided by the 95th percentile of the same distance among the training
images themselves, each left out in turn (:func:`fit_novelty`): about 1 or below for an input
like the training images, well above for one the model has not seen the like of.
:meth:`mil_core.models.HyperGAN.generate` warns (:class:`mil_core.errors.NoveltyWarning`) above
:data:`NOVELTY_WARN`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ConfigError

__all__ = ["NoveltyReference", "fit_novelty", "NOVELTY_WARN"]

NOVELTY_WARN = 2.0   # scores above this warn: twice as far as 95 % of the training images


@dataclass(frozen=True)
class NoveltyReference:
    """The training embeddings and the scale that makes distances to them readable."""
    embeddings: torch.Tensor    # (N, D) training embeddings
    scale: float                # 95th percentile of the leave-one-out nearest distances

    def score(self, e: torch.Tensor) -> torch.Tensor:
        """``(B,)``: nearest training distance of each row of ``e`` (B, D) / ``scale``."""
        if e.dim() != 2 or e.shape[1] != self.embeddings.shape[1]:
            raise ConfigError(f"novelty score: embeddings must be (B, {self.embeddings.shape[1]}),"
                              f" got {tuple(e.shape)}")
        d = torch.cdist(e.float().cpu(), self.embeddings.float())              # (B, N)
        return d.min(dim=1).values / self.scale


def fit_novelty(embeddings: torch.Tensor) -> NoveltyReference:
    """A :class:`NoveltyReference` from the training embeddings ``(N, D)``, N ≥ 2."""
    if embeddings.dim() != 2 or embeddings.shape[0] < 2:
        raise ConfigError(f"fit_novelty needs the embeddings of at least 2 training images "
                          f"(N, D), got {tuple(embeddings.shape)}")
    e = embeddings.detach().float().cpu()
    d = torch.cdist(e, e)
    d.fill_diagonal_(float("inf"))
    loo = d.min(dim=1).values                                                  # (N,)
    scale = float(torch.quantile(loo, 0.95))
    return NoveltyReference(e.clone(), max(scale, 1e-12))
