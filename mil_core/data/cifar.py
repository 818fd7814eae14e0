"""CIFAR-10 and CIFAR-100 from the published "python version" files, for GIT's CIFAR-LT rows.

Zhou et al. (ICLR 2022, Sec. 5; REFERENCE §6) report CE+DRS+GIT on CIFAR-10-LT and CIFAR-100-LT
(exponential profile, imbalance ρ = 100, :data:`~mil_core.data.longtail.LONGTAIL_PRESETS`): no
synthetic nuisance there — the MUNIT learns the datasets' natural ones — and the official
balanced test sets (1,000 / 100 images per class).

The files are Krizhevsky's pickles (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``,
``batches.meta``; ``cifar-100-python/train``, ``test``, ``meta``). A pickle can run code when it is
loaded, so they are read with a restricted unpickler that builds plain numpy arrays, lists,
dicts and strings and refuses every other global (:class:`~mil_core.data.mnist_like.
_NumpyOnlyUnpickler`). Nothing downloads unless :func:`download_cifar` is called.

Images come back as an :class:`~mil_core.data.mnist_like.ImageSet` of uint8 ``(N, 3, 32, 32)``.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .download import download_file
from .mnist_like import ImageSet, _NumpyOnlyUnpickler

__all__ = ["CIFAR_NAMES", "CIFAR_FILES", "CIFAR_URLS", "load_cifar", "download_cifar"]

CIFAR_NAMES = ("cifar10", "cifar100")

# folder inside the archive, train files, test files, meta file, label key, class-name key
CIFAR_FILES: dict[str, dict[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "labels": b"labels", "names": b"label_names",
                "n_classes": 10},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "test": ["test"],
                 "meta": "meta", "labels": b"fine_labels", "names": b"fine_label_names",
                 "n_classes": 100},
}

CIFAR_URLS = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
              "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}

_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE   # one row of b"data": 1024 red, 1024 green, 1024 blue values


def _check_name(name: str) -> dict[str, Any]:
    if name not in CIFAR_FILES:
        raise ConfigError(f"Unknown CIFAR dataset {name!r}; choose one of {list(CIFAR_NAMES)}.")
    return CIFAR_FILES[name]


def _folder(name: str, root: str | os.PathLike) -> Path:
    """``root`` itself when it holds the files, else ``root/<archive folder>``."""
    spec = _check_name(name)
    root = Path(root)
    for cand in (root, root / spec["folder"]):
        if (cand / spec["test"][0]).is_file():
            return cand
    return root / spec["folder"]


def _read_pickle(path: Path) -> Any:
    """One CIFAR pickle (a Python 2 dict of bytes keys) read with the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, str(path), what="a CIFAR python-version file",
                                       encoding="bytes").load()
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CIFAR python-version pickle ({exc!r}); delete "
                        "it and fetch the archive again (download_cifar).") from exc


def _key(d: dict, key: bytes) -> Any:
    """``d[key]``, accepting str keys too (files re-pickled under Python 3)."""
    if key in d:
        return d[key]
    return d.get(key.decode())


def _class_names(folder: Path, spec: dict[str, Any], n: int) -> list[str]:
    meta = folder / spec["meta"]
    if not meta.is_file():
        return [str(c) for c in range(n)]
    d = _read_pickle(meta)
    names = _key(d, spec["names"]) if isinstance(d, dict) else None
    if not isinstance(names, list) or len(names) != n:
        raise DataError(f"{meta}: expected {n} class names under {spec['names'].decode()!r}.")
    return [x.decode() if isinstance(x, bytes) else str(x) for x in names]


def load_cifar(name: str, root: str | os.PathLike, split: str = "train") -> ImageSet:
    """Read CIFAR-10 or CIFAR-100 (fine labels) from the python-version files under ``root``.

    Args:
        name: "cifar10" or "cifar100".
        root: the extracted archive's folder (``cifar-10-batches-py`` / ``cifar-100-python``)
            or a folder that holds it (the layout :func:`download_cifar` writes).
        split: "train" (50,000 images) or "test" (10,000, balanced).

    Returns an ImageSet of uint8 ``(N, 3, 32, 32)`` images named ``name`` (train) or
    ``name + "-test"``. Never touches the network; missing, damaged or tampered files raise
    :class:`DataError` before anything in them runs.
    """
    spec = _check_name(name)
    if split not in ("train", "test"):
        raise ConfigError(f"load_cifar: split must be 'train' or 'test', got {split!r}.")
    folder = _folder(name, root)
    paths = [folder / f for f in spec[split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{name} ({split}) needs {', '.join(spec[split])} in {folder}; missing: "
                        f"{', '.join(missing)}. Fetch them with download_cifar({name!r}, "
                        f"{str(root)!r}) on a machine with internet, or extract "
                        f"{CIFAR_URLS[name].rsplit('/', 1)[-1]} there by hand.")
    images, labels = [], []
    for p in paths:
        d = _read_pickle(p)
        data = _key(d, b"data") if isinstance(d, dict) else None
        lab = _key(d, spec["labels"]) if isinstance(d, dict) else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != _PIXELS:
            raise DataError(f"{p}: expected b'data' as uint8 (N, {_PIXELS}), got "
                            f"{getattr(data, 'dtype', type(data).__name__)} "
                            f"{getattr(data, 'shape', '')}.")
        lab = np.asarray(lab if lab is not None else [], dtype=np.int64)
        if lab.shape != (data.shape[0],):
            raise DataError(f"{p}: expected {data.shape[0]} labels under "
                            f"{spec['labels'].decode()!r}, got {lab.shape[0]}.")
        if lab.size and (lab.min() < 0 or lab.max() >= spec["n_classes"]):
            raise DataError(f"{p}: labels must lie in 0..{spec['n_classes'] - 1}, got "
                            f"{lab.min()}..{lab.max()}.")
        images.append(data.reshape(-1, 3, _SIDE, _SIDE))               # (n, 3, 32, 32) RGB planes
        labels.append(lab)
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate(images)))
    y = torch.from_numpy(np.concatenate(labels))
    return ImageSet(x, y, _class_names(folder, spec, spec["n_classes"]),
                    name if split == "train" else f"{name}-test")


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract regular files and folders only, never outside ``dest`` (no links, devices)."""
    dest_abs = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if not (m.isfile() or m.isdir()) or not target.is_relative_to(dest_abs):
                raise DataError(f"{archive}: refusing to extract {m.name!r} (a link, device or a "
                                "path outside the folder); the archive is not the published one.")
            members.append(m)
        tar.extractall(dest, members=members)


def download_cifar(name: str, root: str | os.PathLike) -> Path:
    """Opt-in download of the python-version archive of ``name`` into ``root``, extracted there.

    An archive already in ``root`` is reused. Offline (or with ``MIL_OFFLINE=1``) this raises
    :class:`~mil_core.errors.OfflineError` naming the URL, so the file can be copied in by hand.
    Returns the folder for :func:`load_cifar`.
    """
    spec = _check_name(name)
    root = Path(root)
    folder = root / spec["folder"]
    if (folder / spec["test"][0]).is_file():
        return folder
    url = CIFAR_URLS[name]
    archive = download_file(url, root / url.rsplit("/", 1)[-1])
    _safe_extract(archive, root)
    return folder
