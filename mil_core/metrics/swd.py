"""Multi-scale sliced Wasserstein distance over Laplacian-pyramid patches (weight-free).

Karras et al. 2018 ("Progressive Growing of GANs", ProGAN, appendix D; REFERENCE §5). Needs no
pretrained network, so it works offline where SIFID's Inception weights are missing.

Conventions (stated exactly):

1. Pyramid: Gaussian blur with the separable 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16``
   (reflect padding), downsample by keeping every 2nd pixel; upsample by inserting zeros and
   blurring with 4× the kernel. Laplacian level ``= image − up(down(image))``; the last level is
   the low-pass image itself. Levels are added while the downsampled image keeps a short side of
   at least ``min_size`` (16 px default): a 256² image gives 256, 128, 64, 32, 16; a 250×188
   image gives 188×250, 94×125, 47×63, 24×32. Computed in float64.
2. Descriptors: 7×7×3 patches (147 numbers, channel-major), cut by
   :func:`mil_core.metrics.patches.extract_patches` (the extraction that patch nearest
   neighbours use too). Two modes:

   - ``patches_per_image="all"`` (the default; ``None`` means the same): EVERY patch (stride 1)
     of every level of every image, ``(h−6)·(w−6)`` per image and level; nothing is random but
     the projection directions (4). The two sets may differ in size (images of different sizes,
     or one real image against several fakes); (4) compares them without resampling.
   - ``patches_per_image=n`` (an int; ProGAN's protocol and this function's default before the
     every-patch mode, which used 128): random positions drawn from the seeded generator; each
     SET gets ``n × max(n_real, n_fake)`` descriptors per level, spread evenly over its images,
     so both sets have the same size.
3. Normalisation: per level, each channel is centred and scaled by the mean / std of the UNION
   of both sets, each set weighing one half (for equal-size sets simply the union; the std has
   Bessel's correction on the union's count). ProGAN normalises each set separately, which hides
   colour/contrast shifts. A per-channel affine map applied to both sets changes nothing.
4. SWD: ``n_projections`` random unit directions in R^147 (drawn in chunks of 128, like ProGAN's
   4 repeats × 128, one draw per level, real and fake share them). For each direction, the exact
   1-D Wasserstein-1 distance between the two empirical distributions of projections,
   ``∫₀¹ |Q_real(t) − Q_fake(t)| dt`` with ``Q`` the step quantile function of the sorted
   projections. For sets of equal size this is the mean absolute difference of the sorted
   projections (ProGAN's formula); for unequal sizes ``n_a ≠ n_b`` the integral is summed
   exactly over the merged breakpoints ``{i/n_a} ∪ {j/n_b}`` (at most ``n_a + n_b`` pieces; no
   resampling, no interpolation error). Average over directions, then over levels; ×1e3, as in
   ProGAN's code.
5. Floor: in the every-patch mode an image against an identical copy scores exactly 0.0 (the
   same sets, directions and arithmetic), and a copy of a set (N identical copies of one image
   against it) 0 up to float rounding. The random-patch mode has a sampling floor: two finite
   patch sets of one image are not at distance 0 (about 156 ×1e3 for a 250-px Places image with
   128 patches, against ~400 for another image), falling like 1/√n. There, compare numbers
   computed with the same image sizes, ``patches_per_image`` and ``n_projections`` only.
   Scale, every patch (:mod:`mil_core.calibration`, means over the first 25 published Places-50
   images): at 250 px the mirror image 46, the published SinGAN sample 81, ConSinGAN 49,
   another image 396, the same photo re-encoded as JPEG 11; at 64 px 69, 90, 63, 470 and 10.
6. Tables: one protocol for every table, :func:`swd_per_sample` — the SWD of EACH sample
   against the real image (every patch, the same directions for every sample), then the mean
   over samples (the analog of SinGAN's mSIFID), with the per-sample values. It puts a model with
   100 samples per image and the published samples (one per image) in one table.
   ``swd(real, fakes)`` with several fakes instead pools their patches into one set: a different
   quantity (the pooled patch distribution), kept for that use.
7. Cost, measured with ``benchmarks/bench_calibration.py`` (one torch thread; CPU seconds,
   wall time was twice that on a shared 2-core machine): one 250×188 pair, every patch (57 685
   descriptors per image over 4 levels), 512 directions: 0.66 s, most of it sorting 512 × 44 408
   projections per set at the finest level; 64×48 (the ``cpu`` profile): 0.03 s; 128 random
   patches at 250 px: 0.05 s. The spread over direction seeds at 512 directions is 1–2 % of the
   value. Computed on the CPU (inputs on another device are copied). Memory: about 1 kB per
   descriptor of the largest level and set (~0.1 GB at 250 px); every-patch sets above
   :data:`MAX_ALL_PATCHES` descriptors per set and level are refused with a message (compare one
   sample at a time with :func:`swd_per_sample`, or give a ``patches_per_image``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .patches import extract_patches

__all__ = ["swd", "swd_per_sample", "laplacian_pyramid", "sliced_wasserstein", "PATCH_SIZE",
           "MAX_ALL_PATCHES"]

PATCH_SIZE = 7                  # side of the descriptors, px (ProGAN)
MAX_ALL_PATCHES = 1 << 20       # every-patch mode: most descriptors per set and level (~1 GB)
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


# ----------------------------------------------------------------------------- 1-D W1, sliced

def _quantile_pieces(na: int, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of ``[0, 1)`` on which both step quantile functions are constant.

    Breakpoints ``i/na`` and ``j/nb`` are written over the common denominator ``na·nb`` (exact
    integers): piece k starts at ``u_k``, has width ``w_k`` and takes sorted value ``ia_k`` of
    the first set and ``ib_k`` of the second (convention 4).
    """
    u = np.union1d(np.arange(na, dtype=np.int64) * nb, np.arange(nb, dtype=np.int64) * na)
    w = np.diff(np.append(u, np.int64(na) * nb)) / (float(na) * nb)     # (K,), sums to 1
    return u // nb, u // na, w


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 512,
                       generator: torch.Generator | None = None, chunk: int = 128) -> float:
    """SWD of two sets ``a (Na, D)``, ``b (Nb, D)``: mean over random unit directions of the
    exact 1-D W1 distance between the projections (not scaled; convention 4). For ``Na == Nb``
    the W1 is the mean absolute difference between the sorted projections."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise DataError(f"sliced_wasserstein needs two non-empty (N, D) sets of one D, got "
                        f"{tuple(a.shape)} and {tuple(b.shape)}.")
    pieces = None if len(a) == len(b) else _quantile_pieces(len(a), len(b))
    at, bt = a.t(), b.t()                                                # (D, Na), (D, Nb)
    buf_a = torch.empty(min(chunk, n_projections), len(a), dtype=a.dtype)  # reused: no page
    buf_b = torch.empty(min(chunk, n_projections), len(b), dtype=b.dtype)  # faults per chunk
    total, done = 0.0, 0
    while done < n_projections:
        p = min(chunk, n_projections - done)
        dirs = torch.randn(a.shape[1], p, generator=generator, dtype=a.dtype)  # (D, p)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        # projections as (p, N) rows, sorted in place by numpy (~10× faster than torch.sort)
        pa = torch.mm(dirs.t(), at, out=buf_a[:p]).numpy()               # (p, Na)
        pb = torch.mm(dirs.t(), bt, out=buf_b[:p]).numpy()               # (p, Nb)
        pa.sort(axis=1)
        pb.sort(axis=1)
        if pieces is None:
            np.subtract(pa, pb, out=pa)
            total += float(np.abs(pa, out=pa).sum(axis=1, dtype=np.float64).sum()) / len(a)
        else:
            ia, ib, w = pieces
            total += float((np.abs(pa[:, ia] - pb[:, ib]) @ w).sum())   # (p, K) @ (K,)
        done += p
    return total / n_projections


# ----------------------------------------------------------------------------- descriptors

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


def _check_patches(patches_per_image) -> int | None:
    """None for the every-patch mode, else the positive int."""
    if patches_per_image is None or patches_per_image == "all":
        return None
    if (isinstance(patches_per_image, bool) or not isinstance(patches_per_image, int)
            or patches_per_image < 1):
        raise ConfigError(f"patches_per_image must be 'all' (every 7×7 patch) or a positive "
                          f"integer (random patches), got {patches_per_image!r}.")
    return patches_per_image


def _pyramids(images: list[torch.Tensor], min_size: int, name: str) -> list[list[torch.Tensor]]:
    """Per image, its float64 Laplacian levels ``(3, h, w)``, finest first; one level count."""
    out = []
    for i, img in enumerate(images):
        if min(img.shape[-2:]) < min_size:
            raise DataError(f"{name}[{i}] is {img.shape[-2]}×{img.shape[-1]} px, smaller than "
                            f"min_size={min_size}; lower min_size (≥ 7) or use larger images.")
        x = img.detach().to(device="cpu", dtype=torch.float64)           # computed on the CPU
        levels = [t[0] for t in laplacian_pyramid(x.unsqueeze(0), min_size)]
        if out and len(levels) != len(out[0]):
            raise DataError(f"{name}[{i}] ({img.shape[-2]}×{img.shape[-1]}) gives "
                            f"{len(levels)} pyramid levels but earlier images give "
                            f"{len(out[0])}; use images of comparable size.")
        out.append(levels)
    return out


def _random_corners(pyrs: list[list[torch.Tensor]], n_total: int,
                    generator: torch.Generator) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Random-patch mode: per image and level, the top-left corners of its share of ``n_total``
    descriptors (drawn image by image, level by level, rows then columns)."""
    base, extra = divmod(n_total, len(pyrs))
    out = []
    for i, levels in enumerate(pyrs):
        n = base + (1 if i < extra else 0)
        corners = []
        for t in levels:
            _, h, w = t.shape
            ys = torch.randint(0, h - PATCH_SIZE + 1, (n,), generator=generator)
            xs = torch.randint(0, w - PATCH_SIZE + 1, (n,), generator=generator)
            corners.append((ys, xs))
        out.append(corners)
    return out


