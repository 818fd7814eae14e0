"""Style-swap fidelity: do a MUNIT's style swaps reproduce GIT's true nuisance transform?

Generative Invariance Transfer (Zhou et al., ICLR 2022, Sec. 3; REFERENCE §6) trains a
single-domain MUNIT on the long-tailed, transformed training set and relies on its style code
holding the nuisance: ``decode(content(x), s)`` with a new style ``s ~ N(0, I)`` should look like
``T(x)`` for a fresh draw of the true transform T — the same image under another rotation (ROT),
background intensity (BG) or stroke width (DIL). The paper judges this by eye and through the
classifier's eKLD; this module measures it. For each transform, a scalar statistic that the
transform moves is computed on the translations and on true transforms of the same images, and
the two empirical distributions are compared with the 1-D Wasserstein-1 distance, in the
statistic's own units (levels of 1/255, degrees, pixels), so 0 means "as the true transform".

Conventions:

1. **Images** are float ``(B, 1, H, W)`` in [0, 1] (the :func:`~mil_core.data.nuisance.to_float`
   scale); map a MUNIT's tanh output with ``(y + 1) / 2``. :func:`fidelity` takes three tensors of
   one shape, paired by index: ``originals[i]`` (what translation ``i`` was made from),
   ``translated[i] = decode(content(originals[i]), s_i)`` and ``reference[i]``, one true
   transform of the clean image behind ``originals[i]`` (``T(originals[i])`` when the originals
   are clean), drawn independently of everything else.
2. **BG** (pixels equal to 0 become v/255, v ~ U{0..99}): :func:`background_levels` is the
   (lower) median of an image's background pixels, ×255. The background mask
   (:func:`background_mask`) is taken from the *original*: its pixels within half a level of its
   own whole-image median, which is exactly its background when the background covers more than
   half the frame (every sklearn digit does: ≥ 55 %). BG moves no pixel and MUNIT's content code
   keeps the layout, so the same mask serves the translation and the reference. On a true BG
   image the estimate is v (up to float32 rounding, < 1e-3). Distances: ``level_w1``
   (translated vs reference levels), ``level_w1_uniform`` (translated vs the exact
   U{0..max_value}; its sampling floor is ``level_w1_uniform_reference``, the reference against
   the same law) and ``level_change_w1`` (of ``level(translated) − level(original)`` vs
   ``level(reference) − level(original)``).
3. **ROT** (angle ~ U(−180°, 180°), bicubic): :func:`estimated_rotation` gives, for a pair
   ``(x, y)``, the angle of a grid (:func:`rotation_grid`; in :func:`fidelity` 5° steps over
   twice the transform's range, at most the full circle, since two transformed copies can
   differ by that much) maximising the Pearson correlation of ``rotate(x, angle)`` (the repo's
   :class:`~mil_core.data.nuisance.Rotation`) and ``y``. ``rotation_w1`` is the *circular*
   Wasserstein-1 distance (degrees; :func:`circular_wasserstein_1d`) between the estimates for
   ``(originals, translated)`` and for ``(originals, reference)`` pairs. A shape with a 180°
   symmetry (a 0, an 8) fools the estimator the same way in both sets.
4. **DIL** (dilate k ~ U{2,3,4} with p = 0.6, else erode k ~ U{1,2}): :func:`stroke_stats` gives
   the ink fraction (pixels > 0.5) and the stroke thickness ``2 · area / perimeter`` (pixels;
   perimeter = ink/background pixel edges, 4-neighbour, outside the frame is background), which
   is ``w`` for a long bar of width ``w``. The threshold 0.5 lies above every BG level (99/255),
   so BG does not move it. Distances: ``ink_w1``, ``thickness_w1`` and ``thickness_change_w1``
   (of the change from the original).
5. **What a distance means.** :func:`fidelity` also returns every distance with the
   translations replaced by the originals themselves (key suffix ``_none``): what a "style swap"
   that changes nothing scores. A faithful MUNIT is near the true-vs-true floor (two independent
   draws of T on the same images) and far below ``_none``. On 256 clean sklearn digits (means
   over 20 seed pairs, one torch thread), floor vs ``_none``: ``level_w1`` 2.8 vs 49.7 levels,
   ``level_w1_uniform`` 2.1 vs 49.5 (exactly 99/2), ``rotation_w1`` 7.2° vs 88°, ``ink_w1``
   0.007 vs 0.067, ``thickness_w1`` 0.14 vs 1.13 px, ``thickness_change_w1`` 0.12 vs 1.36 px.
   The floors are sampling noise and shrink like 1/√B: compare numbers at one B only. When the
   originals are themselves transformed training images, a marginal distance (``level_w1``,
   ``thickness_w1``) cannot tell a translation that copies its input's nuisance from a fresh
   draw (both follow the law of T): read the ``*_change_w1`` keys and ``rotation_w1``, which
   compare each output with its own input.
6. **Wasserstein-1** between weighted discrete distributions on the line,
   ``∫ |F(t) − G(t)| dt``, summed exactly over the merged support (:func:`wasserstein_1d`); on
   the circle of period P, ``min_c ∫ |F(t) − G(t) − c| dt`` over one period (Rabin, Delon &
   Gousseau 2011), with c the length-weighted median of ``F − G``. Float64 throughout.
7. **Style read-outs** (beyond the paper): how much of the true parameter a code holds.
   :func:`linear_readout` is the held-out R² of a closed-form ridge regression (features
   standardised on the training part; for ROT use :func:`angle_targets`, the angle's
   ``(sin, cos)``); :func:`class_readout` is the held-out accuracy of a nearest-class-mean or
   softmax-regression classifier (e.g. of DIL's kernel or BG's level bin) beside its chance
   level. Splits are random permutations from ``seed`` (stratified by class for
   :func:`class_readout`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..data.nuisance import Background, NuisanceTransform, Rotation, get_transform
from ..errors import ConfigError, DataError

__all__ = ["FIDELITY_TRANSFORMS", "STROKE_STATS", "INK_THRESHOLD", "fidelity", "background_mask",
           "background_levels", "background_histogram", "LevelHistogram", "rotation_grid",
           "estimated_rotation", "stroke_stats", "wasserstein_1d", "circular_wasserstein_1d",
           "wasserstein_to_uniform_levels", "linear_readout", "class_readout", "ClassReadout",
           "angle_targets"]

# The transforms fidelity() can measure (nuisance.py's names; "identity" has no nuisance).
FIDELITY_TRANSFORMS = ("rot", "bg", "dil")
# Columns of stroke_stats(): fraction of pixels above INK_THRESHOLD, 2·area/perimeter (pixels).
STROKE_STATS = ("ink_fraction", "thickness")
INK_THRESHOLD = 0.5
# Chunk of rotated images per grid_sample call in estimated_rotation (bounds memory).
_ROTATION_CHUNK = 8192


# -----------------------------------------------------------------------------
# checks

def _check_images(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1 \
            or not x.is_floating_point():
        raise DataError(f"{name} must be a float tensor (B, 1, H, W) in [0, 1], got "
                        f"{getattr(x, 'dtype', type(x).__name__)} "
                        f"{tuple(getattr(x, 'shape', ()))}; convert uint8 images with "
                        "mil_core.data.nuisance.to_float().")
    if x.shape[0] < 1 or x.shape[2] < 2 or x.shape[3] < 2:
        raise DataError(f"{name} must hold at least one image of at least 2×2 pixels, got "
                        f"shape {tuple(x.shape)}.")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contains NaN or inf values.")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        hint = (" It looks like [-1, 1] (a tanh output): map it with (y + 1) / 2."
                if lo < 0.0 and lo >= -1.0 and hi <= 1.0 else "")
        raise DataError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}].{hint}")
    return x


def _check_samples(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    x = x.detach().reshape(-1).cpu().to(torch.float64)
    if x.numel() == 0:
        raise DataError(f"{name} is empty; give at least one value.")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contains NaN or inf values.")
    return x


def _resolve_transform(transform: str | NuisanceTransform) -> NuisanceTransform:
    tfm = get_transform(transform) if isinstance(transform, str) else transform
    if not isinstance(tfm, NuisanceTransform):
        raise ConfigError(f"transform must be one of {list(FIDELITY_TRANSFORMS)} or a "
                          f"NuisanceTransform, got {type(transform).__name__}.")
    if tfm.name not in FIDELITY_TRANSFORMS:
        raise ConfigError(f"fidelity measures one of {list(FIDELITY_TRANSFORMS)}, got "
                          f"{tfm.name!r}: the identity has no nuisance for a style to hold.")
    return tfm


# -----------------------------------------------------------------------------
# 1-D Wasserstein distances (convention 6)

def _cdf_gaps(x: torch.Tensor, wx: torch.Tensor, y: torch.Tensor, wy: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``F − G`` on each gap between consecutive merged support points, and the gap lengths."""
    pts = torch.cat([x, y])                                                     # (n + m,)
    w = torch.cat([wx, -wy])
    order = torch.argsort(pts, stable=True)
    pts, w = pts[order], w[order]
    diff = torch.cumsum(w, 0)[:-1]                                              # (n + m − 1,)
    gaps = pts[1:] - pts[:-1]
    return diff, gaps


