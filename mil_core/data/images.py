"""Robust loading of single images and folders of images (the MIL side of the project).

Every GAN here (SinGAN, ConSinGAN, MIL; REFERENCE §2–§4) works on RGB tensors in [-1, 1]. This
module turns any file a user is likely to point at — grayscale, palette, transparent, CMYK,
16-bit, EXIF-rotated — into such a tensor, and turns every file that cannot be used (unreadable,
truncated, empty, not an image, too small) into ONE :class:`~mil_core.errors.DataError` that names
the file and says what to do. Source files are only ever opened read-only.

Places-50 (the SinGAN / MIL evaluation set, REFERENCE §4 and §8) lives beside the project at
``../shared/data/places50``; :func:`places50_dir` finds it and :func:`download_places50` fetches
the same files from the public MetaInternalLearning repository for users with internet.
"""
from __future__ import annotations

import os
import re
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..runtime import repo_root
from ..errors import ConfigError, DataError, OfflineError
from .download import download_file

__all__ = [
    "IMAGE_EXTENSIONS", "load_image", "load_image_uint8", "list_images", "load_folder",
    "natural_key", "places50_dir", "download_places50", "download_lsun50",
    "PLACES50_URL", "LSUN50_URL",
]

# File name endings accepted by list_images (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Public MetaInternalLearning repository (MIT licence), folders data/places_50 and data/lsun_50.
_MIL_RAW = "https://raw.githubusercontent.com/RaphaelBensTAU/MetaInternalLearning/main/data"
PLACES50_URL = _MIL_RAW + "/places_50/{index}.jpg"
LSUN50_URL = _MIL_RAW + "/lsun_50/{index}.jpg"
_PLACES50_MISSING = {18}  # 18.jpg is absent upstream (see ../shared/data/places50/README.md)

# Pillow errors that mean "this file is not a usable image" (truncated files raise OSError).
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                Image.DecompressionBombError)


# ----------------------------------------------------------------------------- single images

def _to_rgb01(im: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded PIL image of any mode to float32 RGB ``(H, W, 3)`` in [0, 1].

    Transparent images (RGBA, LA, PA, P with a transparency entry, premultiplied modes) are
    composited over WHITE, so that transparent areas look like paper rather than black.
    16-bit modes (``I;16*`` and ``I``) are divided by 65535 (not clipped at 255); float ``F``
    images are taken as [0, 1] when their maximum is ≤ 1, else as 8-bit (≤ 255) or 16-bit.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im, dtype=np.float64) / 65535.0                 # (H, W)
        return np.repeat(np.clip(a, 0.0, 1.0)[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)                           # (H, W)
        peak = float(np.nanmax(a)) if a.size else 0.0
        a = a if peak <= 1.0 else a / (255.0 if peak <= 255.0 else 65535.0)
        a = np.nan_to_num(np.clip(a, 0.0, 1.0))
        return np.repeat(a[..., None], 3, axis=2).astype(np.float32)
    transparent = mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
        mode == "P" and "transparency" in im.info) or (
        mode in {"L", "RGB"} and "transparency" in im.info)
    try:
        if transparent:
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0  # (H, W, 4)
            alpha = rgba[..., 3:4]                                            # (H, W, 1)
            return rgba[..., :3] * alpha + (1.0 - alpha)                      # over white
        # CMYK, YCbCr, palette, 1-bit, L, ...: Pillow's conversion (ICC profiles are ignored).
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0        # (H, W, 3)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: images of mode {mode!r} cannot be converted to RGB ({exc}); "
                        "convert the file to an 8-bit RGB PNG or JPEG first.") from exc


