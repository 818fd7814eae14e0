"""Losses of GIT's long-tail baselines (REFERENCE §6): cross-entropy, focal, LDAM, and
class-balanced "effective number" weights.

- **Focal loss** (Lin et al. 2017, eq. 4): ``−(1 − p_t)^γ log p_t`` with γ = 1 (GIT); γ = 0 is the
  cross-entropy.
- **LDAM** (Cao et al. 2019, eq. 13): the true class's logit is lowered by a margin
  ``Δ_c ∝ n_c^(−1/4)`` (scaled so the largest margin, the smallest class's, is ``max_m`` = 0.5)
  and all logits are multiplied by ``s`` = 30 before a cross-entropy. Cao et al. pair it with a
  cosine classifier (:class:`mil_core.models.classifiers.CosineLinear`), whose logits lie in
  [−1, 1]; the trainer does the same.
- **Effective-number weights** (Cui et al. 2019, eq. 3): ``w_c ∝ (1 − β) / (1 − β^{n_c})``,
  normalised to sum to C (β = 0.9999). β → 0 gives uniform weights, β → 1 weights ∝ 1/n_c.

Every loss takes logits ``(B, C)`` and integer targets ``(B,)`` and returns a scalar. With
per-class weights ``w`` the reduction is the weighted mean ``Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}`` —
what ``F.cross_entropy(..., weight=w)`` computes — for all three losses alike.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError

__all__ = ["effective_number_weights", "CrossEntropyLoss", "FocalLoss", "LDAMLoss",
           "ldam_margins", "LOSSES", "make_loss"]


def _class_sizes(class_sizes: Sequence[int] | torch.Tensor, who: str) -> torch.Tensor:
    """``class_sizes`` as a float64 tensor ``(C,)``; every class must hold >= 1 image."""
    sizes = torch.as_tensor(class_sizes).detach().cpu()
    if sizes.dim() != 1 or sizes.numel() == 0 or sizes.is_complex():
        raise DataError(f"{who}: class_sizes must be a non-empty 1-D list of image counts per "
                        f"class, got shape {tuple(sizes.shape)}.")
    sizes = sizes.to(torch.float64)
    bad = torch.nonzero(~(sizes >= 1)).flatten().tolist()
    if bad:
        raise DataError(f"{who}: every class needs at least one training image, but class(es) "
                        f"{bad[:10]} have {[sizes[i].item() for i in bad[:10]]}. Remove empty "
                        "classes from the training set (or lower n_test_per_class).")
    return sizes


def effective_number_weights(class_sizes: Sequence[int] | torch.Tensor,
                             beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights of Cui et al. (2019): ``(1 − β) / (1 − β^{n_c})``, summing to C.

    Returns float32 ``(C,)``. ``beta`` in [0, 1); 0 gives all ones.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ConfigError(f"effective_number_weights: beta must be a number in [0, 1), got "
                          f"{beta!r} (GIT: 0.9999).")
    n = _class_sizes(class_sizes, "effective_number_weights")          # (C,)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (w / w.sum() * n.numel()).to(torch.float32)                  # (C,), sums to C


def _check_weight(weight: torch.Tensor | None, n_classes: int | None, who: str
                  ) -> torch.Tensor | None:
    if weight is None:
        return None
    weight = torch.as_tensor(weight, dtype=torch.float32)
    if weight.dim() != 1 or (n_classes is not None and weight.numel() != n_classes) \
            or not torch.isfinite(weight).all() or (weight < 0).any():
        raise DataError(f"{who}: weight must be a 1-D tensor of {n_classes or 'C'} finite, "
                        f"non-negative per-class weights, got {tuple(weight.shape)}.")
    return weight


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, n_classes: int | None,
                  who: str) -> None:
    if logits.dim() != 2 or target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise DataError(f"{who}: expected logits (B, C) and targets (B,), got "
                        f"{tuple(logits.shape)} and {tuple(target.shape)}.")
    if n_classes is not None and logits.shape[1] != n_classes:
        raise DataError(f"{who}: logits have {logits.shape[1]} classes but the loss was built "
                        f"for {n_classes} (len(class_sizes)).")


def _weighted_mean(per_sample: torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor | None) -> torch.Tensor:
    """``Σ w_{y_i} ℓ_i / Σ w_{y_i}`` (plain mean without weights), as F.cross_entropy."""
    if weight is None:
        return per_sample.mean()
    w = weight.to(per_sample.device, per_sample.dtype)[target]          # (B,)
    return (w * per_sample).sum() / w.sum()


class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy with optional per-class weights."""

    def __init__(self, n_classes: int | None = None, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.weight = _check_weight(weight, n_classes, "CrossEntropyLoss")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.n_classes, "CrossEntropyLoss")
        w = None if self.weight is None else self.weight.to(logits.device, logits.dtype)
        return F.cross_entropy(logits, target, weight=w)