def _weights(n: int, weights: torch.Tensor | None, name: str) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if w.numel() != n or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise DataError(f"{name} must be {n} non-negative weights with a positive sum, got "
                        f"{w.numel()} values summing to {float(w.sum()):.4g}.")
    return w / w.sum()


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor, *, u_weights: torch.Tensor | None = None,
                   v_weights: torch.Tensor | None = None) -> float:
    """Exact Wasserstein-1 distance ``∫ |F_u − F_v| dt`` between two weighted samples on the line.

    Args:
        u, v: samples (any shape, flattened); ``*_weights``: non-negative, same count
            (default: equal weights; normalised to sum 1).
    Returns the distance in the samples' units (0 for equal distributions; ``|a − b|`` for
    point masses at a and b; a shift of every sample by c gives c).
    """
    u, v = _check_samples(u, "u"), _check_samples(v, "v")
    wu = _weights(u.numel(), u_weights, "u_weights")
    wv = _weights(v.numel(), v_weights, "v_weights")
    diff, gaps = _cdf_gaps(u, wu, v, wv)
    return float((diff.abs() * gaps).sum())


def circular_wasserstein_1d(u: torch.Tensor, v: torch.Tensor, *, period: float = 360.0) -> float:
    """Wasserstein-1 distance between two samples of angles on a circle of ``period``.

    ``min_c ∫_0^P |F_u(t) − F_v(t) − c| dt`` (Rabin, Delon & Gousseau 2011), the optimal cost of
    moving mass along the shorter arc: point masses at −170° and 170° are 20° apart, not 340°.
    Samples are wrapped into [−P/2, P/2) first. Equal weights per sample.
    """
    if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
        raise ConfigError(f"period must be a positive number, got {period!r}.")
    u, v = _check_samples(u, "u"), _check_samples(v, "v")
    half = period / 2.0
    u = torch.remainder(u + half, period) - half
    v = torch.remainder(v + half, period) - half
    wu = torch.full((u.numel(),), 1.0 / u.numel(), dtype=torch.float64)
    wv = torch.full((v.numel(),), 1.0 / v.numel(), dtype=torch.float64)
    diff, gaps = _cdf_gaps(u, wu, v, wv)
    # The rest of the circle (after the last point, through −P/2, to the first) has F − G = 0.
    span = float(torch.cat([u, v]).max() - torch.cat([u, v]).min())
    diff = torch.cat([diff, diff.new_zeros(1)])
    gaps = torch.cat([gaps, gaps.new_tensor([period - span])])
    # c = a length-weighted median of F − G minimises Σ gaps · |F − G − c|.
    order = torch.argsort(diff)
    cum = torch.cumsum(gaps[order], 0)
    c = diff[order][int(torch.searchsorted(cum, cum[-1] / 2.0))]
    return float((gaps * (diff - c).abs()).sum())


