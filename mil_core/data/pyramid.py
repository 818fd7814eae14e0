"""The multi-scale image pyramid shared by every GAN here (SinGAN, ConSinGAN, MIL).

REFERENCE §2 (SinGAN): the image is first resized so its long side is at most ``max_size``
(250); with ``short`` its short side after that, the pyramid has

    n = ceil(log(min_size / short) / log(scale_factor)) + 1      steps (n + 1 scales),
    r = (min_size / short) ** (1 / n)                             effective factor,

so the coarsest scale's short side is exactly ``min_size`` (25). A 250×188 image gives 10 scales
and r ≈ 0.80. SinGAN's code counts the steps on the *original* size and subtracts those "used"
by the max_size resize; for images much larger than max_size that can give one scale fewer than
counting on the resized image as done here (the pyramid depends only on the resized image).

REFERENCE §4 (MIL): a fixed number of scales (7) and one aspect ratio H/W forced on every image
(0.75; 1 for Valley); then r = (min_size / short) ** (1 / (n_scales - 1)). Here the aspect is
forced by a centre crop before resizing (MIL's code stretches the image instead, which distorts
it); and ``min_size`` is always the coarsest *short* side (MIL's code applies it to the width,
i.e. the long side for aspect 0.75, giving a 18×25 coarsest scale and r ≈ 0.68).

Every scale is resized directly from the full-resolution (cropped) image with antialiased bicubic
interpolation (SinGAN uses a MATLAB-style bicubic imresize, which also antialiases), then clamped
to [-1, 1]. Shapes are computed with ``ceil`` like SinGAN's imresize.

An image whose short side (or, with a forced aspect, whose crop's short side) is below
``min_size`` has no pyramid: :func:`plan_pyramid` refuses it, and :func:`check_min_size` refuses
a whole set up front, naming the first such image, before any training starts on it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from ..profiles import ImageConfig

__all__ = ["PyramidConfig", "PyramidPlan", "plan_pyramid", "pyramid_shapes",
           "effective_scale_factor", "build_pyramid", "resize_to", "center_crop_to_aspect",
           "check_min_size"]

_EPS = 1e-6   # tolerance for ceil() of sizes that are integers up to float error


@dataclass
class PyramidConfig:
    """How an image becomes a coarse→fine pyramid (defaults: SinGAN, REFERENCE §2)."""
    scale_factor: float = 0.75       # nominal factor between scales, used to count scales (0, 1)
    min_size: int = 25               # short side at the coarsest scale, px (MIL Places-50: 28)
    max_size: int = 250              # long side at the finest scale, px (images are not enlarged)
    n_scales: int | None = None      # None: SinGAN's rule; an int >= 2 fixes the count (MIL: 7)
    aspect: float | None = None      # None keeps the image's H/W; a float forces it (MIL: 0.75)
    antialias: bool = True           # antialiased bicubic when downsampling
    upscale: bool = False            # True: enlarge images smaller than max_size (MIL does, so
    #                                  that every image of a data set gets the same shapes)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_profile(cls, image: "ImageConfig", style: str = "mil") -> "PyramidConfig":
        """The pyramid of a profile's :class:`~mil_core.profiles.ImageConfig`.

        ``style="mil"``: a fixed number of scales and a forced aspect ratio, images enlarged when
        needed so every image of a data set gets the same shapes (REFERENCE §4).
        ``style="singan"``: SinGAN's rule, the image's own aspect ratio (REFERENCE §2).
        """
        common = dict(scale_factor=image.scale_factor, min_size=image.min_size,
                      max_size=image.max_size)
        if style == "mil":
            return cls(**common, n_scales=image.n_scales, aspect=image.aspect, upscale=True)
        if style == "singan":
            return cls(**common)
        raise ConfigError(f"PyramidConfig.from_profile: style must be 'mil' or 'singan', "
                          f"got {style!r}")

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        sf = self.scale_factor
        if not isinstance(sf, (int, float)) or not 0.0 < float(sf) < 1.0:
            raise ConfigError(f"PyramidConfig.scale_factor must be in (0, 1), got {sf!r}.")
        for field in ("min_size", "max_size"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"PyramidConfig.{field} must be a positive integer, got {v!r}.")
        if self.min_size > self.max_size:
            raise ConfigError(f"PyramidConfig.min_size ({self.min_size}) must not exceed "
                              f"max_size ({self.max_size}).")
        n = self.n_scales
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
            raise ConfigError(f"PyramidConfig.n_scales must be None or an integer >= 2, got {n!r}.")
        a = self.aspect
        if a is not None and (not isinstance(a, (int, float)) or not math.isfinite(a) or a <= 0):
            raise ConfigError(f"PyramidConfig.aspect must be None or a positive H/W ratio, "
                              f"got {a!r}.")


@dataclass(frozen=True)
class PyramidPlan:
    """Everything about one image's pyramid except the pixels."""
    crop: tuple[int, int, int, int]    # (top, left, height, width) of the centre crop
    shapes: list[tuple[int, int]]      # (H, W) per scale, coarse -> fine
    scale_factor: float                # effective factor r between consecutive scales

    @property
    def n_scales(self) -> int:
        return len(self.shapes)

    @property
    def finest(self) -> tuple[int, int]:
        return self.shapes[-1]