class FocalLoss(nn.Module):
    """Focal loss ``−(1 − p_t)^γ log p_t`` (Lin et al. 2017), optional per-class weights.

    ``p_t`` is the unweighted softmax probability of the true class.
    """

    def __init__(self, gamma: float = 1.0, n_classes: int | None = None,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ConfigError(f"FocalLoss: gamma must be a number >= 0, got {gamma!r} (GIT: 1).")
        self.gamma = float(gamma)
        self.n_classes = n_classes
        self.weight = _check_weight(weight, n_classes, "FocalLoss")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.n_classes, "FocalLoss")
        log_pt = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)   # (B,)
        per_sample = -((1.0 - log_pt.exp()) ** self.gamma) * log_pt                   # (B,)
        return _weighted_mean(per_sample, target, self.weight)


def ldam_margins(class_sizes: Sequence[int] | torch.Tensor, max_m: float = 0.5) -> torch.Tensor:
    """LDAM margins ``Δ_c = C' / n_c^{1/4}`` with C' chosen so ``max_c Δ_c = max_m``; ``(C,)``."""
    if isinstance(max_m, bool) or not isinstance(max_m, (int, float)) or max_m < 0:
        raise ConfigError(f"ldam_margins: max_m must be a number >= 0, got {max_m!r} (GIT: 0.5).")
    n = _class_sizes(class_sizes, "ldam_margins")
    m = n.pow(-0.25)
    return (m * (max_m / m.max())).to(torch.float32)


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss (Cao et al. 2019): CE of ``s · (z − Δ_y e_y)``.

    Only the true class's logit is lowered, by its class's margin.
    """

    def __init__(self, class_sizes: Sequence[int] | torch.Tensor, max_m: float = 0.5,
                 s: float = 30.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ConfigError(f"LDAMLoss: s must be a positive number, got {s!r} (GIT: 30).")
        self.register_buffer("margins", ldam_margins(class_sizes, max_m))   # (C,)
        self.s = float(s)
        self.n_classes = int(self.margins.numel())
        self.weight = _check_weight(weight, self.n_classes, "LDAMLoss")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.n_classes, "LDAMLoss")
        m = self.margins.to(logits.device, logits.dtype)[target]            # (B,)
        shifted = logits.scatter_add(1, target[:, None], -m[:, None])       # (B, C)
        w = None if self.weight is None else self.weight.to(logits.device, logits.dtype)
        return F.cross_entropy(self.s * shifted, target, weight=w)


LOSSES = ("ce", "focal", "ldam")


def make_loss(name: str, class_sizes: Sequence[int] | torch.Tensor,
              weight: torch.Tensor | None = None, *, gamma: float = 1.0, max_m: float = 0.5,
              s: float = 30.0) -> nn.Module:
    """The loss ``name`` ("ce", "focal" or "ldam") for a training set with ``class_sizes``.

    ``weight``: optional per-class weights ``(C,)`` (e.g. :func:`effective_number_weights`).
    ``gamma`` is the focal exponent; ``max_m`` and ``s`` are LDAM's largest margin and scale.
    """
    n_classes = len(class_sizes)
    if name == "ce":
        return CrossEntropyLoss(n_classes, weight)
    if name == "focal":
        return FocalLoss(gamma, n_classes, weight)
    if name == "ldam":
        return LDAMLoss(class_sizes, max_m, s, weight)
    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)} "
                      "(ClassifierConfig.loss)")
