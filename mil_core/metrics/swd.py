"""Multi-scale sliced Wasserstein distance over Laplacian-pyramid patches (weight-free).

Karras et al. 2018 ("Progressive Growing of GANs", ProGAN, appendix D; REFERENCE §5). Needs no
pretrained network, so it works offline where SIFID's Inception weights are missing.

Conventions (stated exactly):

1. Pyramid: Gaussian blur with the separable 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16``
   (reflect padding), downsample by keeping every 2nd pixel; upsample by inserting zeros and
   blurring with 4× the kernel. Laplacian level ``= image − up(down(image))``; the last level is
   the low-pass image itself. Levels are added while the downsampled image keeps a short side of
   at least ``min_size`` (16 px default): a 256² image gives 256, 128, 64, 32, 16.
2. Descriptors: random 7×7×3 patches (147 numbers) at uniformly random positions, drawn from the
   seeded ``torch.Generator``. Each SET (real, fake) gets ``patches_per_image × max(n_real,
   n_fake)`` descriptors per level, spread evenly over its images, so both sets are the same
   size (a single real image against N fakes is sampled N times more densely).
3. Normalisation: per level, each channel is centred and scaled by the mean / std of the UNION
   of both sets (ProGAN normalises each set separately, which hides colour/contrast shifts).
4. SWD: ``n_projections`` random unit directions in R^147 (drawn in chunks of 128, like ProGAN's
   4 repeats × 128); for each, project both sets, sort, and take the mean absolute difference of
   the sorted projections; average over directions. Reported ×1e3, as in ProGAN's code.

The estimate is biased upwards by sampling (two finite patch sets of one distribution are not at
distance 0; the floor falls like 1/√n): compare numbers computed with the same image sizes,
``patches_per_image`` and ``n_projections``, and use more patches for single-image comparisons.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

__all__ = ["swd", "laplacian_pyramid", "sliced_wasserstein"]

_PATCH = 7
_K1D = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Separable binomial blur of ``x (B, C, H, W)`` with reflect padding; kernel sum = gain."""
    c = x.shape[1]
    k = (_K1D * gain ** 0.5).to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)   # horizontal
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)  # vertical


def _down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[..., ::2, ::2]                                      # (B, C, ⌈H/2⌉, ⌈W/2⌉)


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = x.new_zeros(x.shape[0], x.shape[1], *size)                    # (B, C, H, W)
    out[..., ::2, ::2] = x
    return _blur(out, gain=4.0)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Laplacian pyramid of ``x (B, C, H, W)``, finest level first (see the module docstring)."""
    if not isinstance(min_size, int) or min_size < 2:
        raise ConfigError(f"min_size must be an integer ≥ 2, got {min_size!r}.")
    levels = []
    cur = x
    while (min(cur.shape[-2], cur.shape[-1]) + 1) // 2 >= min_size:
        down = _down(cur)
        levels.append(cur - _up(down, (cur.shape[-2], cur.shape[-1])))
        cur = down
    levels.append(cur)
    return levels


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 512,
                       generator: torch.Generator | None = None, chunk: int = 128) -> float:
    """SWD of two equal-size sets ``a, b (N, D)``: mean over random unit directions of the mean
    absolute difference between the sorted projections (not scaled)."""
    if a.shape != b.shape or a.dim() != 2:
        raise DataError(f"sliced_wasserstein needs two (N, D) sets of one shape, got "
                        f"{tuple(a.shape)} and {tuple(b.shape)}.")
    total, done = 0.0, 0
    while done < n_projections:
        p = min(chunk, n_projections - done)
        dirs = torch.randn(a.shape[1], p, generator=generator, dtype=a.dtype)  # (D, p)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        # numpy's sort is ~10× faster than torch.sort on CPU for these (N, p) blocks
        pa = np.sort((a @ dirs).cpu().numpy(), axis=0)                    # (N, p)
        pb = np.sort((b @ dirs).cpu().numpy(), axis=0)                    # (N, p)
        total += float(np.abs(pa - pb).mean(axis=0).sum())
        done += p
    return total / n_projections


def _as_list(xs, name: str) -> list[torch.Tensor]:
    if isinstance(xs, torch.Tensor):
        xs = [xs] if xs.dim() == 3 else list(xs)
    xs = list(xs)
    if not xs:
        raise DataError(f"{name} is empty; give at least one image.")
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"{name}[{i}] must be an image (3, H, W), got {shape}.")
    return xs


def _patches(level: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random 7×7 patches of ``level (3, h, w)`` → ``(n, 3, 7, 7)``."""
    _, h, w = level.shape
    ys = torch.randint(0, h - _PATCH + 1, (n,), generator=generator)
    xs = torch.randint(0, w - _PATCH + 1, (n,), generator=generator)
    r = torch.arange(_PATCH)
    rows = (ys[:, None] + r)[:, :, None]                                  # (n, 7, 1)
    cols = (xs[:, None] + r)[:, None, :]                                  # (n, 1, 7)
    return level[:, rows, cols].permute(1, 0, 2, 3)                       # (n, 3, 7, 7)


