"""Single-Image FID (SIFID, Shaham et al. 2019 "SinGAN", §4; REFERENCE §5).

SIFID of a real image ``x`` and a generated image ``x̃`` is the Fréchet distance (squared, as in
FID; :mod:`mil_core.metrics.frechet`) between two Gaussians fitted to the *spatial* feature
vectors of an extractor: every location of the ``(C, h, w)`` map is one sample of dimension C, so
each image gives ``h·w`` samples (SinGAN's code; :class:`~mil_core.metrics.inception.
InceptionFeatures`, layer "2b" by default). Images are fed at their native sizes, in [-1, 1].

Aggregation over a data set (the MIL paper's tables, REFERENCE §5), with ``S[i, k]`` the SIFID of
real image i and its k-th sample:

- ``SIFID``  = mean over images i of ``min_k S[i, k]`` (the best of the samples, 100 in the paper);
- ``mSIFID`` = mean of ``S[i, k]`` over ALL (image, sample) pairs (pooled; equal to the mean of
  the per-image means when every image has the same number of samples, as in the paper).

Folder evaluation pairs real and fake files BY NAME (file stem; ``1.jpg`` ↔ ``1.png``) in natural
order, fixing SinGAN's script, which paired files by (unsorted) glob position. Files are read with
:func:`mil_core.data.load_image`, which maps PNG and JPEG alike to [-1, 1]; SinGAN's script read
PNGs with matplotlib (already floats in [0, 1]) and divided them by 255 again, so its PNG inputs
were almost black.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..data.images import list_images, load_image, natural_key
from ..errors import ConfigError, DataError
from .frechet import feature_stats, frechet_distance

__all__ = ["sifid", "sifid_many", "sifid_report", "sifid_folders", "summarize_sifid",
           "spatial_features"]

Extractor = Callable[[torch.Tensor], torch.Tensor]     # (B, 3, H, W) → (B, C, h, w)


def _extractor(extractor: Extractor | None) -> Extractor:
    """The given extractor, or the default InceptionFeatures() (layer 2b, resolved weights)."""
    if extractor is not None:
        return extractor
    from .inception import InceptionFeatures
    return InceptionFeatures()


def _image(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name} must be a torch tensor (3, H, W) in [-1, 1], got "
                        f"{type(x).__name__}.")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise DataError(f"{name} must be one image (3, H, W), got shape {tuple(x.shape)}.")
    return x


def _image_list(xs, name: str) -> list[torch.Tensor]:
    if isinstance(xs, torch.Tensor):
        if xs.dim() == 3:
            xs = xs.unsqueeze(0)
        if xs.dim() != 4:
            raise DataError(f"{name} must be (N, 3, H, W) or a list of (3, H, W), got shape "
                            f"{tuple(xs.shape)}.")
        xs = list(xs)
    xs = [_image(x, f"{name}[{i}]") for i, x in enumerate(xs)]
    if not xs:
        raise DataError(f"{name} is empty; give at least one image.")
    return xs


def spatial_features(images: torch.Tensor, extractor: Extractor) -> list[np.ndarray]:
    """Per image of ``images (B, 3, H, W)``, its feature vectors ``(h·w, C)`` as float64."""
    with torch.no_grad():
        f = extractor(images)                                         # (B, C, h, w)
    if f.dim() != 4:
        raise DataError(f"The extractor must return (B, C, h, w) maps, got {tuple(f.shape)}.")
    f = f.detach().cpu().double().flatten(2).transpose(1, 2)          # (B, h·w, C)
    return [fi.numpy() for fi in f]


def _stats(img: torch.Tensor, extractor: Extractor) -> tuple[np.ndarray, np.ndarray]:
    return feature_stats(spatial_features(img.unsqueeze(0), extractor)[0])


def sifid(real: torch.Tensor, fake: torch.Tensor, extractor: Extractor | None = None) -> float:
    """SIFID of one real ``(3, H, W)`` and one fake ``(3, H', W')`` image (sizes may differ)."""
    ext = _extractor(extractor)
    mu1, s1 = _stats(_image(real, "real"), ext)
    mu2, s2 = _stats(_image(fake, "fake"), ext)
    return frechet_distance(mu1, s1, mu2, s2)


def sifid_many(real: torch.Tensor, fakes, extractor: Extractor | None = None,
               batch_size: int = 16) -> list[float]:
    """SIFID of one real image against each of ``fakes`` ((N, 3, H, W) or a list of (3, H, W)).

    The real image's statistics are computed once; same-size fakes are run in batches.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    ext = _extractor(extractor)
    mu1, s1 = _stats(_image(real, "real"), ext)
    fakes = _image_list(fakes, "fakes")
    out: list[float] = []
    i = 0
    while i < len(fakes):                    # group consecutive fakes of one size into a batch
        j = i + 1
        while j < len(fakes) and j - i < batch_size and fakes[j].shape == fakes[i].shape:
            j += 1
        for f in spatial_features(torch.stack(fakes[i:j]), ext):     # (h·w, C) each
            mu2, s2 = feature_stats(f)
            out.append(frechet_distance(mu1, s1, mu2, s2))
        i = j
    return out


