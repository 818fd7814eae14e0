"""CIFAR-10/100 from the python-version pickles, and the colour path through GIT's trainers."""
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from mil_core.classify import ClassifierConfig, train_classifier
from mil_core.classify.sweep import (classifier_recipe, make_split, munit_recipe,
                                     train_augmenter)
from mil_core.classify.trainer import crop_flip, predict_proba
from mil_core.data import ImageSet, load_cifar, load_git_dataset
from mil_core.data import longtail
from mil_core.data.cifar import _safe_extract
from mil_core.data.longtail import LongTailSpec, make_long_tailed
from mil_core.data.nuisance import to_float, to_uint8, transform_dataset
from mil_core.errors import ConfigError, DataError

N_TRAIN_PER_BATCH, N_TEST = 40, 30   # 5 batches × 40 = 200 train images, 30 test (3 per class)


def _images(n, labels, rng):
    """Class c: red plane c·20, green plane from noise, blue 255 − c·20 (classes separable)."""
    x = np.empty((n, 3, 32, 32), np.uint8)
    for k, c in enumerate(labels):
        x[k, 0] = c * 20
        x[k, 1] = rng.integers(0, 256, (32, 32))
        x[k, 2] = 255 - c * 20
    return x.reshape(n, -1)


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """The cifar-10-batches-py layout with tiny batches (bytes keys, as Krizhevsky's files)."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        labels = [int(c) for c in rng.permutation(np.arange(N_TRAIN_PER_BATCH) % 10)]
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": labels,
                                          b"data": _images(len(labels), labels, rng)})
    labels = [k % 10 for k in range(N_TEST)]
    _dump(folder / "test_batch", {b"labels": labels, b"data": _images(N_TEST, labels, rng)})
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                  "frog", "horse", "ship", "truck")]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 40})
    return root


def test_load_cifar10_shapes_planes_labels_and_names(cifar_root):
    train = load_cifar("cifar10", cifar_root)
    test = load_git_dataset("cifar10", root=cifar_root / "cifar-10-batches-py", split="test")
    assert train.images.shape == (5 * N_TRAIN_PER_BATCH, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.channels == 3
    assert train.image_size == (32, 32) and train.name == "cifar10"
    assert test.name == "cifar10-test" and test.class_counts().tolist() == [3] * 10
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    # the 3072 values of a row are the red, green and blue planes in that order
    c = train.labels
    assert torch.equal(train.images[:, 0, 0, 0], (c * 20).to(torch.uint8))
    assert torch.equal(train.images[:, 2, 5, 7], (255 - c * 20).to(torch.uint8))


def test_cifar100_layout_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    fine = [k % 100 for k in range(200)]
    for split in ("train", "test"):
        _dump(folder / split, {b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                               b"data": rng.integers(0, 256, (200, 3072), dtype=np.uint8)})
    _dump(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    ds = load_cifar("cifar100", tmp_path, "test")
    assert ds.n_classes == 100 and ds.labels.tolist() == fine and ds.classes[42] == "c42"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    _dump(folder / "test_batch", {b"labels": [0], b"data": _Evil()})
    with pytest.raises(DataError, match=r"test_batch: refusing to unpickle .*system.*CIFAR"):
        load_cifar("cifar10", tmp_path, "test")
    assert not (tmp_path / "pwned").exists()


def test_missing_damaged_and_unknown_inputs_say_what_to_do(tmp_path, cifar_root):
    with pytest.raises(DataError, match=r"data_batch_1.*download_cifar"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(ConfigError, match="cifar10"):
        load_cifar("cifar-10", tmp_path)
    with pytest.raises(ConfigError, match="split"):
        load_cifar("cifar10", cifar_root, "val")
    with pytest.raises(DataError, match="needs root="):
        load_git_dataset("cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR"):
        load_cifar("cifar10", tmp_path, "test")
    _dump(folder / "test_batch", {b"labels": [0, 1], b"data": np.zeros((2, 100), np.uint8)})
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        load_cifar("cifar10", tmp_path, "test")
    _dump(folder / "test_batch", {b"labels": [0, 11], b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.9"):
        load_cifar("cifar10", tmp_path, "test")


def test_archive_with_a_link_is_not_extracted(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
        data = b"x"
        info = tarfile.TarInfo("../outside")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="refusing to extract"):
        _safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "outside").exists() and not (tmp_path / "out").exists()


def test_image_set_takes_gray_or_colour_only():
    y = torch.zeros(2, dtype=torch.int64)
    assert ImageSet(torch.zeros(2, 8, 8, dtype=torch.uint8), y, ["a"], "g").channels == 1
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        ImageSet(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), y, ["a"], "bad")


def test_to_float_and_transforms_keep_colour():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert to_float(x).shape == (4, 3, 32, 32) and torch.equal(to_uint8(to_float(x)), x)
    assert torch.equal(transform_dataset(x, "identity"), x)
    rot = transform_dataset(x, "rot", torch.Generator().manual_seed(0))
    assert rot.shape == x.shape and not torch.equal(rot, x)


def test_crop_flip_is_a_padded_shift_and_a_mirror():
    x = torch.rand(64, 3, 8, 8)
    before = x.clone()
    out = crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and torch.equal(x, before)
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (64,), generator=g)
    dx = torch.randint(0, 5, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for k in range(64):
        ref = xp[k, :, dy[k]:dy[k] + 8, dx[k]:dx[k] + 8]
        assert torch.equal(out[k], ref.flip(-1) if flip[k] else ref)
    assert 0 < int(flip.sum()) < 64 and len(set((dy * 5 + dx).tolist())) > 10
    assert torch.equal(crop_flip(x, torch.Generator().manual_seed(0), pad=2), out)


def test_recipes_change_sizes_at_paper_only():
    assert classifier_recipe("digits", "paper") == {} and munit_recipe("k49", "paper") == {}
    assert classifier_recipe("cifar10", "cpu") == {"lr_steps": (0.8, 0.9), "crop_flip": True}
    paper = classifier_recipe("cifar100", "paper")
    assert paper["model"] == "resnet32" and paper["epochs"] == 200 and paper["crop_flip"]
    assert munit_recipe("cifar10", "paper") == {"iters": 140_000}
    assert munit_recipe("cifar10", "smoke") == {}


@pytest.fixture()
def small_cifar_lt(monkeypatch):
    spec = LongTailSpec("exponential", n_max=20, imbalance=10.0, n_min=1)
    monkeypatch.setitem(longtail.LONGTAIL_PRESETS, "cifar10-lt", spec)
    return spec


def test_make_split_uses_the_official_test_set(cifar_root, small_cifar_lt):
    split = make_split("cifar10", "identity", 0, root=cifar_root)
    assert split.dataset == "cifar10"
    assert sorted(split.sizes, reverse=True) == small_cifar_lt.sizes(10)
    assert split.test.class_counts().tolist() == [3] * 10
    assert torch.equal(split.test.images, load_cifar("cifar10", cifar_root, "test").images)
    assert split.train.images.shape[1:] == (3, 32, 32)
    ds = load_cifar("cifar10", cifar_root)
    with pytest.raises(DataError, match="pass test="):
        make_split(ds, "identity", 0)


def test_colour_classifier_learns_with_crop_and_flip(cifar_root):
    ds = load_cifar("cifar10", cifar_root)
    train, _, _ = make_long_tailed(ds, LongTailSpec("exponential", n_max=20, imbalance=2.0,
                                                    n_min=1), 0)
    test = load_cifar("cifar10", cifar_root, "test")
    cfg = ClassifierConfig(model="smallcnn", epochs=6, batch_size=32, warmup_epochs=1,
                           lr_steps=(0.5, 0.84), eval_every=0, crop_flip=True, seed=0)
    run = train_classifier(train, test, cfg)
    losses = [row["train_loss"] for row in run.history]
    assert losses[-1] < losses[0]
    assert run.acc > 0.5                 # the classes differ by their red / blue level
    assert predict_proba(run.model, test.images).shape == (N_TEST, 10)


def test_munit_on_colour_images(cifar_root, small_cifar_lt):
    split = make_split("cifar10", "identity", 0, root=cifar_root)
    m = train_augmenter(split, "smoke", seed=0, iters=3, log_every=1)
    assert m.config.in_channels == 3 and m.config.image_size == 32
    x = to_float(split.train.images[:4]) * 2 - 1
    out = m.translate(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 32, 32) and out.abs().max() <= 1


def test_k49_lt_split_reads_the_official_test_set(tmp_path):
    """GIT's own benchmark from its files: 4800/k² per rank, the K49 test split as test set."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 49 * 6), ("test", 49 * 2)):
        labels = np.arange(n, dtype=np.uint8) % 49
        imgs = (rng.random((n, 28, 28)) < 0.2).astype(np.uint8) * 255
        np.savez(tmp_path / f"k49-{split}-imgs.npz", imgs)
        np.savez(tmp_path / f"k49-{split}-labels.npz", labels)
    split = make_split("k49", "bg", 0, root=tmp_path)
    assert sorted(split.sizes, reverse=True)[:4] == [4800, 1200, 533, 300]
    assert sum(split.sizes) == 7822 and split.sizes.count(5) == 21
    assert split.test.class_counts().tolist() == [2] * 49 and split.test_clean.name == "k49-test"
    with pytest.raises(DataError, match="root="):
        make_split("k49", "bg", 0)


def test_file_benchmarks_run_cifar_and_skip_what_is_missing(cifar_root, small_cifar_lt):
    from mil_core.invariance_transfer import file_benchmarks

    table, skipped = file_benchmarks("smoke", str(cifar_root), ("cifar10", "cifar100", "k49"))
    assert set(skipped) == {"cifar100", "k49"} and "download_cifar" in skipped["cifar100"]
    assert table["rule"].tolist() == ["erm", "drs", "drs+git"]
    assert (table["transform"] == "identity").all()
    assert table["error %"].between(0, 100).all()
    assert table.set_index("rule").loc["drs+git", "paper error %"] == 21.24
    assert table.set_index("rule")["paper error %"].isna().sum() == 2
    empty, skipped = file_benchmarks("smoke", None, ("cifar10",))
    assert len(empty) == 0 and "root=" in skipped["cifar10"]
