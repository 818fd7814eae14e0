"""GIT datasets: digits, animal silhouettes, published MNIST-like files (REFERENCE §6, §8)."""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from mil_core.errors import ConfigError, DataError, OfflineError
from mil_core.data.mnist_like import (ANIMAL_CLASSES, ImageSet, _load_numpy_pickle,
                                      download_mnist_like, load_animal_silhouettes, load_digits,
                                      load_git_dataset, load_mnist_like)


@pytest.fixture(scope="module")
def animals() -> ImageSet:
    return load_animal_silhouettes()


# -----------------------------------------------------------------------------
# digits and animals

def test_digits_shape_dtype_range_background():
    ds = load_digits(margin=0)
    assert ds.images.shape == (1797, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (1797,) and ds.labels.dtype == torch.int64
    assert ds.classes == [str(d) for d in range(10)] and ds.name == "digits"
    assert int(ds.images.max()) == 255 and int(ds.images.min()) == 0
    assert set(ds.labels.tolist()) == set(range(10))
    assert ds.class_counts().min() >= 170            # the "digits" long-tail preset needs 170
    # Background stays exactly 0 (the BG nuisance repaints exactly those pixels).
    assert (ds.images == 0).float().mean() > 0.2
    from sklearn.datasets import load_digits as sk
    src = torch.from_numpy(sk().images)
    first_col_zero = (src[:, :, 0] == 0).all(dim=1)       # digits whose left column is all 0
    assert bool((ds.images[first_col_zero][:, :, 0] == 0).all())


def test_digits_margin_pads_with_zeros():
    ds = load_digits()  # default: MNIST-like 20×20 digit, 4-px margin
    assert ds.images.shape == (1797, 28, 28)
    assert int(ds.images[:, :4].max()) == 0 and int(ds.images[:, :, -4:].max()) == 0
    with pytest.raises(DataError, match="size"):
        load_digits(size=10, margin=2)


def test_animals_10_by_1000(animals):
    assert animals.images.shape == (10_000, 28, 28) and animals.images.dtype == torch.uint8
    assert animals.labels.dtype == torch.int64
    assert animals.class_counts().tolist() == [1000] * 10
    assert animals.classes == ANIMAL_CLASSES and len(animals.classes) == 10
    assert int(animals.images.max()) == 255
    # White on black: most pixels are exactly 0, the border is dark.
    assert (animals.images == 0).float().mean() > 0.5
    assert animals.images[:, 0, :].float().mean() < 10


# -----------------------------------------------------------------------------
# restricted unpickler

class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_gz_pickle(path, obj) -> None:
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.gz"
    _write_gz_pickle(evil, _Evil(str(marker)))
    with pytest.raises(DataError, match="refusing to unpickle"):
        _load_numpy_pickle(evil)
    assert not marker.exists()
    # Through the public loader, with the evil file as the data file.
    folder = tmp_path / "animals"
    folder.mkdir()
    _write_gz_pickle(folder / "animal_data_version_3.gz", _Evil(str(marker)))
    _write_gz_pickle(folder / "animal_label_version_3.gz", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="posix.system|os.system|nt.system"):
        load_animal_silhouettes(path=folder)
    assert not marker.exists()


def test_restricted_unpickler_refuses_object_arrays_and_builtins(tmp_path):
    p = tmp_path / "obj.gz"
    _write_gz_pickle(p, np.array([1, "a"], dtype=object))
    with pytest.raises(DataError):
        _load_numpy_pickle(p)
    _write_gz_pickle(p, {"not": "an array"})
    with pytest.raises(DataError):
        _load_numpy_pickle(p)
    with gzip.open(p, "wb") as f:   # builtins.eval smuggled in by hand
        f.write(b"\x80\x04cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(DataError, match="builtins.eval"):
        _load_numpy_pickle(p)


def test_restricted_unpickler_reads_arrays_and_explicit_path(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 2).astype(np.int64)
    _write_gz_pickle(tmp_path / "animal_data_version_3.gz", imgs)
    _write_gz_pickle(tmp_path / "animal_label_version_3.gz", labels)
    ds = load_animal_silhouettes(path=tmp_path)
    assert torch.equal(ds.images, torch.from_numpy(imgs))
    assert ds.labels.tolist() == labels.tolist()
    # Wrong shapes are refused.
    _write_gz_pickle(tmp_path / "animal_data_version_3.gz", imgs[:, :27])
    with pytest.raises(DataError, match="28, 28"):
        load_animal_silhouettes(path=tmp_path)


def test_animals_missing_files_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="animal_data_version_3.gz"):
        load_animal_silhouettes(path=tmp_path)
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match="pip install --no-deps animal-mnist==0.4"):
        load_animal_silhouettes()


