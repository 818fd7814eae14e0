"""Inputs for SinGAN's applications that a user can make without an image editor.

SinGAN's users have to draw the naive paste, its mask, the edit and the paint by hand (REFERENCE
§9). These builders make them from images in code, so every application runs end to end:

- :func:`naive_paste` — an object image pasted into a background box, and the box's mask
  (harmonization);
- :func:`copy_move` — a region of an image copied elsewhere in it, and the destination's mask
  (editing);
- :func:`quantize_paint` — an image reduced to k flat colours by k-means over its pixels
  (paint-to-image);
- :func:`load_mask` — a user's mask file, checked against the image it belongs to.

Images are float (3, H, W) in [-1, 1]; masks float (1, H, W) of exact 0s and 1s. Nothing a user
passes is modified.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .applications import _check_image, check_mask
from .data.pyramid import resize_to
from .errors import ConfigError, DataError

__all__ = ["naive_paste", "copy_move", "quantize_paint", "load_mask", "box_mask"]


def _check_box(box: Sequence[int], h: int, w: int, what: str) -> tuple[int, int, int, int]:
    if len(box) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                            for v in box):
        raise ConfigError(f"{what} must be (top, left, height, width) integers, got {box!r}")
    top, left, bh, bw = (int(v) for v in box)
    if bh < 1 or bw < 1 or top < 0 or left < 0 or top + bh > h or left + bw > w:
        raise ConfigError(f"{what} {box!r} does not fit inside the {h}×{w} image")
    return top, left, bh, bw


def box_mask(h: int, w: int, box: Sequence[int]) -> torch.Tensor:
    """A (1, H, W) mask of ones inside ``box`` = (top, left, height, width)."""
    top, left, bh, bw = _check_box(box, h, w, "box")
    m = torch.zeros(1, h, w)
    m[:, top:top + bh, left:left + bw] = 1
    return m


def naive_paste(background: torch.Tensor, obj: torch.Tensor, box: Sequence[int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``obj`` resized into ``box`` = (top, left, height, width) of ``background``: the naive
    paste SinGAN's harmonization starts from, and its mask. Returns (composite, mask)."""
    bg = _check_image(background, "naive_paste: background")
    ob = _check_image(obj, "naive_paste: obj")
    top, left, bh, bw = _check_box(box, bg.shape[1], bg.shape[2], "naive_paste: box")
    out = bg.clone()
    out[:, top:top + bh, left:left + bw] = resize_to(ob, (bh, bw))
    return out.clamp(-1, 1), box_mask(bg.shape[1], bg.shape[2], (top, left, bh, bw))


def copy_move(image: torch.Tensor, src: Sequence[int], dst: Sequence[int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The region ``src`` = (top, left, height, width) of ``image`` copied to the top-left corner
    ``dst`` = (top, left): an edit with a visible seam, as SinGAN's editing input. Returns
    (edited, mask of the destination)."""
    x = _check_image(image, "copy_move: image")
    h, w = x.shape[1:]
    top, left, bh, bw = _check_box(src, h, w, "copy_move: src")
    if len(dst) != 2:
        raise ConfigError(f"copy_move: dst must be (top, left), got {dst!r}")
    dt, dl, _, _ = _check_box((dst[0], dst[1], bh, bw), h, w, "copy_move: dst box")
    out = x.clone()
    out[:, dt:dt + bh, dl:dl + bw] = x[:, top:top + bh, left:left + bw]
    return out, box_mask(h, w, (dt, dl, bh, bw))


def quantize_paint(image: torch.Tensor, k: int = 6, iters: int = 20, seed: int = 0
                   ) -> torch.Tensor:
    """A paint of ``image``: every pixel replaced by the nearest of ``k`` colours found by
    k-means (Lloyd's algorithm, seeded k-means++ start) over its pixels — flat colour regions
    in the image's layout, like SinGAN's hand-drawn paints."""
    x = _check_image(image, "quantize_paint: image")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 64:
        raise ConfigError(f"quantize_paint: k must be an integer in [2, 64], got {k!r}")
    pix = x.reshape(3, -1).t().double()                                   # (P, 3)
    g = torch.Generator().manual_seed(int(seed))
    centres = pix[torch.randint(len(pix), (1,), generator=g)]
    for _ in range(1, k):                                                 # k-means++ seeding
        d = torch.cdist(pix, centres).min(1).values ** 2
        if float(d.sum()) == 0:
            break
        centres = torch.cat([centres, pix[torch.multinomial(d / d.sum(), 1, generator=g)]])
    for _ in range(iters):
        assign = torch.cdist(pix, centres).argmin(1)
        new = torch.stack([pix[assign == j].mean(0) if bool((assign == j).any()) else centres[j]
                           for j in range(len(centres))])
        if torch.allclose(new, centres):
            break
        centres = new
    assign = torch.cdist(pix, centres).argmin(1)
    return centres[assign].t().reshape(x.shape).float().clamp(-1, 1)


def load_mask(path: str | os.PathLike, image: torch.Tensor) -> torch.Tensor:
    """A user's mask file (any image format; white = 1) for ``image``: it must have the image's
    size and hold only black and white (anti-aliased edges are refused with the fix)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    vals = np.unique(arr)
    if not set(vals.tolist()) <= {0, 255}:
        raise DataError(f"{path}: the mask is not binary ({len(vals)} grey levels); save it "
                        "with only black (0) and white (255), without anti-aliasing")
    return check_mask(torch.from_numpy(arr == 255).float()[None], image, str(path))