def _descriptors(images: list[torch.Tensor], n_total: int, min_size: int,
                 generator: torch.Generator, name: str) -> list[torch.Tensor]:
    """Per level, ``(n_total, 3, 7, 7)`` descriptors spread evenly over ``images``."""
    per_level: list[list[torch.Tensor]] | None = None
    base, extra = divmod(n_total, len(images))
    for i, img in enumerate(images):
        if min(img.shape[-2:]) < min_size:
            raise DataError(f"{name}[{i}] is {img.shape[-2]}×{img.shape[-1]} px, smaller than "
                            f"min_size={min_size}; lower min_size (≥ 7) or use larger images.")
        pyr = laplacian_pyramid(img.double().unsqueeze(0), min_size)
        if per_level is None:
            per_level = [[] for _ in pyr]
        if len(pyr) != len(per_level):
            raise DataError(f"{name}[{i}] ({img.shape[-2]}×{img.shape[-1]}) gives "
                            f"{len(pyr)} pyramid levels but earlier images give "
                            f"{len(per_level)}; use images of comparable size.")
        n = base + (1 if i < extra else 0)
        for lvl, t in enumerate(pyr):
            per_level[lvl].append(_patches(t[0], n, generator))
    return [torch.cat(p) for p in per_level]


def swd(real_images, fake_images, patches_per_image: int = 128, n_projections: int = 512,
        generator: torch.Generator | None = None, min_size: int = 16) -> dict:
    """Multi-scale SWD between real and fake images (each ``(3, H, W)``, ``(B, 3, H, W)`` or a
    list of ``(3, H, W)``, in [-1, 1]); one real image against many fakes is fine.

    ``generator`` defaults to ``torch.Generator().manual_seed(0)`` (deterministic).

    Returns:
        ``{"per_level": [SWD×1e3 per level, finest first], "mean": their average,
        "level_sizes": [(h, w) of each level of the first real image], "n_descriptors": per set
        and level}``.
    """
    if not isinstance(patches_per_image, int) or patches_per_image < 1:
        raise ConfigError(f"patches_per_image must be a positive integer, got "
                          f"{patches_per_image!r}.")
    if not isinstance(n_projections, int) or n_projections < 1:
        raise ConfigError(f"n_projections must be a positive integer, got {n_projections!r}.")
    if not isinstance(min_size, int) or min_size < _PATCH:
        raise ConfigError(f"min_size must be an integer ≥ {_PATCH} (the patch size), got "
                          f"{min_size!r}.")
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    real, fake = _as_list(real_images, "real_images"), _as_list(fake_images, "fake_images")
    n_total = patches_per_image * max(len(real), len(fake))
    d_real = _descriptors(real, n_total, min_size, gen, "real_images")
    d_fake = _descriptors(fake, n_total, min_size, gen, "fake_images")
    if len(d_real) != len(d_fake):
        raise DataError(f"Real images give {len(d_real)} pyramid levels and fake images "
                        f"{len(d_fake)}; compare images of comparable size.")
    dists = []
    for a, b in zip(d_real, d_fake):                                      # (n, 3, 7, 7) each
        both = torch.cat([a, b])
        mean = both.mean(dim=(0, 2, 3), keepdim=True)                     # (1, 3, 1, 1)
        std = both.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)       # (1, 3, 1, 1)
        a = ((a - mean) / std).flatten(1).float()                         # (n, 147)
        b = ((b - mean) / std).flatten(1).float()                         # (n, 147)
        dists.append(sliced_wasserstein(a, b, n_projections, gen) * 1e3)
    sizes = [tuple(t.shape[-2:]) for t in laplacian_pyramid(real[0].unsqueeze(0), min_size)]
    return {"per_level": dists, "mean": sum(dists) / len(dists), "level_sizes": sizes,
            "n_descriptors": n_total}
