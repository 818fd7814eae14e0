"""MNIST-like 28×28 grayscale datasets for Generative Invariance Transfer (REFERENCE §6, §8).

GIT's own dataset is K49 (Kuzushiji-49), which is not available offline. Two real datasets that
ship inside PyPI packages stand in for it (REFERENCE §8):

- ``digits``  — scikit-learn's 1,797 handwritten 8×8 digits, upsampled to 28×28;
- ``animals`` — animal-mnist 0.4: 10 classes × 1,000 animal silhouettes, 28×28, white on black.

The published MNIST / Fashion-MNIST / KMNIST / K49 files are read from a local folder
(:func:`load_mnist_like`); :func:`download_mnist_like` fetches them, but only when called.

Every dataset comes back as an :class:`ImageSet`: uint8 images ``(N, H, W)``, white object on a
black background whose pixels are exactly 0 (the BG nuisance of §6 repaints exactly those), and
int64 labels ``(N,)``.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .download import download_file

__all__ = ["ImageSet", "load_digits", "load_animal_silhouettes", "load_mnist_like",
           "download_mnist_like", "load_git_dataset", "GIT_DATASETS", "FILE_DATASETS",
           "MNIST_LIKE_FILES",
           "MNIST_LIKE_URLS", "ANIMAL_CLASSES"]


# -----------------------------------------------------------------------------
# container

@dataclass
class ImageSet:
    """A labelled set of gray images, as every GIT loader returns it."""
    images: torch.Tensor   # (N, H, W) uint8 gray, white object on black (background exactly
    #                        0), or (N, 3, H, W) uint8 colour (CIFAR)
    labels: torch.Tensor   # (N,) int64 class index into `classes`
    classes: list[str]     # class names; class c is `classes[c]`
    name: str              # short name used in figures and file names, e.g. "animals"

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 \
                or not (self.images.dim() == 3
                        or (self.images.dim() == 4 and self.images.shape[1] == 3)):
            raise DataError(f"ImageSet {self.name!r}: images must be a uint8 tensor (N, H, W) "
                            f"(gray) or (N, 3, H, W) (colour), got "
                            f"{getattr(self.images, 'dtype', type(self.images))} "
                            f"{tuple(getattr(self.images, 'shape', ()))}.")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 \
                or self.labels.shape != (self.images.shape[0],):
            raise DataError(f"ImageSet {self.name!r}: labels must be an int64 tensor of shape "
                            f"({self.images.shape[0]},), got "
                            f"{getattr(self.labels, 'dtype', type(self.labels))} "
                            f"{tuple(getattr(self.labels, 'shape', ()))}.")
        if self.labels.numel() and (int(self.labels.min()) < 0
                                    or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"ImageSet {self.name!r}: labels must lie in 0..{len(self.classes) - 1} "
                            f"(one per class name), got {int(self.labels.min())}.."
                            f"{int(self.labels.max())}.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        """1 for gray ``(N, H, W)`` images, 3 for colour ``(N, 3, H, W)``."""
        return 1 if self.images.dim() == 3 else int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def class_counts(self) -> torch.Tensor:
        """Images per class, ``(C,)`` int64."""
        return torch.bincount(self.labels, minlength=self.n_classes)

    def subset(self, index: torch.Tensor, name: str | None = None) -> "ImageSet":
        """A new ImageSet of the rows ``index`` (copies; the original is never modified)."""
        index = torch.as_tensor(index, dtype=torch.int64)
        return ImageSet(self.images.index_select(0, index), self.labels.index_select(0, index),
                        list(self.classes), name or self.name)


# -----------------------------------------------------------------------------
# scikit-learn digits

def load_digits(size: int = 28, margin: int = 4) -> ImageSet:
    """scikit-learn's 1,797 handwritten digits (8×8, values 0..16) as ``size``×``size`` uint8.

    Upsampled with bilinear interpolation (``F.interpolate``, align_corners=False) and scaled by
    255/16. A pixel whose bilinear neighbours are all 0 stays exactly 0, so the background is
    exactly 0 as the BG nuisance (REFERENCE §6) needs. White digit on black, ~180 per class.

    The 8×8 digits fill their frame (they touch its top and bottom), so a rotation (ROT) would cut
    their ends off. By default the digit is upsampled to ``size − 2·margin`` and padded with zeros,
    like MNIST's 20×20 digit in a 28×28 frame (``margin=4``); ``margin=0`` fills the frame.
    """
    if not isinstance(size, int) or not isinstance(margin, int) or margin < 0 \
            or size - 2 * margin < 8:
        raise DataError(f"load_digits: need ints size - 2*margin >= 8 (the source is 8×8), got "
                        f"size={size!r}, margin={margin!r}.")
    from sklearn.datasets import load_digits as _sk_load_digits   # bundled data, no network

    bunch = _sk_load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32))[:, None]   # (N, 1, 8, 8)
    inner = size - 2 * margin
    if inner != 8:
        x = F.interpolate(x, size=(inner, inner), mode="bilinear", align_corners=False)
    x = F.pad(x, (margin, margin, margin, margin))                                # (N, 1, S, S)
    x = (x * (255.0 / 16.0)).round().clamp_(0, 255).to(torch.uint8)[:, 0]      # (N, S, S)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))          # (N,)
    return ImageSet(x.contiguous(), labels, [str(d) for d in range(10)], "digits")


# -----------------------------------------------------------------------------
# animal-mnist silhouettes (restricted unpickling; never imports the package's loader)

ANIMAL_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
# The package documents the 10 classes in this (alphabetical) order; checked by eye against the
# images (label 0 = bears, ..., label 9 = zebras).
ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep",
                  "zebra"]


def _numpy_reconstruct() -> Callable[..., Any]:
    try:   # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:   # numpy 1.x
        from numpy.core.multiarray import _reconstruct   # type: ignore[no-redef]
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (no code can run while loading).

    Only the globals that a pickled ``ndarray`` refers to are allowed; any other global (e.g. an
    ``os.system`` smuggled in through ``__reduce__``) raises :class:`DataError` before it is called.
    """

    def __init__(self, file: Any, source: str, what: str = "an animal-mnist data file",
                 encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)   # "bytes": Python 2 pickles (CIFAR)
        self._source = source
        self._what = what
        reconstruct = _numpy_reconstruct()
        self._allowed: dict[tuple[str, str], Any] = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self._source}: refusing to unpickle {module}.{name}; only plain "
                            f"numpy arrays are accepted. The file is not {self._what} "
                            "(or has been tampered with).") from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._source}: persistent ids are not allowed in a numpy array pickle.")


