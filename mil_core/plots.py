"""Figures shared by the notebooks: image grids, pyramids, class-size bars, transform grids,
training curves.

Each function returns a matplotlib ``Figure``; save it with :func:`mil_core.figures.save_figure`.
Images are torch tensors, either RGB ``(3, H, W)`` in [-1, 1] (MIL side) or grayscale uint8
``(H, W)`` (GIT side).
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["to_display", "image_grid", "pyramid_figure", "class_size_figure", "transform_grid",
           "training_curves"]


def to_display(img: torch.Tensor) -> np.ndarray:
    """A tensor image as an array ``imshow`` understands (RGB in [0, 1], or gray uint8)."""
    img = img.detach().cpu()
    if img.dtype == torch.uint8:
        return img.numpy() if img.dim() == 2 else img.permute(1, 2, 0).numpy()
    if img.dim() == 3 and img.shape[0] in (1, 3):  # (C, H, W) in [-1, 1]
        arr = ((img.float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        return arr[..., 0] if arr.shape[-1] == 1 else arr
    return img.float().numpy()


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str] | None = None,
               ncols: int = 6, size: float = 2.0, suptitle: str | None = None) -> plt.Figure:
    """A grid of images with optional titles; keeps each image's aspect ratio."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            arr = to_display(images[i])
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0,
                      vmax=255 if arr.dtype == np.uint8 else 1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def pyramid_figure(scales: Sequence[torch.Tensor], title: str = "") -> plt.Figure:
    """Every scale of a pyramid side by side, drawn at its true relative size."""
    widths = [s.shape[-1] for s in scales]
    fig, axes = plt.subplots(1, len(scales), figsize=(min(2 + 0.012 * sum(widths), 18), 2.6),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, s in zip(axes.flat, scales):
        ax.imshow(to_display(s), interpolation="nearest")
        ax.set_title(f"{s.shape[-2]}×{s.shape[-1]}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_size_figure(sizes_by_name: dict[str, Sequence[int]], log: bool = True) -> plt.Figure:
    """Class sizes sorted by rank, one panel per dataset (log scale, as in GIT's Figure 2)."""
    fig, axes = plt.subplots(1, len(sizes_by_name), figsize=(4.2 * len(sizes_by_name), 3.2),
                             squeeze=False)
    for ax, (name, sizes) in zip(axes.flat, sizes_by_name.items()):
        ranked = sorted(sizes, reverse=True)
        ax.bar(np.arange(1, len(ranked) + 1), ranked, color="tab:blue")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("class rank")
        ax.set_ylabel("training images")
        ax.set_title(f"{name}: {sum(ranked):,} images, imbalance {ranked[0] / ranked[-1]:.0f}")
    fig.tight_layout()
    return fig


def transform_grid(rows: dict[str, torch.Tensor], size: float = 1.1,
                   title: str | None = None) -> plt.Figure:
    """One row per label (e.g. "original", "ROT"), each a batch ``(N, H, W)`` of uint8 images,
    under an optional figure ``title`` (set before the layout, so it never overprints a row)."""
    names = list(rows)
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(size * n + 1.2, size * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(rows[name]):
                ax.imshow(to_display(rows[name][c]), cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, Sequence[dict]],
                    keys: Sequence[tuple[str, str, bool]] = (
                        ("rec_loss", "reconstruction MSE", True),
                        ("wasserstein", "critic's Wasserstein estimate", False)),
                    title: str = "") -> plt.Figure:
    """Curves of logged training rows (``model.history``), one line per run, scales in turn.

    ``keys``: (column, panel title, log y-axis). Rows need ``scale`` and ``iter``; a row's x is
    its iteration counted over all scales. Dotted vertical lines mark the start of each scale.
    """
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.2), squeeze=False)
    for name, rows in histories.items():
        rows = list(rows)
        if not rows:
            continue
        per_scale = max(r["iter"] for r in rows) + 1
        x = [r["iter"] + r["scale"] * per_scale for r in rows]
        for ax, (key, label, log) in zip(axes[0], keys):
            ax.plot(x, [r[key] for r in rows], label=name, lw=1.2)
            ax.set(title=label, xlabel="iteration (scales in turn)", yscale="log" if log else "linear")
        for ax in axes[0]:
            for s in range(1, max(r["scale"] for r in rows) + 1):
                ax.axvline(s * per_scale, color="0.8", ls=":", lw=0.8)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
