"""Calibration of the SWD ruler: what one real image scores against known references.

A single SWD number means little alone (issue 10 §1): is 50 good? Every row of a table gets its
scale from reference points computed the same way, for the same image at the same size:

- ``identical``: an identical copy, the floor (exactly 0 with every patch, ``swd.py`` 5);
- ``mirror``: the image flipped left–right, the same content, every patch re-arranged: what a
  perfect "new arrangement" of the image's own patches might score;
- ``other``: another image of the data set (the next one in the list), the ceiling that a model
  that ignores its image would reach;
- ``SinGAN``, ``ConSinGAN``: the samples that the ConSinGAN authors published for Places-50
  (one random sample per image, the papers' own models at 250 px; see
  ``../shared/data/published-samples/README.md``), where that folder is present;
- ``places50``: the Places-50 file that our models train on, against the published real (the
  two are the same picture, JPEG re-encoded), where both are present.

Conventions:

1. Distance: :func:`mil_core.metrics.swd` with every patch (its default), ``n_projections``
   directions from ``torch.Generator().manual_seed(seed)`` for every comparison, so the
   reference points of one image share directions. SWD ×1e3.
2. Size: ``size`` is the long side in px. Images are resized with antialiased bicubic
   interpolation (:func:`mil_core.data.resize_to`) to ``round(h·s) × round(w·s)``,
   ``s = size / max(h, w)``, the finest-scale rule of :func:`mil_core.data.plan_pyramid`
   (aspect kept, as SinGAN does). Every image compared with a real image is first brought to the
   real image's (H, W) (the ``other`` image is thus slightly stretched when its aspect differs;
   the published samples of four reals 251 px wide are 250 px wide).
3. Published samples: ``<root>/{Real,SinGAN,ConSinGAN}/<index>.jpg`` and ``<root>/mapping.csv``
   (``index, places50_name, width, height``), with ``root`` the ``places`` folder of
   ``published-samples``. The real image returned is the published ``Real/<index>.jpg`` (the
   image the samples were made from; index 9 is Places-50's ``18.jpg``, which
   ``../shared/data/places50`` lacks). Values in [-1, 1], as :func:`mil_core.data.load_image`.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from .data import load_image, places50_dir, resize_to
from .errors import DataError
from .metrics import swd
from .profiles import get_profile
from .runtime import repo_root

__all__ = ["PUBLISHED_SAMPLES_ENV", "PUBLISHED_METHODS", "REFERENCE_COLUMNS",
           "published_samples_dir", "published_mapping", "long_side_shape", "resize_long_side",
           "load_published", "reference_points", "calibration_table", "calibration_summary",
           "published_label", "published_rows", "fitted_published", "with_published",
           "mean_over_shared_images",
           "reference_table"]

PUBLISHED_SAMPLES_ENV = "MIL_PUBLISHED_SAMPLES"      # folder of the published samples
PUBLISHED_METHODS = ("SinGAN", "ConSinGAN")           # the folders beside Real/
REFERENCE_COLUMNS = ("identical", "mirror", "other", "SinGAN", "ConSinGAN", "places50")


# ----------------------------------------------------------------------------- published samples

def _samples_root(folder: Path) -> Path | None:
    """``folder`` or its ``places`` subfolder, whichever holds ``mapping.csv`` and ``Real/``."""
    for c in (folder, folder / "places"):
        if (c / "mapping.csv").is_file() and (c / "Real").is_dir():
            return c.resolve()
    return None


def published_samples_dir() -> Path | None:
    """The folder of the published Places-50 samples (convention 3), or None when absent.

    The first that holds ``mapping.csv`` and ``Real/`` (directly or in ``places/``) among:
    ``$MIL_PUBLISHED_SAMPLES``; ``<repo root>/../shared/data/published-samples``.
    """
    candidates: list[Path] = []
    env = os.environ.get(PUBLISHED_SAMPLES_ENV, "").strip()
    if env:
        candidates.append(Path(env).expanduser())
    root = repo_root()
    if root is not None:
        candidates.append(root.parent / "shared" / "data" / "published-samples")
    for c in candidates:
        found = _samples_root(c)
        if found is not None:
            return found
    return None


def _resolve_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        found = _samples_root(Path(root).expanduser())
        if found is None:
            raise DataError(f"{root} holds no published samples: expected mapping.csv and "
                            f"Real/, SinGAN/, ConSinGAN/ in it or in its places/ subfolder.")
        return found
    found = published_samples_dir()
    if found is None:
        raise DataError(f"The published samples were not found: set {PUBLISHED_SAMPLES_ENV} to "
                        f"their folder or put them at ../shared/data/published-samples beside "
                        f"the project (see that folder's README.md).")
    return found


def published_mapping(root: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``mapping.csv``: ``{"index": int, "name": Places-50 file name, "width": int,
    "height": int}`` in index order. ``root`` defaults to :func:`published_samples_dir`."""
    path = _resolve_root(root) / "mapping.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"index", "places50_name", "width", "height"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path} must have the columns {sorted(need)}, got "
                        f"{sorted(rows[0]) if rows else 'no rows'}.")
    out = [{"index": int(r["index"]), "name": r["places50_name"], "width": int(r["width"]),
            "height": int(r["height"])} for r in rows]
    return sorted(out, key=lambda r: r["index"])