def _ceil(x: float) -> int:
    return max(1, math.ceil(x - _EPS))


def _crop_box(h: int, w: int, aspect: float | None) -> tuple[int, int, int, int]:
    """Centre crop of an ``h``×``w`` image to H/W = ``aspect`` (the whole image when None)."""
    if aspect is None:
        return 0, 0, h, w
    if h / w > aspect:                       # too tall: keep the width, cut top and bottom
        ch, cw = max(1, round(w * aspect)), w
    else:                                    # too wide: keep the height, cut left and right
        ch, cw = h, max(1, round(h / aspect))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def plan_pyramid(h: int, w: int, cfg: PyramidConfig) -> PyramidPlan:
    """Crop box, shapes (coarse→fine) and effective factor for an ``h``×``w`` image.

    Raises:
        DataError: the image's short side (after the aspect crop) is below ``cfg.min_size``.
        ConfigError: the config cannot give distinct, increasing scales for this image.
    """
    cfg.validate()
    if min(h, w) < cfg.min_size:
        raise DataError(f"Image of {h}×{w} (H×W) is smaller than PyramidConfig.min_size="
                        f"{cfg.min_size}; use a larger image or lower min_size.")
    top, left, ch, cw = _crop_box(h, w, cfg.aspect)
    if min(ch, cw) < cfg.min_size:
        raise DataError(f"Image of {h}×{w} (H×W) cropped to aspect {cfg.aspect} is {ch}×{cw}, "
                        f"smaller than min_size={cfg.min_size}; use a larger image.")
    s = cfg.max_size / max(ch, cw)
    s = s if cfg.upscale else min(s, 1.0)
    fh, fw = max(1, round(ch * s)), max(1, round(cw * s))            # finest (H, W)
    short = min(fh, fw)
    if short < cfg.min_size:
        raise ConfigError(f"With max_size={cfg.max_size} the finest scale is {fh}×{fw}, whose "
                          f"short side is below min_size={cfg.min_size} (aspect too extreme); "
                          "lower min_size or raise max_size.")
    ratio = cfg.min_size / short                                      # <= 1
    if cfg.n_scales is not None:
        steps = cfg.n_scales - 1
    elif ratio >= 1.0:
        steps = 0                                                     # already at min_size
    else:
        steps = math.ceil(math.log(ratio) / math.log(cfg.scale_factor) - _EPS) + 1
    r = ratio ** (1.0 / steps) if steps > 0 else 1.0
    shapes = [(_ceil(fh * r ** (steps - i)), _ceil(fw * r ** (steps - i))) for i in range(steps)]
    shapes.append((fh, fw))
    for a, b in zip(shapes, shapes[1:]):
        if not (a[0] < b[0] and a[1] < b[1]):
            raise ConfigError(f"Scales {a} and {b} are not strictly increasing for a {fh}×{fw} "
                              f"image (effective factor {r:.4f}); use fewer n_scales or a "
                              "smaller min_size.")
    return PyramidPlan(crop=(top, left, ch, cw), shapes=shapes, scale_factor=r)


def pyramid_shapes(h: int, w: int, cfg: PyramidConfig) -> list[tuple[int, int]]:
    """(H, W) of every scale, coarse → fine, for an ``h``×``w`` image."""
    return plan_pyramid(h, w, cfg).shapes


def effective_scale_factor(h: int, w: int, cfg: PyramidConfig) -> float:
    """The factor r actually used between consecutive scales of an ``h``×``w`` image (≈0.80 for
    250×188 with SinGAN's defaults). Upsample between scales to the next scale's *shape*
    (:func:`resize_to`), not by 1/r, so that rounding never drifts."""
    return plan_pyramid(h, w, cfg).scale_factor