# -----------------------------------------------------------------------------
# idx / npz files

def _idx_bytes(arr: np.ndarray) -> bytes:
    header = (0x0800 + arr.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx(folder, prefix, imgs, labels, gz=True) -> None:
    for kind, arr, nd in (("images", imgs, 3), ("labels", labels, 1)):
        name = f"{prefix}-{kind}-idx{nd}-ubyte"
        data = _idx_bytes(arr)
        if gz:
            with gzip.open(folder / (name + ".gz"), "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_idx_round_trip(tmp_path, name, no_network):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12).astype(np.uint8)
    _write_idx(tmp_path, "train", imgs, labels)
    _write_idx(tmp_path, "t10k", imgs[:5], labels[:5], gz=False)   # unzipped copies work too
    ds = load_mnist_like(name, tmp_path)
    assert torch.equal(ds.images, torch.from_numpy(imgs))
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()
    assert len(ds.classes) == 10
    test = load_mnist_like(name, tmp_path, split="test")
    assert len(test) == 5 and torch.equal(test.images, torch.from_numpy(imgs[:5]))
    # Sub-folder layout written by download_mnist_like, through the dispatcher.
    sub = tmp_path / "nested" / name
    sub.mkdir(parents=True)
    _write_idx(sub, "train", imgs, labels)
    ds2 = load_git_dataset(name, root=tmp_path / "nested")
    assert torch.equal(ds2.images, ds.images)


def test_k49_npz_round_trip(tmp_path, no_network):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (15, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 49, 15)
    np.savez(tmp_path / "k49-train-imgs.npz", imgs)
    np.savez(tmp_path / "k49-train-labels.npz", labels)
    ds = load_mnist_like("k49", tmp_path)
    assert torch.equal(ds.images, torch.from_numpy(imgs))
    assert ds.labels.tolist() == labels.tolist() and len(ds.classes) == 49
    # An object array (needs pickle) is refused, and the pickle inside never runs.
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(str(marker))
    np.savez(tmp_path / "k49-train-labels.npz", evil)
    with pytest.raises(DataError, match="k49-train-labels.npz"):
        load_mnist_like("k49", tmp_path)
    assert not marker.exists()


def test_truncated_and_wrong_idx(tmp_path):
    imgs = np.zeros((4, 28, 28), np.uint8)
    labels = np.zeros(4, np.uint8)
    _write_idx(tmp_path, "train", imgs, labels, gz=False)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        load_mnist_like("mnist", tmp_path)
    # Labels file where the images file should be: wrong magic.
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(labels))
    with pytest.raises(DataError, match="magic"):
        load_mnist_like("mnist", tmp_path)
    # A truncated gzip file.
    (tmp_path / "train-images-idx3-ubyte").unlink()
    data = gzip.compress(_idx_bytes(imgs))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_mnist_like("mnist", tmp_path)
    # Label count differs from image count.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:3]))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_mnist_like("mnist", tmp_path)


def test_missing_files_listed(tmp_path, no_network):
    with pytest.raises(DataError) as info:
        load_mnist_like("fashion-mnist", tmp_path, split="test")
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "download_mnist_like" in msg
    with pytest.raises(DataError, match="k49-train-imgs.npz"):
        load_mnist_like("k49", tmp_path)


def test_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="cifar"):
        load_mnist_like("cifar", tmp_path)
    with pytest.raises(ConfigError, match="split"):
        load_mnist_like("mnist", tmp_path, split="val")
    with pytest.raises(ConfigError, match="digits"):
        load_git_dataset("nope")
    with pytest.raises(DataError, match="root="):
        load_git_dataset("mnist")


def test_download_offline_names_url(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("MIL_OFFLINE", "1")
    with pytest.raises(OfflineError,
                       match="https://ossci-datasets.s3.amazonaws.com/mnist/train-images"):
        download_mnist_like("mnist", tmp_path)
    with pytest.raises(OfflineError, match="codh.rois.ac.jp/kmnist/dataset/k49/k49-train-imgs"):
        download_mnist_like("k49", tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_loaders_never_touch_network(no_network, animals):
    assert len(load_digits()) == 1797
    assert len(load_animal_silhouettes()) == 10_000
    assert len(load_git_dataset("digits", size=16).images[0]) == 16


def test_imageset_validates():
    with pytest.raises(DataError, match="uint8"):
        ImageSet(torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"], "x")
    with pytest.raises(DataError, match="labels"):
        ImageSet(torch.zeros(2, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), ["a", "b"], "x")