def _coverage(h: int, w: int, corners) -> torch.Tensor:
    """How many descriptors of the set cover each pixel of an ``h×w`` level ``(h, w)`` float64:
    every patch (``corners=None``), or the patches at ``corners = (ys, xs)``."""
    k = torch.ones(1, 1, PATCH_SIZE, PATCH_SIZE, dtype=torch.float64)
    if corners is None:
        hits = torch.ones(h - PATCH_SIZE + 1, w - PATCH_SIZE + 1, dtype=torch.float64)
    else:
        hits = torch.zeros(h - PATCH_SIZE + 1, w - PATCH_SIZE + 1, dtype=torch.float64)
        hits.index_put_(corners, torch.ones(len(corners[0]), dtype=torch.float64),
                        accumulate=True)                                 # corners per position
    return F.conv_transpose2d(hits[None, None], k)[0, 0]                 # (h, w), exact counts


def _moments(levels: list[torch.Tensor], corners: list | None) -> torch.Tensor:
    """Per channel, the count, sum and sum of squares of a set's descriptor values at one level
    (each pixel counted once per descriptor that holds it) → ``(3, 3)``, rows n, Σx, Σx²."""
    out = torch.zeros(3, 3, dtype=torch.float64)
    for i, t in enumerate(levels):                                       # t (3, h, w) float64
        cov = _coverage(t.shape[-2], t.shape[-1], None if corners is None else corners[i])
        out[0] += cov.sum()
        out[1] += (cov * t).sum(dim=(1, 2))
        out[2] += (cov * t * t).sum(dim=(1, 2))
    return out