def wasserstein_to_uniform_levels(levels: torch.Tensor, max_value: int = 99) -> float:
    """Wasserstein-1 distance (in levels) from samples to the discrete uniform U{0..max_value}.

    BG's law (REFERENCE §6, ``max_value`` 99). A point mass at 0 (no background change) is at
    exactly ``max_value / 2``.
    """
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 0:
        raise ConfigError(f"max_value must be an integer >= 0, got {max_value!r}.")
    support = torch.arange(max_value + 1, dtype=torch.float64)
    return wasserstein_1d(levels, support)


# -----------------------------------------------------------------------------
# BG: background levels (convention 2)

def background_mask(images: torch.Tensor) -> torch.Tensor:
    """Background pixels ``(B, 1, H, W)`` bool: within half a level (0.5/255) of the image's own
    (lower) median, which is the background level when it covers more than half the frame."""
    images = _check_images(images, "images")
    med = images.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)                # (B, 1, 1, 1)
    return (images - med).abs() <= 0.5 / 255.0


def background_levels(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Background intensity of each image, in levels of 1/255: ``(B,)`` float64.

    The lower median of the pixels where ``mask`` (bool, the images' shape, True = background)
    holds; without a mask, of the whole image. A true BG image (pixels that were 0 set to v/255)
    gives v (up to float32 rounding) when its background is more than half the frame, with or
    without a mask. Returned on the images' device.
    """
    images = _check_images(images, "images")
    if mask is None:
        vals = images.flatten(1).to(torch.float64)                                 # (B, H·W)
    else:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool \
                or mask.shape != images.shape:
            raise DataError(f"mask must be a bool tensor of the images' shape "
                            f"{tuple(images.shape)}, got {getattr(mask, 'dtype', type(mask))} "
                            f"{tuple(getattr(mask, 'shape', ()))}.")
        empty = ~mask.flatten(1).any(dim=1)
        if bool(empty.any()):
            raise DataError(f"mask selects no pixel of image(s) "
                            f"{torch.nonzero(empty).flatten()[:10].tolist()}; every image needs "
                            "some background (see background_mask).")
        vals = images.flatten(1).to(torch.float64).masked_fill(~mask.flatten(1), float("nan"))
    return vals.nanmedian(dim=1).values * 255.0                                    # (B,)


class LevelHistogram(NamedTuple):
    """Counts of background levels over the support's bins, for plotting beside the true law."""
    edges: torch.Tensor      # (n_bins + 1,) bin edges in levels, from −0.5 to max_value + 0.5
    counts: torch.Tensor     # (n_bins,) int64: levels falling in each bin
    expected: torch.Tensor   # (n_bins,) float64: counts a sample of U{0..max_value} expects
    below: int               # levels under −0.5 (not in any bin)
    above: int               # levels over max_value + 0.5 (e.g. a too-bright background)


def background_histogram(levels: torch.Tensor, *, max_value: int = 99,
                         n_bins: int | None = None) -> LevelHistogram:
    """Histogram of ``levels`` over ``n_bins`` equal bins of [−0.5, max_value + 0.5] (default:
    one bin per integer level), with the counts U{0..max_value} expects and what falls outside."""
    levels = _check_samples(levels, "levels")
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 0:
        raise ConfigError(f"max_value must be an integer >= 0, got {max_value!r}.")
    n_bins = max_value + 1 if n_bins is None else n_bins
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}.")
    lo, hi = -0.5, max_value + 0.5
    edges = torch.linspace(lo, hi, n_bins + 1, dtype=torch.float64)
    inside = (levels >= lo) & (levels <= hi)
    idx = ((levels[inside] - lo) / (hi - lo) * n_bins).floor().long().clamp_(0, n_bins - 1)
    counts = torch.bincount(idx, minlength=n_bins)
    # Integer levels per bin, for the expected counts under the discrete uniform.
    support_bins = ((torch.arange(max_value + 1, dtype=torch.float64) - lo) / (hi - lo)
                    * n_bins).floor().long().clamp_(0, n_bins - 1)
    expected = torch.bincount(support_bins, minlength=n_bins).to(torch.float64) \
        * (levels.numel() / (max_value + 1))
    return LevelHistogram(edges, counts, expected, int((levels < lo).sum()),
                          int((levels > hi).sum()))


# -----------------------------------------------------------------------------
# ROT: estimated rotations (convention 3)

def rotation_grid(step: float = 5.0, max_degrees: float = 180.0) -> torch.Tensor:
    """Candidate angles (degrees, float64) covering [−max_degrees, max_degrees] every ``step``;
    for the full circle (180) −180 is kept and +180 (the same rotation) dropped."""
    if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
        raise ConfigError(f"step must be a positive number of degrees, got {step!r}.")
    if not (isinstance(max_degrees, (int, float)) and 0 <= max_degrees <= 180):
        raise ConfigError(f"max_degrees must be in [0, 180], got {max_degrees!r}.")
    n = int(math.floor(2 * max_degrees / step + 1e-9))
    grid = -max_degrees + step * torch.arange(n + 1, dtype=torch.float64)
    if max_degrees == 180 and n > 0 and abs(float(grid[-1]) - 180.0) < 1e-9:
        grid = grid[:-1]
    return grid


def estimated_rotation(x: torch.Tensor, y: torch.Tensor, angles: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """For each pair, the grid angle θ maximising corr(rotate(x_i, θ), y_i): ``(B,)`` degrees.

    Args:
        x, y: float ``(B, 1, H, W)`` in [0, 1], paired by index.
        angles: candidate angles in degrees (default :func:`rotation_grid`, 5° over ±180°).
    Returns CPU float64 angles; the rotations run on ``x``'s device. ``rotate`` is nuisance.py's
    :class:`Rotation` (bicubic, zero padding, positive θ turns the content counter-clockwise), so
    ``y = Rotation().apply(x, {"angle": θ})`` gives back θ up to half a grid step. Ties go to the
    first angle of the grid (a blank pair gives ``angles[0]``).
    """
    return _estimated_rotations(x, [y], angles)[0]


def _estimated_rotations(x: torch.Tensor, ys: list[torch.Tensor],
                         angles: torch.Tensor | None) -> list[torch.Tensor]:
    """:func:`estimated_rotation` of ``x`` against several targets, rotating ``x`` once."""
    x = _check_images(x, "x")
    for j, y in enumerate(ys):
        y = _check_images(y, "y")
        if x.shape != y.shape:
            raise DataError(f"x and y must be paired images of one shape, got {tuple(x.shape)} "
                            f"and {tuple(y.shape)}.")
    grid = rotation_grid() if angles is None else _check_samples(angles, "angles")
    B, A = x.shape[0], grid.numel()
    rot = Rotation()
    best = [torch.empty(B, dtype=torch.float64) for _ in ys]
    per_chunk = max(1, _ROTATION_CHUNK // A)
    for start in range(0, B, per_chunk):
        stop = min(start + per_chunk, B)
        n = stop - start
        xs = x[start:stop].repeat_interleave(A, dim=0)                             # (n·A, 1, H, W)
        rotated = rot.apply(xs, {"angle": grid.repeat(n)})                         # (n·A, 1, H, W)
        rotated = rotated.flatten(1).to(torch.float64).view(n, A, -1)              # (n, A, P)
        rotated = rotated - rotated.mean(dim=2, keepdim=True)
        rotated = rotated / rotated.norm(dim=2, keepdim=True).clamp_min(1e-12)
        for j, y in enumerate(ys):
            target = y[start:stop].to(x.device).flatten(1).to(torch.float64)       # (n, P)
            target = target - target.mean(dim=1, keepdim=True)
            target = target / target.norm(dim=1, keepdim=True).clamp_min(1e-12)
            corr = torch.einsum("nap,np->na", rotated, target)                     # (n, A)
            best[j][start:stop] = grid[corr.argmax(dim=1).cpu()]
    return best


# -----------------------------------------------------------------------------
# DIL: stroke statistics (convention 4)

def stroke_stats(images: torch.Tensor, threshold: float = INK_THRESHOLD) -> torch.Tensor:
    """Ink fraction and stroke thickness of each image: ``(B, 2)`` float64, columns
    :data:`STROKE_STATS`.

    Ink = pixels above ``threshold``. Thickness = ``2 · area / perimeter`` in pixels, the
    perimeter counting ink/background pixel edges (4-neighbour; outside the frame is
    background): an h×w rectangle inside the frame gives ``h·w / (h + w)``, a long bar its
    width. An image without ink has thickness 0.
    """
    images = _check_images(images, "images")
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold < 1.0):
        raise ConfigError(f"threshold must be in [0, 1), got {threshold!r}.")
    ink = (images[:, 0] > threshold).to(torch.float64)                             # (B, H, W)
    B, H, W = ink.shape
    area = ink.sum(dim=(1, 2))                                                     # (B,)
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))                            # (B, H+2, W+2)
    perimeter = ((padded[:, 1:, :] - padded[:, :-1, :]).abs().sum(dim=(1, 2))
                 + (padded[:, :, 1:] - padded[:, :, :-1]).abs().sum(dim=(1, 2)))  # (B,)
    thickness = torch.where(perimeter > 0, 2.0 * area / perimeter.clamp_min(1.0),
                            torch.zeros_like(area))
    return torch.stack([area / (H * W), thickness], dim=1)                         # (B, 2)