def _find_row(name_or_index: int | str, rows: list[dict]) -> dict:
    if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
        hits = [r for r in rows if r["index"] == int(name_or_index)]
    elif isinstance(name_or_index, str):
        key = name_or_index.strip()
        hits = [r for r in rows if key in (r["name"], Path(r["name"]).stem)]
    else:
        hits = []
    if not hits:
        raise DataError(f"No published sample for {name_or_index!r}: give an index (int, "
                        f"0…{max(r['index'] for r in rows)}) or a Places-50 file name such as "
                        f"{rows[0]['name']!r}.")
    return hits[0]


def long_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """``(H, W)`` of an ``h × w`` image resized to long side ``size`` (convention 2)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"size (the long side, px) must be a positive integer, got {size!r}.")
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_long_side(img: torch.Tensor, size: int | None) -> torch.Tensor:
    """``img (3, H, W)`` resized to long side ``size`` (unchanged copy when None)."""
    if size is None:
        return img.clone()
    return resize_to(img, long_side_shape(img.shape[-2], img.shape[-1], size))


def load_published(name_or_index: int | str, *, size: int | None = None,
                   root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The published real image and samples of one Places-50 image.

    Args:
        name_or_index: the index of the published files (int, 0…49) or the Places-50 file name
            (str, ``"1.jpg"`` or ``"1"``).
        size: long side in px (convention 2); the samples are resized to the real image's
            resized shape. None: as stored (250 px; four reals are 251 px wide).
        root: the published-samples folder (default :func:`published_samples_dir`).

    Returns:
        ``{"index", "name", "real", "SinGAN", "ConSinGAN"}``, images float32 ``(3, H, W)`` in
        [-1, 1].
    """
    base = _resolve_root(root)
    row = _find_row(name_or_index, published_mapping(base))
    out: dict[str, Any] = {"index": row["index"], "name": row["name"]}
    real = load_image(base / "Real" / f"{row['index']}.jpg")
    shape = None if size is None else long_side_shape(real.shape[-2], real.shape[-1], size)
    out["real"] = real if shape is None else resize_to(real, shape)
    for method in PUBLISHED_METHODS:
        img = load_image(base / method / f"{row['index']}.jpg")
        out[method] = img if shape is None else resize_to(img, shape)
    return out


# ----------------------------------------------------------------------------- reference points

def reference_points(real: torch.Tensor, *, size: int | None = None,
                     other: torch.Tensor | None = None,
                     published: Mapping[str, torch.Tensor] | None = None, seed: int = 0,
                     n_projections: int = 512, min_size: int = 16) -> dict[str, float]:
    """SWD ×1e3 of ``real (3, H, W)`` against its reference points (module docstring).

    Args:
        size: long side in px to resize ``real`` to first (None: as given).
        other: another image (brought to the real image's shape); omitted when None.
        published: ``{column: image}``, e.g. ``{"SinGAN": s, "ConSinGAN": c}`` from
            :func:`load_published`; each brought to the real image's shape.
        seed: seeds the directions, the same for every comparison (convention 1).

    Returns:
        ``{"identical", "mirror"}``, plus ``"other"`` and every key of ``published`` when given.
    """
    if not isinstance(real, torch.Tensor) or real.dim() != 3 or real.shape[0] != 3:
        raise DataError("real must be one image (3, H, W) in [-1, 1].")
    real = resize_long_side(real, size)
    shape = tuple(real.shape[-2:])

    def dist(fake: torch.Tensor) -> float:
        if tuple(fake.shape[-2:]) != shape:
            fake = resize_to(fake, shape)
        return float(swd(real, fake, n_projections=n_projections, min_size=min_size,
                         generator=torch.Generator().manual_seed(seed))["mean"])

    out = {"identical": dist(real.clone()), "mirror": dist(real.flip(-1))}
    if other is not None:
        out["other"] = dist(other)
    for name, img in (published or {}).items():
        out[name] = dist(img)
    return out


