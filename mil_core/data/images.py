"""Robust loading of single images and folders of images (the MIL side of the project).

Every GAN here (SinGAN, ConSinGAN, MIL; REFERENCE §2–§4) works on RGB tensors in [-1, 1]. This
module turns any file a user is likely to point at — grayscale, palette, transparent, CMYK,
16-bit, float, EXIF-rotated — into such a tensor, and turns every file that cannot be used
(unreadable, truncated, empty, not an image, too small, too large, a broken link, pixel values
it would have to guess the scale of) into ONE :class:`~mil_core.errors.DataError` that names the
file and says what to do. Source files are only ever opened read-only.

Conventions chosen here:

- **Value range.** :func:`load_image` returns float32 ``(3, H, W)`` in [-1, 1],
  :func:`load_image_uint8` uint8 ``(H, W, 3)``. 8-bit files map ``v → v / 255``; 16-bit files
  (grey and colour, PNG and TIFF) ``v → v / 65535`` at full depth: Pillow cuts 16-bit colour to
  its high bytes, so such files are decoded a second time with the raw mode that keeps the low
  bytes, and the two are combined. 32-bit integer (``I``) files are read on the 16-bit scale and
  refused when they hold values outside 0…65535. Float (``F``) files are read as they are when
  every value lies in [0, 1] and refused otherwise (negative, > 1, NaN or inf): no 255 / 65535
  scale is guessed for float data.
- **Transparency** is composited over white (paper, not black).
- **Size.** At most :data:`MAX_PIXELS` pixels (H·W) are decoded (``max_pixels=`` or the
  ``MIL_MAX_PIXELS`` environment variable override it); the size is read from the header and
  checked before any pixel is decoded. With ``max_size=``, images whose long side is at least
  twice ``max_size`` come back reduced by an integer factor to a long side in
  ``[max_size, 2 · max_size)``: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (and the pixel limit
  then applies to that reduced decode), other formats are decoded in full and box-averaged.
- **Folders** (:func:`list_images`): image files directly inside, natural order; a broken
  symbolic link is an error naming it and its target, never skipped.

Places-50 (the SinGAN / MIL evaluation set, REFERENCE §4 and §8) lives beside the project at
``../shared/data/places50``; :func:`places50_dir` finds it and :func:`download_places50` fetches
the same files from the public MetaInternalLearning repository for users with internet.
"""
from __future__ import annotations

import os
import re
import sys
import urllib.error
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..runtime import repo_root
from ..errors import ConfigError, DataError, OfflineError
from .download import download_file

__all__ = [
    "IMAGE_EXTENSIONS", "load_image", "load_image_uint8", "list_images", "load_folder",
    "natural_key", "places50_dir", "download_places50", "download_lsun50",
    "PLACES50_URL", "LSUN50_URL", "MAX_PIXELS", "MAX_PIXELS_ENV",
]

# File name endings accepted by list_images (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Public MetaInternalLearning repository (MIT licence), folders data/places_50 and data/lsun_50.
_MIL_RAW = "https://raw.githubusercontent.com/RaphaelBensTAU/MetaInternalLearning/main/data"
PLACES50_URL = _MIL_RAW + "/places_50/{index}.jpg"
LSUN50_URL = _MIL_RAW + "/lsun_50/{index}.jpg"
_PLACES50_MISSING = {18}  # 18.jpg is absent upstream (see ../shared/data/places50/README.md)

# Pillow errors that mean "this file is not a usable image" (truncated files raise OSError).
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)

# Most pixels (H·W) decoded per image: 50 MP is 0.6 GB as float32 RGB. A larger image is refused
# from its header, before decoding; the max_pixels argument, else this environment variable,
# overrides the limit.
MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "MIL_MAX_PIXELS"