def _load_numpy_pickle(path: str | os.PathLike) -> np.ndarray:
    """Read a gzip-compressed pickle of one numpy array with :class:`_NumpyOnlyUnpickler`."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            arr = _NumpyOnlyUnpickler(f, str(path)).load()
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: not a readable gzip + pickle of a numpy array ({exc!r}); "
                        "reinstall with `pip install --no-deps --force-reinstall "
                        "animal-mnist==0.4`.") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
        raise DataError(f"{path}: expected a numeric numpy array, got "
                        f"{type(arr).__name__} {getattr(arr, 'dtype', '')}.")
    return arr


def _animal_folder(path: str | os.PathLike | None) -> Path:
    if path is not None:
        folder = Path(path)
    else:
        spec = importlib.util.find_spec("animal_mnist")   # locates, does not import (tensorflow!)
        if spec is None or not spec.submodule_search_locations:
            raise DataError("The animal silhouettes need the animal-mnist package: run "
                            "`pip install --no-deps animal-mnist==0.4` (its wheel declares a "
                            "tensorflow dependency that reading the data does not need), or pass "
                            "path= to a folder holding " + " and ".join(ANIMAL_FILES) + ".")
        folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"
    missing = [n for n in ANIMAL_FILES if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; reinstall with `pip install "
                        "--no-deps --force-reinstall animal-mnist==0.4` or pass path= to a folder "
                        "holding " + " and ".join(ANIMAL_FILES) + ".")
    return folder


def load_animal_silhouettes(path: str | os.PathLike | None = None) -> ImageSet:
    """animal-mnist 0.4: 10,000 animal silhouettes, 28×28 uint8, 10 classes × 1,000 (REFERENCE §8).

    Reads the two gzip + pickle files inside the installed package (found with
    ``importlib.util.find_spec``; the package's own loader imports tensorflow and is never used),
    or from ``path`` when given. Unpickling is restricted to plain numpy arrays.

    Data quirks: the zebras are striped photographs rather than pure silhouettes, and ~2% of each
    image's pixels are faint (1..9) edge/compression noise, so the background is mostly but not
    entirely exactly 0.
    """
    folder = _animal_folder(path)
    data_file, label_file = (folder / n for n in ANIMAL_FILES)
    images = _load_numpy_pickle(data_file)
    labels = _load_numpy_pickle(label_file)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{data_file}: expected uint8 images (N, 28, 28), got {images.dtype} "
                        f"{images.shape}.")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
        raise DataError(f"{label_file}: expected {images.shape[0]} integer labels, got "
                        f"{labels.dtype} {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= len(ANIMAL_CLASSES)):
        raise DataError(f"{label_file}: labels must lie in 0..{len(ANIMAL_CLASSES) - 1}, got "
                        f"{labels.min()}..{labels.max()}.")
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)),
                    torch.from_numpy(labels.astype(np.int64)), list(ANIMAL_CLASSES), "animals")


# -----------------------------------------------------------------------------
# published MNIST-like files (local folder; opt-in download)

_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_K49_FILES = {"train": ("k49-train-imgs.npz", "k49-train-labels.npz"),
              "test": ("k49-test-imgs.npz", "k49-test-labels.npz")}
MNIST_LIKE_FILES: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": _IDX_FILES, "fashion-mnist": _IDX_FILES, "kmnist": _IDX_FILES, "k49": _K49_FILES}
MNIST_LIKE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "kmnist": "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    "k49": "http://codh.rois.ac.jp/kmnist/dataset/k49/",
}
_CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    # KMNIST / K49 class maps published with the data (kmnist_classmap.csv, k49_classmap.csv).
    "kmnist": list("おきすつなはまやれを"),
    "k49": list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわゐゑをんゝ"),
}


def _check_mnist_name(name: str) -> str:
    if name not in MNIST_LIKE_FILES:
        raise ConfigError(f"Unknown MNIST-like dataset name={name!r}; choose one of "
                        f"{sorted(MNIST_LIKE_FILES)}.")
    return name


def _dataset_folder(name: str, root: str | os.PathLike) -> Path:
    """``root/<name>`` when that folder exists, else ``root`` itself."""
    root = Path(root)
    return root / name if (root / name).is_dir() else root


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an idx-ubyte file (gzip or raw) of unsigned bytes with ``ndim`` dimensions."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read it ({exc}); the file is truncated or not gzip. "
                        "Delete it and fetch it again (download_mnist_like).") from exc
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(f"{path}: truncated idx file ({len(raw)} bytes, no magic number); delete "
                        "it and fetch it again (download_mnist_like).")
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise DataError(f"{path}: bad idx magic number 0x{magic:08x} (expected "
                        f"0x{0x0800 + ndim:08x}: unsigned bytes, {ndim} dimension(s)); this is "
                        "not the expected " + ("images" if ndim == 3 else "labels") + " file.")
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx file ({len(raw)} bytes, the header alone is "
                        f"{header}); delete it and fetch it again (download_mnist_like).")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: idx header says {dims} = {expected} bytes of data but the file "
                        f"holds {len(raw) - header}; it is truncated or corrupt. Delete it and "
                        "fetch it again (download_mnist_like).")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["arr_0"])
    except KeyError as exc:
        raise DataError(f"{path}: no array 'arr_0' in this npz (not a K49 file).") from exc
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable npz file ({exc}); delete it and fetch it again "
                        "(download_mnist_like).") from exc


def load_mnist_like(name: str, root: str | os.PathLike, split: str = "train") -> ImageSet:
    """Read MNIST, Fashion-MNIST, KMNIST or K49 from the published files in a local folder.

    Args:
        name: "mnist", "fashion-mnist", "kmnist" or "k49".
        root: folder holding the files, directly or in a sub-folder named ``name`` (the layout
            :func:`download_mnist_like` writes). idx files may be gzipped or not.
        split: "train" or "test".

    Never touches the network; missing or damaged files raise :class:`DataError`.
    """
    _check_mnist_name(name)
    if split not in ("train", "test"):
        raise ConfigError(f"load_mnist_like: split must be 'train' or 'test', got {split!r}.")
    folder = _dataset_folder(name, root)
    img_name, lbl_name = MNIST_LIKE_FILES[name][split]
    paths = []
    for fname in (img_name, lbl_name):
        p = folder / fname
        if not p.is_file() and fname.endswith(".gz") and (folder / fname[:-3]).is_file():
            p = folder / fname[:-3]   # an unzipped copy is fine too
        paths.append(p)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{name} ({split}) needs {img_name} and {lbl_name} in {folder}; missing: "
                        f"{', '.join(missing)}. Fetch them with download_mnist_like({name!r}, "
                        f"{str(root)!r}) on a machine with internet, or copy them there by hand.")
    if name == "k49":
        images, labels = _read_npz(paths[0]), _read_npz(paths[1])
    else:
        images, labels = _read_idx(paths[0], 3), _read_idx(paths[1], 1)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{paths[0]}: expected uint8 images (N, H, W), got {images.dtype} "
                        f"{images.shape}.")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
        raise DataError(f"{paths[1]}: expected {images.shape[0]} integer labels (one per image "
                        f"in {paths[0].name}), got {labels.dtype} {labels.shape}.")
    classes = _CLASSES[name]
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"{paths[1]}: labels must lie in 0..{len(classes) - 1}, got "
                        f"{labels.min()}..{labels.max()}.")
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)),
                    torch.from_numpy(labels.astype(np.int64)), list(classes),
                    name if split == "train" else f"{name}-test")


def download_mnist_like(name: str, root: str | os.PathLike) -> Path:
    """Opt-in download of the four published files of ``name`` into ``root/<name>``.

    Files already there are kept. Offline (or with ``MIL_OFFLINE=1``) this raises
    :class:`~mil_core.errors.OfflineError` naming the URL, so the files can be copied in by hand.
    Returns the folder, ready for :func:`load_mnist_like`.
    """
    _check_mnist_name(name)
    folder = Path(root) / name
    base = MNIST_LIKE_URLS[name]
    for split in ("train", "test"):
        for fname in MNIST_LIKE_FILES[name][split]:
            download_file(base + fname, folder / fname)
    return folder


# -----------------------------------------------------------------------------
# dispatcher

GIT_DATASETS = ("digits", "animals", "mnist", "fashion-mnist", "kmnist", "k49", "cifar10",
                "cifar100")
FILE_DATASETS = ("mnist", "fashion-mnist", "kmnist", "k49", "cifar10", "cifar100")  # need root=


def load_git_dataset(name: str, **kw: Any) -> ImageSet:
    """Load a GIT dataset by name; ``kw`` goes to the loader.

    "digits" → :func:`load_digits` (size=), "animals" → :func:`load_animal_silhouettes` (path=),
    "cifar10" / "cifar100" → :func:`mil_core.data.cifar.load_cifar` (root=, split=), the others
    → :func:`load_mnist_like` (root=, split=).
    """
    if name == "digits":
        return load_digits(**kw)
    if name == "animals":
        return load_animal_silhouettes(**kw)
    if name in FILE_DATASETS:
        if kw.get("root") is None:
            fetch = "download_cifar" if name.startswith("cifar") else "download_mnist_like"
            raise DataError(f"load_git_dataset({name!r}) needs root= (a folder holding the "
                            f"published files; see mil_core.data.{fetch}).")
        if name.startswith("cifar"):
            from .cifar import load_cifar   # cifar imports this module
            return load_cifar(name, **kw)
        return load_mnist_like(name, **kw)
    raise ConfigError(f"Unknown GIT dataset {name!r}; choose one of {list(GIT_DATASETS)}.")