def calibration_table(names: Iterable[int | str] | None = None,
                      sizes: Iterable[int] | None = None, *,
                      root: str | os.PathLike | None = None, places50: bool = True,
                      seed: int = 0, n_projections: int = 512, progress: bool = False
                      ) -> pd.DataFrame:
    """Reference points of published Places-50 images at several sizes: one row per image × size.

    Args:
        names: indices or Places-50 file names (:func:`load_published`); None: every mapped image.
        sizes: long sides in px; None: the ``paper`` and ``cpu`` profiles' ``image.max_size``
            (250 and 64).
        root: the published-samples folder (default :func:`published_samples_dir`).
        places50: add the ``places50`` column (the Places-50 file against the published real;
            NaN where the file is missing, e.g. ``18.jpg``).
        progress: print one line per row.

    The ``other`` image of each row is the published real of the next image in ``names``
    (cyclically; of the next mapped index when ``names`` has one entry).

    Returns:
        A DataFrame with columns ``index, name, size, H, W`` and :data:`REFERENCE_COLUMNS`
        (SWD ×1e3), plus ``ConSinGAN<SinGAN`` (bool). Summarise with :func:`calibration_summary`.
    """
    base = _resolve_root(root)
    rows_map = published_mapping(base)
    keys = [r["index"] for r in rows_map] if names is None else list(names)
    if not keys:
        raise DataError("calibration_table: names is empty; give at least one image.")
    if sizes is None:
        sizes = (get_profile("paper").image.max_size, get_profile("cpu").image.max_size)
    sizes = list(sizes)
    entries = [_find_row(k, rows_map) for k in keys]
    if len(entries) > 1:
        others = entries[1:] + entries[:1]
    else:
        nxt = [r for r in rows_map if r["index"] != entries[0]["index"]]
        if not nxt:
            raise DataError("calibration_table needs at least two mapped images (for 'other').")
        others = [nxt[0]]
    p50 = places50_dir() if places50 else None
    table = []
    for entry, oth in zip(entries, others):
        full = load_published(entry["index"], root=base)
        other_real = load_image(base / "Real" / f"{oth['index']}.jpg")
        p50_img = None
        if p50 is not None and (p50 / entry["name"]).is_file():
            p50_img = load_image(p50 / entry["name"])
        for size in sizes:
            real = resize_long_side(full["real"], size)
            published = {m: full[m] for m in PUBLISHED_METHODS}
            if p50_img is not None:
                published["places50"] = p50_img
            ref = reference_points(real, other=other_real, published=published, seed=seed,
                                   n_projections=n_projections)
            row = {"index": entry["index"], "name": entry["name"], "size": size,
                   "H": real.shape[-2], "W": real.shape[-1]}
            row.update({c: ref.get(c, math.nan) for c in REFERENCE_COLUMNS})
            row["ConSinGAN<SinGAN"] = bool(row["ConSinGAN"] < row["SinGAN"])
            table.append(row)
            if progress:
                print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items()), flush=True)
    return pd.DataFrame(table)