# Pillow decodes 16-bit colour samples (raw modes "RGB;16B", ...) to their high byte. The raw
# mode with the same bits per pixel (so PNG filters and TIFF strips decode alike) whose unpacker
# keeps the LOW byte instead; "N" is the machine's byte order.
_NATIVE_LOW = "B" if sys.byteorder == "little" else "L"
_LOW_BYTE_RAWMODE = {f"{m};16{e}": f"{m};16{low}" for m in ("RGB", "RGBA")
                     for e, low in (("B", "L"), ("L", "B"), ("N", _NATIVE_LOW))}


# ----------------------------------------------------------------------------- single images

def _pixel_limit(max_pixels: int | None) -> tuple[int, str]:
    """The pixel limit in force and where it comes from (for the error message)."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ConfigError(f"max_pixels must be a positive integer (pixels, H·W) or None, "
                              f"got {max_pixels!r}.")
        return max_pixels, f"max_pixels={max_pixels}"
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return MAX_PIXELS, f"the default MAX_PIXELS={MAX_PIXELS:_}"
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"The environment variable {MAX_PIXELS_ENV} must be a positive integer "
                          f"(pixels, H·W), got {env!r}; fix it or unset it.")
    return value, f"{MAX_PIXELS_ENV}={env}"


def _open(f: BinaryIO) -> Image.Image:
    """``Image.open`` (header only) without Pillow's DecompressionBombWarning: the pixel limit of
    this module is checked instead (Pillow's DecompressionBombError still propagates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f)


def _draft_for(im: Image.Image, max_size: int | None) -> bool:
    """Ask a JPEG's decoder for a 1/2, 1/4 or 1/8 scale whose long side stays >= ``max_size``.

    Only when the long side is at least twice ``max_size``; ``draft`` is a no-op for other formats.
    Returns whether the decode size changed.
    """
    w, h = im.size
    if max_size is None or max(w, h) < 2 * max_size:
        return False
    long = max(w, h)
    target = (max(1, -(-w * max_size // long)), max(1, -(-h * max_size // long)))  # ceil
    # Pillow picks the largest scale 1/k (k in 8, 4, 2) with k <= W // tw and k <= H // th, so
    # the long side becomes ceil(long / k) >= the target's long side = max_size.
    im.draft(None, target)
    return im.size != (w, h)


def _check_pixels(im: Image.Image, path: Path, limit: tuple[int, str],
                  header: tuple[int, int], drafted: bool) -> None:
    """Refuse, before decoding, an image whose decode size ``im.size`` exceeds the pixel limit."""
    w, h = im.size
    if w * h <= limit[0]:
        return
    hw, hh = header
    size = f"{hh}×{hw} (H×W) = {hh * hw:,} pixels"
    if drafted:
        size += f", {h}×{w} = {h * w:,} pixels even when decoded at reduced size for max_size"
    hint = ("" if drafted or im.format not in ("JPEG", "MPO") else
            ", or pass max_size (e.g. max_size=250) to decode this JPEG at reduced size")
    raise DataError(f"Image {path} is {size}, above the decoding limit of {limit[0]:,} pixels "
                    f"({limit[1]}). Downscale the file (e.g. to a long side of 2000 px){hint}, "
                    f"or raise the limit with max_pixels=... or the {MAX_PIXELS_ENV} environment "
                    "variable.")


def _tile_rawmode(tile: tuple) -> str | None:
    """The raw mode of a Pillow tile ``(codec, extents, offset, args)`` (args or args[0])."""
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile: tuple, rawmode: str) -> tuple:
    """The same tile decoding with another raw mode."""
    name, extents, offset, args = tile
    args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    return type(tile)(name, extents, offset, args) if hasattr(tile, "_fields") else (
        name, extents, offset, args)


def _low_byte_rawmode(im: Image.Image) -> str | None:
    """For an unloaded image whose 16-bit colour Pillow cuts to 8 bits: the raw mode that decodes
    the low bytes instead (``"RGBA"`` for 16-bit grey + alpha PNGs: all four bytes); else None."""
    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return None
    raws = {_tile_rawmode(t) for t in im.tile}
    raw = raws.pop() if len(raws) == 1 else None
    if raw == "LA;16B" and im.mode == "RGBA":
        return "RGBA"
    if raw is None or raw.split(";")[0] != im.mode:
        return None
    return _LOW_BYTE_RAWMODE.get(raw)


def _declares_deep_colour(im: Image.Image) -> bool:
    """True when an unloaded RGB(A) image's tiles say 16 bits per sample (which Pillow decodes to
    8): a layout :func:`_low_byte_rawmode` does not handle is refused, never read at 8 bits."""
    return im.mode in ("RGB", "RGBA") and any(";16" in (_tile_rawmode(t) or "")
                                              for t in im.tile)


def _oriented(im: Image.Image, path: Path, warn: bool = True) -> Image.Image:
    """The image turned by its EXIF orientation tag (as stored when the tag is malformed)."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:                             # malformed EXIF: keep the stored pixels
        if warn:
            warnings.warn(f"{path}: could not apply EXIF orientation ({exc}); using the image as "
                          "stored.", stacklevel=4)
        return im


def _low_bytes(path: Path, rawmode: str, like: tuple[tuple[int, int], str, int]) -> np.ndarray:
    """Decode ``path`` again with ``rawmode`` in every tile; uint8 ``(H, W, C)`` after EXIF.

    ``like``: (size, mode, number of tiles) of the first decode, which this one must match.
    """
    with open(path, "rb") as f:
        with _open(f) as im:
            if (im.size, im.mode, len(im.tile)) != like:
                raise DataError(f"Image {path} changed while it was being read; read it again "
                                "once nothing is writing to it.")
            im.tile = [_with_rawmode(t, rawmode) for t in im.tile]
            im.load()
            return np.asarray(_oriented(im, path, warn=False))


def _over_white(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite float RGB ``(H, W, 3)`` with alpha ``(H, W, 1)`` in [0, 1] over white."""
    return rgb if alpha is None else rgb * alpha + (1.0 - alpha)


def _deep_to_rgb01(hi: np.ndarray, lo: np.ndarray, rawmode: str, im: Image.Image) -> np.ndarray:
    """Float32 RGB in [0, 1] from the two 8-bit decodes of a 16-bit colour image.

    ``hi``: Pillow's usual decode (high bytes); ``lo``: the decode with the low-byte raw mode.
    """
    if rawmode == "LA;16B":                       # lo holds (L hi, L lo, A hi, A lo) per pixel
        b = lo.astype(np.uint16)                                          # (H, W, 4)
        grey = ((b[..., 0:1] << 8) | b[..., 1:2]).astype(np.float32) / 65535.0
        alpha = ((b[..., 2:3] << 8) | b[..., 3:4]).astype(np.float32) / 65535.0
        return _over_white(np.repeat(grey, 3, axis=2), alpha)
    v = (hi.astype(np.uint16) << 8) | lo.astype(np.uint16)                # (H, W, 3 or 4)
    rgb = v[..., :3].astype(np.float32) / 65535.0
    if v.shape[2] == 4:
        return _over_white(rgb, v[..., 3:4].astype(np.float32) / 65535.0)
    key = im.info.get("transparency")             # 16-bit colour key (PNG tRNS)
    if isinstance(key, tuple) and len(key) == 3:
        alpha = (~np.all(v == np.asarray(key, dtype=np.uint16), axis=2, keepdims=True))
        return _over_white(rgb, alpha.astype(np.float32))
    return rgb


def _value_range(a: np.ndarray) -> str:
    """``"[min, max]"`` of the finite values, plus ``" and NaN / inf"`` when there are any."""
    finite = a[np.isfinite(a)]
    rng = f"[{finite.min():.6g}, {finite.max():.6g}]" if finite.size else "no finite value"
    bad = [w for w, m in (("NaN", np.isnan(a)), ("inf", np.isinf(a))) if m.any()]
    return rng + (f" and {' / '.join(bad)}" if bad else "")


def _to_rgb01(im: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded 8-bit, 16-bit grey, 32-bit integer or float PIL image to float32 RGB
    ``(H, W, 3)`` in [0, 1] (16-bit colour is read by :func:`_deep_to_rgb01` instead).

    Transparent images (RGBA, LA, PA, P with a transparency entry, premultiplied modes) are
    composited over WHITE, so that transparent areas look like paper rather than black.
    16-bit grey (``I;16*``) and 32-bit integer (``I``) pixels are divided by 65535; ``I`` pixels
    outside 0…65535 are refused. Float ``F`` pixels are taken as they are when they lie in
    [0, 1] and refused otherwise (no 255 or 65535 scale is guessed for float data).
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im, dtype=np.float64)                           # (H, W)
        if mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise DataError(f"Image {path} holds 32-bit integer pixels in {_value_range(a)}, "
                            "outside 0…65535, so it cannot be mapped to [0, 1] without guessing "
                            "a scale; save it as an 8- or 16-bit image.")
        a = a / 65535.0
        return np.repeat(a[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)                           # (H, W)
        if a.size and not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
            raise DataError(f"Image {path} holds floating-point pixels in {_value_range(a)}, but "
                            "float images must lie in [0, 1] (their scale is not guessed). "
                            "Rescale the values to [0, 1], or save the image as 8- or 16-bit "
                            "integers.")
        return np.repeat(a[..., None], 3, axis=2)
    transparent = mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
        mode == "P" and "transparency" in im.info) or (
        mode in {"L", "RGB"} and "transparency" in im.info)
    try:
        if transparent:
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
            return _over_white(rgba[..., :3], rgba[..., 3:4])                # over white
        # CMYK, YCbCr, palette, 1-bit, L, ...: Pillow's conversion (ICC profiles are ignored).
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0        # (H, W, 3)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: images of mode {mode!r} cannot be converted to RGB ({exc}); "
                        "convert the file to an 8-bit RGB PNG or JPEG first.") from exc


def _box_reduce(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor``×``factor`` boxes of ``(H, W, 3)``; the last boxes may be partial."""
    h, w = rgb.shape[:2]
    rows = np.add.reduceat(rgb, np.arange(0, h, factor), axis=0, dtype=np.float64)
    sums = np.add.reduceat(rows, np.arange(0, w, factor), axis=1)       # (ceil H/f, ceil W/f, 3)
    nh = np.minimum(factor, h - np.arange(0, h, factor))[:, None, None]
    nw = np.minimum(factor, w - np.arange(0, w, factor))[None, :, None]
    return (sums / (nh * nw)).astype(np.float32)


def _check_args(min_size: int, max_size: int | None) -> None:
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ConfigError(f"min_size must be an integer >= 0, got {min_size!r}.")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size < 1):
        raise ConfigError(f"max_size must be a positive integer (px, long side) or None, got "
                          f"{max_size!r}.")


def _broken_link(p: Path) -> str | None:
    """``"a broken link (pointing to <target>)"`` when ``p`` is a symlink to nothing, else None."""
    if not p.is_symlink() or p.exists():
        return None
    try:
        target = os.readlink(p)
    except OSError:
        target = "?"
    return f"a broken link (pointing to {target}, which does not exist)"


def _read_rgb01(path: str | os.PathLike, min_size: int = 0, max_size: int | None = None,
                max_pixels: int | None = None) -> np.ndarray:
    """Read ``path`` as float32 RGB ``(H, W, 3)`` in [0, 1] with every check of load_image."""
    path = Path(path).expanduser()
    _check_args(min_size, max_size)
    limit = _pixel_limit(max_pixels)
    broken = _broken_link(path)
    if broken is not None:
        raise DataError(f"Image file {path} is {broken}; fix the link or remove it.")
    if not path.exists():
        raise DataError(f"Image file {path} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image file; use load_folder() for folders.")
    if path.stat().st_size == 0:
        raise DataError(f"Image file {path} is empty (0 bytes); re-copy or re-download it.")
    try:
        with open(path, "rb") as f:                  # read-only: source files are never modified
            with _open(f) as im:                     # reads the header only
                header = im.size
                drafted = _draft_for(im, max_size)   # JPEG: decode at 1/2, 1/4 or 1/8 scale
                _check_pixels(im, path, limit, header, drafted)
                low = _low_byte_rawmode(im)          # 16-bit colour: Pillow keeps 8 bits
                if low is None and _declares_deep_colour(im):
                    raise DataError(f"Image {path} stores 16-bit colour in a layout this reader "
                                    "does not know (tiles "
                                    f"{sorted({_tile_rawmode(t) for t in im.tile})}), and "
                                    "Pillow alone would cut it to 8 bits; save it as a 16-bit "
                                    "PNG, or as an 8-bit PNG/JPEG.")
                rawmode = _tile_rawmode(im.tile[0]) if low is not None else None
                like = (im.size, im.mode, len(im.tile))
                im.load()                            # decode now, so truncated files fail here
                oriented = _oriented(im, path)       # apply the camera's orientation tag
                if low is None:
                    rgb = _to_rgb01(oriented, path)
                else:
                    rgb = _deep_to_rgb01(np.asarray(oriented), _low_bytes(path, low, like),
                                         rawmode, im)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(f"Image {path} is too large to decode ({str(exc).rstrip('.')}; Pillow "
                        "refuses images above twice PIL.Image.MAX_IMAGE_PIXELS="
                        f"{Image.MAX_IMAGE_PIXELS}, before this module's limit of {limit[0]:,} "
                        "pixels is checked). Downscale the file, or, if you trust it, raise "
                        "PIL.Image.MAX_IMAGE_PIXELS and max_pixels.") from exc
    except _READ_ERRORS as exc:
        raise DataError(f"Could not read image {path}: {exc}. The file is corrupt, truncated or "
                        "not an image; replace it or remove it from the folder.") from exc
    long = max(rgb.shape[:2])
    if max_size is not None and long >= 2 * max_size:
        rgb = _box_reduce(rgb, long // max_size)                       # long side >= max_size
    h, w = rgb.shape[:2]
    if min(h, w) < min_size:
        was = ("" if max(h, w) == max(header) else f" once reduced for max_size={max_size} "
               f"(the file is {header[1]}×{header[0]} H×W as stored)")
        raise DataError(f"Image {path} is too small: {h}×{w} (H×W){was}, but the short side must "
                        f"be at least min_size={min_size} px. Use a larger image or lower "
                        "min_size.")
    return rgb


def load_image(path: str | os.PathLike, min_size: int = 0, *, max_size: int | None = None,
               max_pixels: int | None = None) -> torch.Tensor:
    """Load an image file as float32 ``(3, H, W)`` in [-1, 1] (the range of REFERENCE §4).

    Grayscale, palette, CMYK, 16-bit (grey and colour, at full depth, scaled by 65535) and
    EXIF-rotated images become RGB; images with transparency are composited over white. Float
    images (``F``, e.g. 32-bit float TIFFs) must hold values in [0, 1]. Multi-frame files (GIF,
    TIFF) give their first frame. The file is opened read-only.

    Args:
        path: the image file.
        min_size: smallest allowed short side of the returned image, px.
        max_size: when given and the image's long side is at least ``2 · max_size``, the image
            is returned reduced by an integer factor (JPEGs decoded at 1/2, 1/4 or 1/8 scale,
            then box averaging) to a long side in ``[max_size, 2 · max_size)``, never below
            ``max_size`` (the pyramid resizes it afterwards). None: full resolution.
        max_pixels: most pixels (H·W) decoded, checked from the header before decoding; for
            JPEGs with ``max_size``, the reduced decode size counts. None: the environment
            variable ``MIL_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`.

    Raises:
        DataError: the file is missing (or a broken link), empty, unreadable, truncated or not
            an image; it is larger than the pixel limit; its pixels cannot be mapped to [0, 1]
            (float values outside [0, 1], NaN / inf, 32-bit integers above 65535); or its short
            side is below ``min_size``. The message names the file and what to do.
        ConfigError: a bad ``min_size``, ``max_size``, ``max_pixels`` or ``MIL_MAX_PIXELS``.
    """
    rgb = _read_rgb01(path, min_size, max_size, max_pixels)           # (H, W, 3) in [0, 1]
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)   # (3, H, W)
    return (t * 2.0 - 1.0).clamp_(-1.0, 1.0).contiguous()


def load_image_uint8(path: str | os.PathLike, min_size: int = 0, *,
                     max_size: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Like :func:`load_image` but returns uint8 ``(H, W, 3)`` (for display and PIL/metrics)."""
    rgb = _read_rgb01(path, min_size, max_size, max_pixels)           # (H, W, 3) in [0, 1]
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- folders

def natural_key(name: str) -> tuple:
    """Sort key giving natural order: ``1.jpg, 2.jpg, 10.jpg`` (not 1, 10, 2); case-insensitive."""
    parts = re.split(r"(\d+)", name)      # text, digits, text, ... (even indices are text)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), in stable natural order.

    Accepted endings: :data:`IMAGE_EXTENSIONS`, case-insensitive. Hidden files (``.name``) are
    skipped. Symbolic links to image files count as image files; a broken link with an image
    ending is an error (it is one of the user's images that cannot be read, so it is never
    dropped silently).

    Raises:
        DataError: the folder is missing, is a file, is empty, holds a broken link with an image
            ending (the message names the link and its target), or holds no image files (the
            message then lists a few of the files it did find).
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"Image folder {folder} does not exist; check the path (or download the "
                        "data set first).")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; use load_image() for single files.")
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                     key=lambda p: natural_key(p.name))
    if not entries:
        raise DataError(f"Image folder {folder} is empty; put the images (.jpg, .png, ...) in it.")
    broken = [(p.name, why) for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS
              for why in [_broken_link(p)] if why is not None]
    if broken:
        shown = "; ".join(f"{name} is {why}" for name, why in broken[:5]) + (
            f"; ... ({len(broken) - 5} more)" if len(broken) > 5 else "")
        them = "the link or remove it" if len(broken) == 1 else "the links or remove them"
        raise DataError(f"Image folder {folder}: {shown}. Fix {them}.")
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        others = [p.name + ("/" if p.is_dir() else " (broken link)" if _broken_link(p) else "")
                  for p in entries]
        shown = ", ".join(others[:5]) + (f", ... ({len(others) - 5} more)" if len(others) > 5
                                          else "")
        raise DataError(f"Image folder {folder} contains no image files (looked for "
                        f"{', '.join(IMAGE_EXTENSIONS)}); found only: {shown}.")
    return images


def load_folder(folder: str | os.PathLike, min_size: int = 0, limit: int | None = None, *,
                max_size: int | None = None, max_pixels: int | None = None
                ) -> list[tuple[str, torch.Tensor]]:
    """Load the images of ``folder`` (natural order) as ``[(name, (3, H, W) in [-1, 1]), ...]``.

    Names are file stems; when two files share a stem (``a.jpg``, ``a.png``) their full file
    names are used instead. ``limit`` keeps the first ``limit`` images. ``min_size``,
    ``max_size`` and ``max_pixels`` are those of :func:`load_image`. Any unusable file raises
    the DataError of :func:`load_image` (or :func:`list_images`), naming it.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}.")
    _check_args(min_size, max_size)
    _pixel_limit(max_pixels)
    paths = list_images(folder)[:limit]
    stems = [p.stem for p in paths]
    dup = {s for s in stems if stems.count(s) > 1}
    return [(p.name if p.stem in dup else p.stem,
             load_image(p, min_size, max_size=max_size, max_pixels=max_pixels)) for p in paths]


# ----------------------------------------------------------------------------- Places-50 / LSUN-50

def places50_dir() -> Path | None:
    """Where Places-50 is on this machine, or None.

    The first existing folder among: ``$MIL_PLACES50``; ``<repo root>/../shared/data/places50``
    (beside the project, see its README); ``<repo root>/data/downloads/places50`` (where
    :func:`download_places50` puts it); ``./data/downloads/places50``.
    """
    candidates: list[Path] = []
    env = os.environ.get("MIL_PLACES50", "").strip()
    if env:
        candidates.append(Path(env).expanduser())
    root = repo_root()
    if root is not None:
        candidates += [root.parent / "shared" / "data" / "places50",
                       root / "data" / "downloads" / "places50"]
    candidates.append(Path("data") / "downloads" / "places50")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


def _default_dest(sub: str) -> Path:
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "data" / "downloads" / sub


def _is_404(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, urllib.error.HTTPError) and cause.code == 404


def _download_indexed(url: str, indices: list[int], dest: Path, what: str,
                      skip_missing: bool) -> list[Path]:
    """Download ``url.format(index=i)`` to ``dest/<i>.jpg`` for each index; returns the files."""
    got: list[Path] = []
    for i in indices:
        u = url.format(index=i)
        try:
            got.append(download_file(u, dest / f"{i}.jpg"))
        except OfflineError as exc:
            if _is_404(exc):
                if skip_missing:
                    continue
                raise DataError(f"{u} no longer exists upstream, so {what} in {dest} is "
                                "incomplete; obtain the missing file from the MetaInternalLearning "
                                "repository by hand.") from exc
            raise OfflineError(f"{what} download stopped at {u}: {exc} {what} can also be copied "
                               f"by hand into {dest} (or any folder: pass it to load_folder, "
                               "or set MIL_PLACES50 for Places-50).") from exc
    return got


def download_places50(dest: str | os.PathLike | None = None) -> Path:
    """Opt-in download of Places-50 (49 JPEGs; ``18.jpg`` is absent upstream) and return its folder.

    Files come from the public MetaInternalLearning repository (``data/places_50/<i>.jpg``, MIT
    licence). ``dest`` defaults to ``<repo root>/data/downloads/places50`` (git-ignored), where
    :func:`places50_dir` looks; a relative ``dest`` is relative to the working directory. Files
    already present are kept.

    Raises:
        OfflineError: no internet (or ``MIL_OFFLINE=1``); the message names the URL and folder.
    """
    dest = Path(dest).expanduser() if dest is not None else _default_dest("places50")
    indices = [i for i in range(1, 51) if i not in _PLACES50_MISSING]
    _download_indexed(PLACES50_URL, indices, dest, "Places-50", skip_missing=False)
    return dest


def download_lsun50(dest: str | os.PathLike | None = None) -> Path:
    """Opt-in download of LSUN-50 from the MetaInternalLearning repository (``data/lsun_50``).

    ASSUMPTION: the file names could not be confirmed offline; like Places-50 they are taken to
    be ``1.jpg`` … ``50.jpg`` (the upstream loader reads ``*.jpg``). Indices that do not exist
    upstream (HTTP 404) are skipped. ``dest`` defaults to ``<repo root>/data/downloads/lsun50``.

    Raises:
        OfflineError: no internet (or ``MIL_OFFLINE=1``).
        DataError: none of the assumed file names exists upstream (the naming guess is wrong:
            download the folder by hand from the repository instead).
    """
    dest = Path(dest).expanduser() if dest is not None else _default_dest("lsun50")
    got = _download_indexed(LSUN50_URL, list(range(1, 51)), dest, "LSUN-50", skip_missing=True)
    if not got:
        raise DataError(f"None of 1.jpg … 50.jpg exists at {LSUN50_URL.rsplit('/', 1)[0]}/; the "
                        "assumed file names are wrong. Download the lsun_50 folder of the "
                        f"MetaInternalLearning repository by hand into {dest}.")
    return dest
