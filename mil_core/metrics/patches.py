"""Patch nearest-neighbour distances: memorisation and leakage between images (REFERENCE §5).

A single-image GAN generates new arrangements of its training image's patches. Over a data set
(MIL), the question "does a sample of image i use patches of image j?" (leakage through a shared
discriminator, MIL Prop. 2) is answered by comparing each generated image's patches with every
reference image's patches: leakage shows as a small distance to a reference j ≠ i.

Conventions: a patch is the raw ``size × size × 3`` block of an image in [-1, 1], flattened
(channel-major, as ``F.unfold``), so a 7×7 patch is a 147-d vector; the distance is plain L2 in
that space (not divided by the dimension). Patches are taken on a ``stride`` grid in both the
generated and the reference images (``ref_stride`` may differ); at most ``max_patches`` query
patches per generated image are kept, chosen at random by the seeded generator. The nearest
reference patch is found with ``torch.cdist`` in chunks (memory bounded by ~2^24 distances at a
time), and its distance is recomputed exactly, so identical patches give exactly 0.

:func:`extract_patches` is the package's one patch extraction: the sliced Wasserstein distance
(``swd.py``) cuts its descriptors with it too, every patch (stride 1) of each pyramid level or,
in its random-patch mode, the patches at given corners.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

__all__ = ["extract_patches", "patch_nn_distance", "nearest_reference"]


def extract_patches(img: torch.Tensor, size: int = 7, stride: int = 1, *,
                    positions: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Flattened ``size × size`` patches: all of them on a ``stride`` grid, or those at given
    top-left corners.

    ``(3, H, W)`` → ``(L, 3·size²)``; ``(B, 3, H, W)`` → ``(B, L, 3·size²)``, with
    ``L = (⌊(H−size)/stride⌋+1)·(⌊(W−size)/stride⌋+1)`` in row-major order. With
    ``positions=(ys, xs)`` (two integer tensors of length n, top-left corners; ``stride`` is then
    not used; ``(3, H, W)`` input only): ``(n, 3·size²)``, row k the patch at ``(ys[k], xs[k])``.
    Both give the same channel-major layout (that of ``F.unfold``), and the dtype of ``img``.
    """
    if not isinstance(size, int) or size < 1 or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"size and stride must be positive integers, got {size!r}, {stride!r}.")
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4):
        raise DataError("img must be a tensor (3, H, W) or (B, 3, H, W).")
    single = img.dim() == 3
    if min(img.shape[-2:]) < size:
        raise DataError(f"Image of {img.shape[-2]}×{img.shape[-1]} px is smaller than the patch "
                        f"size {size}.")
    if positions is not None:
        return _patches_at(img, size, positions, single)
    x = img.unsqueeze(0) if single else img                            # (B, C, H, W)
    p = F.unfold(x, kernel_size=size, stride=stride).transpose(1, 2)  # (B, L, C·size²)
    return p[0] if single else p


def _patches_at(img: torch.Tensor, size: int, positions, single: bool) -> torch.Tensor:
    """Patches of ``img (C, H, W)`` with top-left corners ``positions`` → ``(n, C·size²)``."""
    if not single:
        raise DataError("extract_patches(positions=...) takes one image (3, H, W), not a batch.")
    ys, xs = (torch.as_tensor(t, dtype=torch.long) for t in positions)
    if ys.dim() != 1 or ys.shape != xs.shape:
        raise DataError(f"positions must be two 1-d integer tensors of one length, got shapes "
                        f"{tuple(ys.shape)} and {tuple(xs.shape)}.")
    c, h, w = img.shape
    if ys.numel() and (ys.min() < 0 or xs.min() < 0 or ys.max() > h - size
                       or xs.max() > w - size):
        raise DataError(f"positions must be top-left corners inside the {h}×{w} image: rows in "
                        f"0…{h - size}, columns in 0…{w - size}.")
    r = torch.arange(size)
    rows = (ys[:, None] + r)[:, :, None]                               # (n, size, 1)
    cols = (xs[:, None] + r)[:, None, :]                               # (n, 1, size)
    p = img[:, rows, cols]                                             # (C, n, size, size)
    return p.permute(1, 0, 2, 3).reshape(ys.numel(), c * size * size)  # (n, C·size²)


def _images(xs, name: str) -> list[torch.Tensor]:
    if isinstance(xs, torch.Tensor):
        xs = [xs] if xs.dim() == 3 else list(xs)
    xs = list(xs)
    if not xs:
        raise DataError(f"{name} is empty.")
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise DataError(f"{name}[{i}] must be an image (3, H, W).")
    return xs


def _mean_nn(query: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over rows of ``query (Q, D)`` of the L2 distance to the nearest row of ``ref``."""
    chunk = max(1, min(1024, (1 << 24) // max(1, ref.shape[0])))
    total = 0.0
    for q in query.split(chunk):                                       # (c, D)
        idx = torch.cdist(q, ref).argmin(dim=1)                        # (c,)
        total += (q - ref[idx]).norm(dim=1).sum().item()               # exact distances
    return total / query.shape[0]


def patch_nn_distance(generated, references, size: int = 7, stride: int = 2,
                      max_patches: int = 4096, generator: torch.Generator | None = None,
                      ref_stride: int | None = None) -> torch.Tensor:
    """``D[n, r]`` = mean over generated image n's patches of the distance to the nearest
    patch of reference r. Returns ``(N, R)`` float32.

    Args:
        generated: ``(N, 3, H, W)`` or a list of ``(3, H, W)`` (sizes may differ).
        references: list of ``(3, H, W)`` (or an ``(R, 3, H, W)`` tensor).
        max_patches: query patches kept per generated image (random subset when more).
        generator: for that subset; default ``torch.Generator().manual_seed(0)``.
        ref_stride: stride of the reference grid (default ``stride``).
    """
    if not isinstance(max_patches, int) or max_patches < 1:
        raise ConfigError(f"max_patches must be a positive integer, got {max_patches!r}.")
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    gens, refs = _images(generated, "generated"), _images(references, "references")
    ref_p = [extract_patches(r.float(), size, ref_stride or stride) for r in refs]  # (Lr, D)
    out = torch.zeros(len(gens), len(refs))
    for n, g in enumerate(gens):
        q = extract_patches(g.float(), size, stride)                   # (Lq, D)
        if q.shape[0] > max_patches:
            q = q[torch.randperm(q.shape[0], generator=gen)[:max_patches]]
        for r, rp in enumerate(ref_p):
            out[n, r] = _mean_nn(q, rp)
    return out


def nearest_reference(generated, references, **kwargs) -> torch.Tensor:
    """Index ``(N,)`` of the reference whose patches are nearest to each generated image
    (argmin over r of :func:`patch_nn_distance`; keyword arguments are passed on)."""
    return patch_nn_distance(generated, references, **kwargs).argmin(dim=1)