def summarize_sifid(values: Mapping[str, Sequence[float]]) -> dict:
    """Aggregate ``{image name: [SIFID of each sample]}`` into SIFID / mSIFID and a table.

    Returns ``{"SIFID": mean_i min_k S[i,k], "mSIFID": mean over all (i, k) of S[i,k],
    "n_images", "n_samples", "per_image": [{"image", "n", "min", "mean", "max", "values"}]}``.
    """
    if not values:
        raise DataError("No images to summarise: the SIFID table is empty.")
    rows, mins, pooled = [], [], []
    for name, vals in values.items():
        vals = [float(v) for v in vals]
        if not vals:
            raise DataError(f"Image {name!r} has no samples; give at least one fake per image.")
        rows.append({"image": name, "n": len(vals), "min": min(vals),
                     "mean": float(np.mean(vals)), "max": max(vals), "values": vals})
        mins.append(min(vals))
        pooled.extend(vals)
    return {"SIFID": float(np.mean(mins)), "mSIFID": float(np.mean(pooled)),
            "n_images": len(rows), "n_samples": len(pooled), "per_image": rows}


def sifid_report(pairs: Mapping[str, tuple], extractor: Extractor | None = None) -> dict:
    """SIFID / mSIFID over a data set: ``pairs = {name: (real (3,H,W), fakes)}``.

    ``fakes`` is ``(N, 3, H, W)`` or a list of ``(3, H, W)``. See :func:`summarize_sifid` for the
    returned dict (SIFID = mean over images of the min over samples; mSIFID = pooled mean).
    """
    if not isinstance(pairs, Mapping) or not pairs:
        raise DataError("pairs must be a non-empty dict {name: (real, fakes)}.")
    ext = _extractor(extractor)
    values = {}
    for name, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(f"pairs[{name!r}] must be a (real, fakes) pair.")
        values[name] = sifid_many(pair[0], pair[1], ext)
    return summarize_sifid(values)


def _by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    paths = list_images(folder)
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise DataError(f"{folder} holds two images named {p.stem!r} ({stems[p.stem].name}, "
                            f"{p.name}); keep one so real and fake files pair unambiguously.")
        stems[p.stem] = p
    return stems


def sifid_folders(real_dir: str | os.PathLike, fake_dir: str | os.PathLike,
                  extractor: Extractor | None = None) -> dict:
    """SIFID of each real image in ``real_dir`` against the same-named fake in ``fake_dir``.

    Files are paired by stem (``img7.jpg`` ↔ ``img7.png``), in natural order. The result is the
    dict of :func:`summarize_sifid` (one sample per image, so SIFID == mSIFID) whose rows also
    name the two files.

    Raises:
        DataError: a folder is missing/empty, or some names are in one folder only (listed).
    """
    real, fake = _by_stem(real_dir), _by_stem(fake_dir)
    only_real = sorted(set(real) - set(fake), key=natural_key)
    only_fake = sorted(set(fake) - set(real), key=natural_key)
    if only_real or only_fake:
        raise DataError(f"Real and fake images are paired by file name, but some names are in "
                        f"one folder only: only in {real_dir}: {only_real}; only in {fake_dir}: "
                        f"{only_fake}. Rename or remove them.")
    ext = _extractor(extractor)
    names = sorted(real, key=natural_key)
    values = {n: [sifid(load_image(real[n]), load_image(fake[n]), ext)] for n in names}
    report = summarize_sifid(values)
    for row in report["per_image"]:
        row["real"], row["fake"] = real[row["image"]].name, fake[row["image"]].name
    return report