def _read_rgb01(path: str | os.PathLike, min_size: int = 0) -> np.ndarray:
    """Read ``path`` as float32 RGB ``(H, W, 3)`` in [0, 1] with every check of load_image."""
    path = Path(path).expanduser()
    if not isinstance(min_size, int) or min_size < 0:
        raise ConfigError(f"min_size must be an integer >= 0, got {min_size!r}.")
    if not path.exists():
        raise DataError(f"Image file {path} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image file; use load_folder() for folders.")
    if path.stat().st_size == 0:
        raise DataError(f"Image file {path} is empty (0 bytes); re-copy or re-download it.")
    try:
        with open(path, "rb") as f:                  # read-only: source files are never modified
            with Image.open(f) as im:
                im.load()                            # decode now, so truncated files fail here
                try:
                    im = ImageOps.exif_transpose(im)  # apply the camera's orientation tag
                except Exception as exc:             # malformed EXIF: keep the pixels as stored
                    warnings.warn(f"{path}: could not apply EXIF orientation ({exc}); "
                                  "using the image as stored.", stacklevel=3)
                rgb = _to_rgb01(im, path)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"Could not read image {path}: {exc}. The file is corrupt, truncated or "
                        "not an image; replace it or remove it from the folder.") from exc
    h, w = rgb.shape[:2]
    if min(h, w) < min_size:
        raise DataError(f"Image {path} is too small: {h}×{w} (H×W), but the short side must be "
                        f"at least min_size={min_size} px. Use a larger image or lower min_size.")
    return rgb


def load_image(path: str | os.PathLike, min_size: int = 0) -> torch.Tensor:
    """Load an image file as float32 ``(3, H, W)`` in [-1, 1] (the range of REFERENCE §4).

    Grayscale, palette, CMYK, 16-bit (scaled by 65535) and EXIF-rotated images become RGB; images
    with transparency are composited over white. Multi-frame files (GIF, TIFF) give their first
    frame. The file is opened read-only.

    Raises:
        DataError: the file is missing, empty, unreadable, truncated or not an image, or its short
            side is below ``min_size`` (the message names the file, its size and the minimum).
    """
    rgb = _read_rgb01(path, min_size)                                  # (H, W, 3) in [0, 1]
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)   # (3, H, W)
    return (t * 2.0 - 1.0).clamp_(-1.0, 1.0).contiguous()


def load_image_uint8(path: str | os.PathLike, min_size: int = 0) -> np.ndarray:
    """Like :func:`load_image` but returns uint8 ``(H, W, 3)`` (for display and PIL/metrics)."""
    rgb = _read_rgb01(path, min_size)                                  # (H, W, 3) in [0, 1]
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- folders

def natural_key(name: str) -> tuple:
    """Sort key giving natural order: ``1.jpg, 2.jpg, 10.jpg`` (not 1, 10, 2); case-insensitive."""
    parts = re.split(r"(\d+)", name)      # text, digits, text, ... (even indices are text)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), in stable natural order.

    Accepted endings: :data:`IMAGE_EXTENSIONS`, case-insensitive. Hidden files (``.name``) are
    skipped.

    Raises:
        DataError: the folder is missing, is a file, is empty, or holds no image files (the
            message then lists a few of the files it did find).
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"Image folder {folder} does not exist; check the path (or download the "
                        "data set first).")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; use load_image() for single files.")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"Image folder {folder} is empty; put the images (.jpg, .png, ...) in it.")
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        others = sorted((p.name + ("/" if p.is_dir() else "") for p in entries), key=natural_key)
        shown = ", ".join(others[:5]) + (f", ... ({len(others) - 5} more)" if len(others) > 5
                                          else "")
        raise DataError(f"Image folder {folder} contains no image files (looked for "
                        f"{', '.join(IMAGE_EXTENSIONS)}); found only: {shown}.")
    return sorted(images, key=lambda p: natural_key(p.name))


def load_folder(folder: str | os.PathLike, min_size: int = 0,
                limit: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """Load the images of ``folder`` (natural order) as ``[(name, (3, H, W) in [-1, 1]), ...]``.

    Names are file stems; when two files share a stem (``a.jpg``, ``a.png``) their full file
    names are used instead. ``limit`` keeps the first ``limit`` images. Any unusable file raises
    the DataError of :func:`load_image`, naming it.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}.")
    paths = list_images(folder)[:limit]
    stems = [p.stem for p in paths]
    dup = {s for s in stems if stems.count(s) > 1}
    return [(p.name if p.stem in dup else p.stem, load_image(p, min_size)) for p in paths]


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