def calibration_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per size: the number of images, the mean of every reference column, the count of images
    where ConSinGAN < SinGAN, and ``identical / other`` (the floor as a fraction of the
    other-image distance, worst image)."""
    out = []
    for size, g in table.groupby("size", sort=False):
        row: dict[str, Any] = {"size": size, "n_images": len(g)}
        for c in REFERENCE_COLUMNS:
            row[c] = float(g[c].mean()) if c in g and g[c].notna().any() else math.nan
        row["ConSinGAN<SinGAN"] = int(g["ConSinGAN<SinGAN"].sum())
        row["max identical/other"] = float((g["identical"] / g["other"]).max())
        out.append(row)
    return pd.DataFrame(out).set_index("size")


# ----------------------------------------------------------------------------- table rows

def published_label(method: str) -> str:
    """The row label of a published sample in every MIL table."""
    return f"published {method} (paper, 250 px)"


def published_rows(name: str, real: torch.Tensor, *, inception: Any = None, seed: int = 0,
                   root: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """Table rows for the published SinGAN and ConSinGAN samples of Places-50 image ``name``
    (``"1"`` or ``"1.jpg"``), measured against ``real (3, H, W)``: the table's own real image
    at the table's own size, so the papers' models stand in the table on our ruler.

    Each sample is centre-cropped to the real image's aspect when that differs by more than the
    rounding of a resize (the MIL pyramid's forced aspect crops the real photo the same way),
    resized to the real image's shape, then scored by
    :func:`mil_core.metrics.image_metrics` (one sample: SWD, no diversity).

    Returns ``{published_label(method): row}``; empty when the published samples are absent or
    ``name`` is not one of their Places-50 images (e.g. a bundled photo).
    """
    from .metrics import image_metrics

    if not isinstance(real, torch.Tensor) or real.dim() != 3 or real.shape[0] != 3:
        raise DataError("real must be one image (3, H, W) in [-1, 1].")
    try:
        base = _resolve_root(root)
        row = _find_row(str(name), published_mapping(base))
    except DataError:
        return {}
    out = {}
    for method in PUBLISHED_METHODS:
        img = _fit_to(load_image(base / method / f"{row['index']}.jpg"), real)
        out[published_label(method)] = image_metrics(real, img[None], inception=inception,
                                                     seed=seed)
    return out


def _fit_to(img: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``img`` centre-cropped to ``real``'s aspect (unless they differ only by rounding) and
    resized to its shape: the transform the models' pyramids apply to the real photo."""
    from .data.pyramid import center_crop_to_aspect

    h, w = real.shape[-2:]
    if abs(h / w - img.shape[-2] / img.shape[-1]) * img.shape[-1] > 1.5:   # not rounding
        img = center_crop_to_aspect(img, h / w)
    return resize_to(img, (h, w))


def fitted_published(name: str, real: torch.Tensor, *,
                     root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """``{method: sample (3, H, W)}``: the published SinGAN and ConSinGAN samples of Places-50
    image ``name``, fitted to ``real (3, H, W)`` exactly as :func:`published_rows` scores them
    (centre-cropped to its aspect, resized to its shape) — for showing them beside a table's own
    samples. Empty when the samples are absent or ``name`` is not one of their images."""
    if not isinstance(real, torch.Tensor) or real.dim() != 3 or real.shape[0] != 3:
        raise DataError("real must be one image (3, H, W) in [-1, 1].")
    return {m: _fit_to(img, real) for m, img in _published_images(str(name), root).items()}


def _published_images(name: str, root: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    """``{method: sample}`` of a Places-50 image as stored; empty when absent or not mapped."""
    try:
        base = _resolve_root(root)
        row = _find_row(str(name), published_mapping(base))
    except DataError:
        return {}
    return {m: load_image(base / m / f"{row['index']}.jpg") for m in PUBLISHED_METHODS}


def reference_table(reals: Mapping[str, torch.Tensor], *, seed: int = 0,
                    root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The reference points (:func:`reference_points`) of a table's own real images
    ``{image: (3, H, W)}`` at their own size: ``other`` is the next image of ``reals``
    (cyclically; omitted for one image) and the published samples, fitted to each real image as
    in :func:`published_rows`, are added where they exist. One row per image."""
    names = list(reals)
    rows = []
    for k, name in enumerate(names):
        real = reals[name]
        published = {m: _fit_to(img, real) for m, img in _published_images(name, root).items()}
        other = reals[names[(k + 1) % len(names)]] if len(names) > 1 else None
        rows.append({"image": name, **reference_points(real, other=other, published=published,
                                                       seed=seed)})
    return pd.DataFrame(rows)


def with_published(per_image: pd.DataFrame, reals: Mapping[str, torch.Tensor], *,
                   inception: Any = None, seed: int = 0,
                   root: str | os.PathLike | None = None) -> pd.DataFrame:
    """``per_image`` (columns ``image``, ``method`` and metrics) with the published samples'
    rows appended for every image of ``reals`` (``{image: real (3, H, W)}``, the table's own
    real images) that has them (:func:`published_rows`)."""
    extra = [{"image": name, "method": label, **row}
             for name, real in reals.items()
             for label, row in published_rows(name, real, inception=inception, seed=seed,
                                              root=root).items()]
    return pd.concat([per_image, pd.DataFrame(extra)], ignore_index=True) if extra else per_image


def mean_over_shared_images(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean per method over the images that EVERY method was measured on (a published sample
    exists only for Places-50 images, so a bundled photo would otherwise weigh on some rows
    only). Adds the column ``images`` (how many). Methods keep their order of appearance."""
    methods = list(dict.fromkeys(per_image["method"]))
    shared = set.intersection(*(set(per_image.loc[per_image["method"] == m, "image"])
                                for m in methods))
    rows = per_image[per_image["image"].isin(shared)]
    out = rows.groupby("method", sort=False).mean(numeric_only=True).reindex(methods)
    out["images"] = len(shared)
    return out