def resize_to(x: torch.Tensor, shape: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bicubic resize of ``(3, H, W)`` or ``(B, C, H, W)`` to ``shape``, clamped to [-1, 1]."""
    batched = x.dim() == 4
    xb = x if batched else x.unsqueeze(0)                             # (B, C, H, W)
    if tuple(xb.shape[-2:]) == tuple(shape):
        out = xb.clone()
    else:
        out = F.interpolate(xb, size=tuple(shape), mode="bicubic", align_corners=False,
                            antialias=antialias)
    out = out.clamp(-1.0, 1.0)
    return out if batched else out.squeeze(0)


def center_crop_to_aspect(x: torch.Tensor, aspect: float | None) -> torch.Tensor:
    """Centre crop of ``(..., H, W)`` to H/W = ``aspect`` (unchanged when None)."""
    top, left, ch, cw = _crop_box(x.shape[-2], x.shape[-1], aspect)
    return x[..., top:top + ch, left:left + cw]


def build_pyramid(img: torch.Tensor, cfg: PyramidConfig | None = None) -> list[torch.Tensor]:
    """The pyramid of ``img`` ``(3, H, W)`` or ``(B, 3, H, W)`` in [-1, 1], coarse → fine.

    The image is centre-cropped to ``cfg.aspect`` (if set), then every scale is resized directly
    from it (never from the previous scale) with bicubic interpolation, antialiased when
    ``cfg.antialias``, and clamped to [-1, 1]. Returns tensors of the input's rank.
    """
    cfg = cfg if cfg is not None else PyramidConfig()
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or img.shape[-3] != 3:
        got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise DataError(f"build_pyramid expects an image tensor (3, H, W) or (B, 3, H, W), got "
                        f"{got}; load images with mil_core.data.load_image.")
    if not img.is_floating_point():
        raise DataError(f"build_pyramid expects a float tensor in [-1, 1], got {img.dtype}; "
                        "convert with x.float() / 127.5 - 1.")
    plan = plan_pyramid(img.shape[-2], img.shape[-1], cfg)
    x = center_crop_to_aspect(img, cfg.aspect)                        # (..., 3, ch, cw)
    return [resize_to(x, s, cfg.antialias) for s in plan.shapes]


def check_min_size(images: Sequence[torch.Tensor] | torch.Tensor, cfg: PyramidConfig,
                   names: Sequence[str] | None = None, what: str = "training") -> None:
    """Refuse images too small for ``cfg``'s pyramid before any work starts on them.

    An image's short side must be at least ``cfg.min_size`` (the coarsest scale's short side),
    and so must the short side of its centre crop when ``cfg.aspect`` forces one. Images larger
    than that are not checked further here (:func:`plan_pyramid` does when the pyramid is built).

    Args:
        images: ``(3, H, W)`` tensors (sizes may differ) or one ``(N, 3, H, W)`` tensor.
        cfg: the pyramid the images are meant for.
        names: one name per image for the message (default ``"image {i}"``).
        what: what the images are for, e.g. ``"training"`` or ``"inference"`` (for the message).

    Raises:
        DataError: the first image that is too small, by name, with its H×W and ``min_size``; or
            ``images`` is not a list of ``(3, H, W)`` tensors or an ``(N, 3, H, W)`` tensor.
        ConfigError: ``names`` does not give one name per image, or ``cfg`` is invalid.
    """
    cfg.validate()
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise DataError(f"check_min_size expects (3, H, W) tensors or an (N, 3, H, W) tensor, "
                            f"got a tensor of shape {tuple(images.shape)}.")
        sizes = [tuple(images.shape[-2:])] * images.shape[0]
    else:
        sizes = []
        for i, img in enumerate(images):
            if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
                got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
                raise DataError(f"check_min_size expects (3, H, W) tensors or an (N, 3, H, W) "
                                f"tensor, got {got} for image {i}; load images with "
                                "mil_core.data.load_image.")
            sizes.append(tuple(img.shape[-2:]))
    if names is not None and (isinstance(names, str) or len(names) != len(sizes)):
        raise ConfigError(f"check_min_size: names must give one name per image ({len(sizes)}), "
                          f"got {names!r}.")
    for i, (h, w) in enumerate(sizes):
        name = f"Image {names[i]!r}" if names is not None else f"Image {i}"
        if min(h, w) < cfg.min_size:
            raise DataError(f"{name} is {h}×{w} (H×W), smaller than the pyramid's "
                            f"min_size={cfg.min_size} px (the short side of its coarsest scale), "
                            f"so it cannot be used for {what}. Use a larger image, or lower the "
                            "pyramid's min_size.")
        _, _, ch, cw = _crop_box(h, w, cfg.aspect)
        if min(ch, cw) < cfg.min_size:
            raise DataError(f"{name} is {h}×{w} (H×W), and its centre crop to aspect "
                            f"{cfg.aspect} (H/W) is {ch}×{cw}, smaller than the pyramid's "
                            f"min_size={cfg.min_size} px, so it cannot be used for {what}. Use a "
                            "larger image, or lower the pyramid's min_size.")