def _union_scale(ma: torch.Tensor, mb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Convention 3 from two sets' moments: per channel mean and std ``(3, 1, 1)`` of the
    union, each set weighing one half, with Bessel's correction on the union's count."""
    mean = 0.5 * (ma[1] / ma[0] + mb[1] / mb[0])
    var = 0.5 * (ma[2] / ma[0] + mb[2] / mb[0]) - mean ** 2
    n = ma[0] + mb[0]
    std = (var.clamp_min(0.0) * n / (n - 1)).sqrt().clamp_min(1e-8)
    return mean.view(3, 1, 1), std.view(3, 1, 1)


def _level_set(levels: list[torch.Tensor], corners: list | None, mean: torch.Tensor,
               std: torch.Tensor, name: str, lvl: int) -> torch.Tensor:
    """All normalised descriptors ``(n, 147)`` float32 of one set at one level. Normalising a
    level image per channel and then cutting patches equals normalising the patches."""
    if corners is None:
        n = sum((t.shape[-2] - PATCH_SIZE + 1) * (t.shape[-1] - PATCH_SIZE + 1) for t in levels)
        if n > MAX_ALL_PATCHES:
            raise ConfigError(f"{name}: every patch of pyramid level {lvl} is {n} descriptors "
                              f"(over {len(levels)} image(s)), more than MAX_ALL_PATCHES="
                              f"{MAX_ALL_PATCHES}. Compare one sample at a time "
                              f"(swd_per_sample, the table protocol) or give "
                              f"patches_per_image=<int> (random patches).")
    sets = [extract_patches(((t - mean) / std).float(), PATCH_SIZE, 1,
                            positions=None if corners is None else corners[i])
            for i, t in enumerate(levels)]                               # (n_i, 147) each
    return sets[0] if len(sets) == 1 else torch.cat(sets)


def _check_common(n_projections, min_size) -> None:
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ConfigError(f"n_projections must be a positive integer, got {n_projections!r}.")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < PATCH_SIZE:
        raise ConfigError(f"min_size must be an integer ≥ {PATCH_SIZE} (the patch size), got "
                          f"{min_size!r}.")


# ----------------------------------------------------------------------------- public

def swd(real_images, fake_images, patches_per_image: int | str | None = "all",
        n_projections: int = 512, generator: torch.Generator | None = None,
        min_size: int = 16) -> dict:
    """Multi-scale SWD between real and fake images (each ``(3, H, W)``, ``(B, 3, H, W)`` or a
    list of ``(3, H, W)``, in [-1, 1]); the module docstring states every convention.

    Args:
        patches_per_image: ``"all"`` (default; ``None`` is the same): every 7×7 patch of every
            level — an identical copy scores exactly 0. An int: that many random patches per
            image and level (ProGAN; 128 was the earlier default), with a sampling floor > 0.
        n_projections: random directions per level.
        generator: draws the directions (and the random patches); default
            ``torch.Generator().manual_seed(0)`` (deterministic).
        min_size: smallest short side of a pyramid level, px (≥ 7).

    Several fakes are pooled into one set (convention 6); for a table, use
    :func:`swd_per_sample`.

    Returns:
        ``{"per_level": [SWD×1e3 per level, finest first], "mean": their average,
        "level_sizes": [(h, w) of each level of the first real image], "patches_per_image":
        "all" or the int, "set_sizes": [(n_real, n_fake) descriptors per level],
        "n_descriptors": descriptors per set and level in the random-patch mode (None in the
        every-patch mode)}``.
    """
    n_per = _check_patches(patches_per_image)
    _check_common(n_projections, min_size)
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    real, fake = _as_list(real_images, "real_images"), _as_list(fake_images, "fake_images")
    p_real, p_fake = _pyramids(real, min_size, "real_images"), _pyramids(fake, min_size,
                                                                          "fake_images")
    if len(p_real[0]) != len(p_fake[0]):
        raise DataError(f"Real images give {len(p_real[0])} pyramid levels and fake images "
                        f"{len(p_fake[0])}; compare images of comparable size.")
    n_total = None if n_per is None else n_per * max(len(real), len(fake))
    c_real = None if n_total is None else _random_corners(p_real, n_total, gen)
    c_fake = None if n_total is None else _random_corners(p_fake, n_total, gen)
    dists, set_sizes = [], []
    for lvl in range(len(p_real[0])):
        lv_real, lv_fake = [t[lvl] for t in p_real], [t[lvl] for t in p_fake]
        cr = None if c_real is None else [c[lvl] for c in c_real]
        cf = None if c_fake is None else [c[lvl] for c in c_fake]
        mean, std = _union_scale(_moments(lv_real, cr), _moments(lv_fake, cf))
        a = _level_set(lv_real, cr, mean, std, "real_images", lvl)       # (n_real, 147)
        b = _level_set(lv_fake, cf, mean, std, "fake_images", lvl)       # (n_fake, 147)
        set_sizes.append((a.shape[0], b.shape[0]))
        dists.append(sliced_wasserstein(a, b, n_projections, gen) * 1e3)
    return {"per_level": dists, "mean": sum(dists) / len(dists),
            "level_sizes": [tuple(t.shape[-2:]) for t in p_real[0]],
            "patches_per_image": "all" if n_per is None else n_per,
            "set_sizes": set_sizes, "n_descriptors": n_total}


def swd_per_sample(real_image: torch.Tensor, fake_images, *,
                   patches_per_image: int | str | None = "all", n_projections: int = 512,
                   generator: torch.Generator | None = None, min_size: int = 16) -> dict:
    """The table protocol (convention 6): SWD of each fake against ONE real image, averaged.

    Each sample is compared alone with ``real_image`` (``(3, H, W)``) by :func:`swd`, every
    sample with the same directions: with ``generator=None`` each call uses
    ``torch.Generator().manual_seed(0)``, so ``per_sample[k] == swd(real, fakes[k])["mean"]``;
    a given ``generator`` is drawn from once, for the seed that every sample then shares.

    Args:
        fake_images: ``(N, 3, H, W)``, a list of ``(3, H, W)`` or one ``(3, H, W)`` (sizes may
            differ from the real image's when the pyramids have as many levels).

    Returns:
        ``{"mean": mean over samples of the per-sample SWD×1e3, "per_sample": [one per sample],
        "std": their standard deviation (ddof 1; 0.0 for one sample), "per_level": the mean over
        samples per level, finest first, "n_samples": N, "patches_per_image": "all" or the int}``.
    """
    if (not isinstance(real_image, torch.Tensor) or real_image.dim() != 3
            or real_image.shape[0] != 3):
        shape = (tuple(real_image.shape) if isinstance(real_image, torch.Tensor)
                 else type(real_image).__name__)
        raise DataError(f"real_image must be one image (3, H, W), got {shape}; for several real "
                        f"images call swd_per_sample once per image.")
    fakes = _as_list(fake_images, "fake_images")
    seed = 0 if generator is None else int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    rows = [swd(real_image, f, patches_per_image, n_projections,
                torch.Generator().manual_seed(seed), min_size) for f in fakes]
    values = [r["mean"] for r in rows]
    per_level = np.mean([r["per_level"] for r in rows], axis=0).tolist()
    return {"mean": float(np.mean(values)), "per_sample": values,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "per_level": per_level, "n_samples": len(values),
            "patches_per_image": rows[0]["patches_per_image"]}
