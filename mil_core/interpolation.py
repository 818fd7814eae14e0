"""Interpolation between images' generators (MIL Sec. 5.2, Fig. 5, Appendix F).

A hyper-GAN maps every image to a whole SinGAN, so two images' generators can be blended — a
capability no single-image GAN has. Two ways, both with a **switch scale** ``n``: scales below
``n`` keep image A's generator and scales ``n`` and above blend towards image B's (switching at
0 blends everything; switching late keeps A's layout and changes only B's finer texture):

- ``method="embedding"`` (the paper's): scale ``s ≥ n`` gets the weights its head emits for the
  blended embedding ``(1 − α)·e(A) + α·e(B)``;
- ``method="weights"``: scale ``s ≥ n`` gets the blend ``(1 − α)·θ_s(A) + α·θ_s(B)`` of the
  two generated weight sets (:func:`mil_core.models.hypernet.lerp_weights`).

At ``α = 0`` both give image A's generator exactly, at ``α = 1`` image B's at the blended scales.
In MIL's architecture the two are **the same blend**: a head is affine in the embedding
(``θ = W·e + b``, then a fixed rescaling), so ``θ((1 − α)·e_A + α·e_B) = (1 − α)·θ(e_A) +
α·θ(e_B)`` — equal up to float rounding (notebook 06 measures it). They would differ for heads
with a non-linearity, or for weights not produced by one hyper-network.
The noise maps are fixed along a path (:func:`interpolation_path`), so only the interpolation
changes the output. Appendix F's **smoothness** is the slope of a path,
``‖x(α + Δα) − x(α)‖₁ / (Δα · size)`` with ``size`` the number of values of an output
(:func:`path_slopes`): the mean absolute change per value and per unit of α.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from .errors import ConfigError
from .models.hypergan import HyperGAN
from .models.hypernet import NetWeights, lerp_weights

__all__ = ["METHODS", "blended_weights", "interpolation_path", "path_slopes", "smoothness"]

METHODS = ("embedding", "weights")


def _check(model: HyperGAN, alpha: float, switch: int, method: str) -> None:
    model._require_trained()
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(switch, bool) or not isinstance(switch, int) \
            or not 0 <= switch < model.n_trained:
        raise ConfigError(f"switch scale must be an integer in [0, {model.n_trained - 1}] "
                          f"(the model's trained scales), got {switch!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")


def _embedding_pair(model: HyperGAN, e_a: torch.Tensor, e_b: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    d = model.config.embed_dim
    out = []
    for name, e in (("e_a", e_a), ("e_b", e_b)):
        if not isinstance(e, torch.Tensor) or e.dim() not in (1, 2) or e.shape[-1] != d \
                or (e.dim() == 2 and e.shape[0] != 1):
            got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
            raise ConfigError(f"{name} must be one embedding of size {d} ((D,) or (1, D)), "
                              f"got {got}")
        out.append(e.reshape(1, d).to(model.device))
    return out[0], out[1]


def blended_weights(model: HyperGAN, e_a: torch.Tensor, e_b: torch.Tensor, alpha: float,
                    switch: int = 0, method: str = "embedding") -> list[NetWeights]:
    """Per-scale generator weights (batch 1) of the blend of A and B (module docstring)."""
    _check(model, alpha, switch, method)
    e_a, e_b = _embedding_pair(model, e_a, e_b)
    w_a = model.generator_weights(e_a)
    if method == "weights":
        w_b = model.generator_weights(e_b)
        return [w_a[s] if s < switch else lerp_weights(w_a[s], w_b[s], float(alpha))
                for s in range(model.n_trained)]
    mixed = model.generator_weights(torch.lerp(e_a, e_b, float(alpha)))
    return [w_a[s] if s < switch else mixed[s] for s in range(model.n_trained)]


def interpolation_path(model: HyperGAN, e_a: torch.Tensor, e_b: torch.Tensor,
                       alphas: Sequence[float], switch: int = 0, method: str = "embedding",
                       seed: int = 0) -> torch.Tensor:
    """Samples along the path: ``(len(alphas), 3, H, W)`` in [-1, 1], every α with the same
    noise maps (drawn from ``seed``)."""
    alphas = list(alphas)
    if not alphas:
        raise ConfigError("alphas must hold at least one value in [0, 1]")
    gen = torch.Generator().manual_seed(int(seed))
    noise = [torch.randn(1, 3, *s, generator=gen) for s in model.shapes[:model.n_trained]]
    out = []
    with torch.no_grad():
        for a in alphas:
            w = blended_weights(model, e_a, e_b, a, switch, method)
            out.append(model.run_scales(w, 1, noise=noise).clamp(-1, 1)[0])
    return torch.stack(out)


def path_slopes(path: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """``(len(alphas) − 1,)``: ``‖x_{k+1} − x_k‖₁ / ((α_{k+1} − α_k) · size)`` along ``path``
    ``(K, ...)`` sampled at increasing ``alphas``."""
    a = torch.as_tensor(list(alphas), dtype=torch.float64)
    if path.dim() < 2 or path.shape[0] != a.numel() or a.numel() < 2:
        raise ConfigError(f"path_slopes needs a path (K, ...) with K = len(alphas) >= 2, got "
                          f"{tuple(path.shape)} and {a.numel()} alphas")
    da = a[1:] - a[:-1]
    if bool((da <= 0).any()):
        raise ConfigError("alphas must increase strictly along the path")
    diff = (path[1:] - path[:-1]).flatten(1).abs().double().mean(dim=1)     # (K − 1,)
    return (diff / da).float()


def smoothness(model: HyperGAN, embeddings: torch.Tensor, pairs: Sequence[tuple[int, int]],
               switches: Sequence[int], alphas: Sequence[float], seeds: Sequence[int],
               method: str = "embedding") -> pd.DataFrame:
    """Appendix F's study: one row per (pair, seed, switch scale, step of the α grid) with the
    step's midpoint ``alpha``, its ``slope`` (:func:`path_slopes`) and the path's
    ``cross-fade slope`` — the constant slope of the pixel cross-fade between the path's two
    ends, ``‖x(α_last) − x(α_first)‖₁ / ((α_last − α_first) · size)``, the shortest path
    there is. ``embeddings``: (N, D) of the images the ``pairs`` index."""
    alphas = list(alphas)
    mids = [(a + b) / 2 for a, b in zip(alphas[:-1], alphas[1:])]
    rows = []
    for i, j in pairs:
        for seed in seeds:
            for n in switches:
                path = interpolation_path(model, embeddings[i], embeddings[j], alphas, n,
                                          method, seed)
                fade = float(path_slopes(path[[0, -1]], [alphas[0], alphas[-1]])[0])
                for a, s in zip(mids, path_slopes(path, alphas).tolist()):
                    rows.append({"method": method, "pair": f"{i}→{j}", "seed": int(seed),
                                 "switch": int(n), "alpha": a, "slope": s,
                                 "cross-fade slope": fade})
    return pd.DataFrame(rows)