# -----------------------------------------------------------------------------
# the entry point (convention 5)

def _statistics(tfm: NuisanceTransform, originals: torch.Tensor, translated: torch.Tensor,
                reference: torch.Tensor, angles: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image statistic of the originals, translations and reference, in that order: BG's
    levels ``(B,)``, ROT's rotation from the original ``(B,)``, DIL's stroke stats ``(B, 2)``."""
    if tfm.name == "bg":
        mask = background_mask(originals)
        return (background_levels(originals, mask), background_levels(translated, mask),
                background_levels(reference, mask))
    if tfm.name == "rot":
        if angles is None:   # two transformed copies can differ by twice the range
            angles = rotation_grid(5.0, min(2.0 * float(getattr(tfm, "max_degrees", 180.0)),
                                            180.0))
        # One rotation of the originals serves all three targets.
        eo, et, er = _estimated_rotations(originals, [originals, translated, reference], angles)
        return eo, et, er
    return stroke_stats(originals), stroke_stats(translated), stroke_stats(reference)


def _distances(name: str, so: torch.Tensor, st: torch.Tensor, sr: torch.Tensor,
               max_value: int) -> dict[str, float]:
    """The distances of convention 2–4 from the statistics of originals, translations and
    reference."""
    if name == "bg":
        return {"level_w1": wasserstein_1d(st, sr),
                "level_w1_uniform": wasserstein_to_uniform_levels(st, max_value),
                "level_change_w1": wasserstein_1d(st - so, sr - so)}
    if name == "rot":
        return {"rotation_w1": circular_wasserstein_1d(st, sr)}
    return {"ink_w1": wasserstein_1d(st[:, 0], sr[:, 0]),
            "thickness_w1": wasserstein_1d(st[:, 1], sr[:, 1]),
            "thickness_change_w1": wasserstein_1d(st[:, 1] - so[:, 1], sr[:, 1] - so[:, 1])}


def fidelity(transform: str | NuisanceTransform, originals: torch.Tensor,
             translated: torch.Tensor, reference: torch.Tensor, *,
             angles: torch.Tensor | None = None) -> dict[str, float]:
    """How far style swaps are from the true nuisance transform (module docstring, 1–5).

    Args:
        transform: "rot", "bg" or "dil", or such a :class:`NuisanceTransform` (its parameters
            give BG's ``max_value`` and ROT's angle range).
        originals, translated, reference: float ``(B, 1, H, W)`` in [0, 1], one shape, paired by
            index (convention 1): inputs, their translations, true transforms of the same images.
        angles: ROT's candidate grid in degrees (default: 5° steps over twice the transform's
            range, at most ±180°, since two transformed copies can differ by that much).

    Returns ``{distance: value}``, each also with the suffix ``_none`` (the same distance with
    ``translated`` replaced by ``originals``):

    - bg: ``level_w1``, ``level_w1_uniform``, ``level_change_w1`` (levels of 1/255), plus the
      sampling floor ``level_w1_uniform_reference``;
    - rot: ``rotation_w1`` (degrees, circular);
    - dil: ``ink_w1`` (fraction of pixels), ``thickness_w1``, ``thickness_change_w1`` (pixels).
    """
    tfm = _resolve_transform(transform)
    originals = _check_images(originals, "originals")
    translated = _check_images(translated, "translated")
    reference = _check_images(reference, "reference")
    if not originals.shape == translated.shape == reference.shape:
        raise DataError(f"originals, translated and reference must be paired images of one shape "
                        f"(one translation and one true transform per original), got "
                        f"{tuple(originals.shape)}, {tuple(translated.shape)} and "
                        f"{tuple(reference.shape)}.")
    if originals.shape[0] < 2:
        raise DataError("fidelity compares distributions: give at least 2 images, got 1.")
    max_value = int(getattr(tfm, "max_value", Background.max_value))
    so, st, sr = _statistics(tfm, originals, translated, reference, angles)
    out = _distances(tfm.name, so, st, sr, max_value)
    none = _distances(tfm.name, so, so, sr, max_value)   # a "translation" that changes nothing
    out.update({f"{k}_none": v for k, v in none.items()})
    if tfm.name == "bg":
        out["level_w1_uniform_reference"] = wasserstein_to_uniform_levels(sr, max_value)
    return out


# -----------------------------------------------------------------------------
# style read-outs (convention 7)

def angle_targets(degrees: torch.Tensor) -> torch.Tensor:
    """``(sin θ, cos θ)`` of angles in degrees, ``(N, 2)`` float64: ROT's regression target
    (continuous across ±180°, unlike the angle itself)."""
    rad = _check_samples(degrees, "degrees") * (math.pi / 180.0)
    return torch.stack([torch.sin(rad), torch.cos(rad)], dim=1)                    # (N, 2)


def _check_fraction(train_fraction: float) -> None:
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) \
            or not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1) (the rest is held out), got "
                          f"{train_fraction!r}.")


def _check_features(features: object, n_min: int) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 \
            or not features.is_floating_point():
        raise DataError(f"features must be a float tensor (N, D), got "
                        f"{getattr(features, 'dtype', type(features).__name__)} "
                        f"{tuple(getattr(features, 'shape', ()))}; flatten style codes "
                        "(N, D, 1, 1) with .flatten(1).")
    if features.shape[0] < n_min or features.shape[1] < 1:
        raise DataError(f"features needs at least {n_min} rows and one column, got "
                        f"{tuple(features.shape)}.")
    if not bool(torch.isfinite(features).all()):
        raise DataError("features contains NaN or inf values.")
    return features.detach().cpu().to(torch.float64)


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-12)
    return (train - mean) / std, (test - mean) / std


def linear_readout(features: torch.Tensor, targets: torch.Tensor, *, train_fraction: float = 0.5,
                   seed: int = 0, ridge: float = 1e-3) -> float:
    """Held-out R² of a ridge regression from ``features`` ``(N, D)`` to ``targets`` ``(N,)`` or
    ``(N, k)`` (e.g. :func:`angle_targets` of ROT's angles, BG's levels).

    A random ``train_fraction`` of the rows (``torch.randperm`` seeded by ``seed``) fits
    ``w = (XᵀX + ridge·n·I)⁻¹ Xᵀ(Y − Ȳ)`` in closed form (``torch.linalg.solve``, float64) on
    features standardised with the training mean and std, plus the training mean as intercept.
    R² on the rest is ``1 − Σ(Y − Ŷ)² / Σ(Y − Ȳ_test)²`` pooled over the k outputs: 1 for a
    linear target, ≈ 0 (slightly negative) for one the features do not predict.
    """
    _check_fraction(train_fraction)
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge > 0):
        raise ConfigError(f"ridge must be a positive number, got {ridge!r}.")
    X = _check_features(features, 4)
    if not isinstance(targets, torch.Tensor) or targets.dim() not in (1, 2) \
            or targets.shape[0] != X.shape[0]:
        raise DataError(f"targets must be a tensor (N,) or (N, k) with N = {X.shape[0]} (the "
                        f"features' rows), got {tuple(getattr(targets, 'shape', ()))}.")
    Y = targets.detach().cpu().to(torch.float64)
    Y = Y[:, None] if Y.dim() == 1 else Y                                          # (N, k)
    if not bool(torch.isfinite(Y).all()):
        raise DataError("targets contains NaN or inf values.")
    n = X.shape[0]
    n_train = min(max(int(round(train_fraction * n)), 2), n - 2)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train:]
    Xtr, Xte = _standardise(X[tr], X[te])
    ymean = Y[tr].mean(dim=0)
    lhs = Xtr.T @ Xtr + ridge * n_train * torch.eye(X.shape[1], dtype=torch.float64)  # (D, D)
    w = torch.linalg.solve(lhs, Xtr.T @ (Y[tr] - ymean))                           # (D, k)
    pred = Xte @ w + ymean                                                         # (n_test, k)
    sst = float(((Y[te] - Y[te].mean(dim=0)) ** 2).sum())
    if sst == 0.0:
        raise DataError("targets are constant on the held-out rows, so R² is undefined; give "
                        "targets that vary.")
    return 1.0 - float(((Y[te] - pred) ** 2).sum()) / sst


class ClassReadout(NamedTuple):
    """Held-out accuracy of a classifier on style codes, and what guessing scores."""
    accuracy: float    # fraction of held-out rows classified correctly
    chance: float      # accuracy of always answering the training part's most frequent class
    n_train: int       # rows fitted
    n_test: int        # rows held out
    n_classes: int     # distinct labels


def _stratified_split(y: torch.Tensor, train_fraction: float, seed: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tr, te = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        k = min(max(int(round(train_fraction * idx.numel())), 1), idx.numel() - 1)
        tr.append(idx[:k])
        te.append(idx[k:])
    return torch.cat(tr), torch.cat(te)


def _softmax_fit_predict(Xtr: torch.Tensor, ytr: torch.Tensor, Xte: torch.Tensor, K: int,
                         weight_decay: float) -> torch.Tensor:
    """Multinomial logistic regression, zero init, full-batch L-BFGS (deterministic)."""
    W = torch.zeros(Xtr.shape[1] + 1, K, dtype=torch.float64, requires_grad=True)   # (D+1, K)
    A = torch.cat([Xtr, torch.ones(Xtr.shape[0], 1, dtype=torch.float64)], dim=1)  # (n, D+1)
    opt = torch.optim.LBFGS([W], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(A @ W, ytr) \
            + weight_decay * (W[:-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    Ate = torch.cat([Xte, torch.ones(Xte.shape[0], 1, dtype=torch.float64)], dim=1)
    return (Ate @ W.detach()).argmax(dim=1)


def class_readout(features: torch.Tensor, labels: torch.Tensor, *, train_fraction: float = 0.5,
                  seed: int = 0, method: str = "ncm", weight_decay: float = 1e-3
                  ) -> ClassReadout:
    """Held-out accuracy of a classifier from ``features`` ``(N, D)`` to integer ``labels``
    ``(N,)`` (e.g. DIL's kernel, a bin of BG's level), beside its chance level.

    Each class is split ``train_fraction`` / rest at random (seeded by ``seed``; at least one
    row of each class on each side, so every class needs two rows). Features are standardised
    with the training mean and std. ``method``: ``"ncm"`` assigns the class with the nearest
    training mean (Euclidean); ``"softmax"`` fits a multinomial logistic regression (L2
    ``weight_decay`` on the weights, L-BFGS from zero). ``chance`` is what always answering the
    training part's most frequent class scores on the held-out rows (1/K for balanced classes).
    """
    _check_fraction(train_fraction)
    if method not in ("ncm", "softmax"):
        raise ConfigError(f"method must be 'ncm' (nearest class mean) or 'softmax', got "
                          f"{method!r}.")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
    X = _check_features(features, 4)
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 \
            or labels.shape[0] != X.shape[0] or labels.is_floating_point() \
            or labels.is_complex():
        raise DataError(f"labels must be an integer tensor (N,) with N = {X.shape[0]} (the "
                        f"features' rows), got {getattr(labels, 'dtype', type(labels).__name__)} "
                        f"{tuple(getattr(labels, 'shape', ()))}.")
    classes, y = torch.unique(labels.detach().cpu(), return_inverse=True)          # y in 0..K−1
    K = classes.numel()
    counts = torch.bincount(y, minlength=K)
    if K < 2:
        raise DataError(f"class_readout needs at least 2 distinct labels, got {K}.")
    if int(counts.min()) < 2:
        raise DataError(f"every class needs at least 2 rows (one to fit, one to test); label "
                        f"{classes[int(counts.argmin())].item()} has {int(counts.min())}.")
    tr, te = _stratified_split(y, train_fraction, seed)
    Xtr, Xte = _standardise(X[tr], X[te])
    if method == "ncm":
        means = torch.stack([Xtr[y[tr] == c].mean(dim=0) for c in range(K)])         # (K, D)
        pred = torch.cdist(Xte, means).argmin(dim=1)
    else:
        pred = _softmax_fit_predict(Xtr, y[tr], Xte, K, float(weight_decay))
    majority = int(torch.bincount(y[tr], minlength=K).argmax())
    return ClassReadout(accuracy=float((pred == y[te]).double().mean()),
                        chance=float((y[te] == majority).double().mean()),
                        n_train=int(tr.numel()), n_test=int(te.numel()), n_classes=int(K))
