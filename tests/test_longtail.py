"""Long-tail builder of GIT (REFERENCE §6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mil_core.errors import ConfigError, DataError
from mil_core.data.longtail import (LONGTAIL_PRESETS, LongTailSpec, class_balanced_sampler,
                                    class_balanced_weights, class_rank_permutation,
                                    exponential_sizes, get_longtail_spec, make_long_tailed,
                                    zipf_sizes)
from mil_core.data.mnist_like import ImageSet


def _balanced(n_classes: int = 10, per_class: int = 60, side: int = 4) -> ImageSet:
    """A toy balanced set whose every image is unique (its pixels encode its index)."""
    n = n_classes * per_class
    idx = torch.arange(n)
    images = torch.zeros(n, side, side, dtype=torch.uint8)
    images[:, 0, 0] = (idx % 256).to(torch.uint8)
    images[:, 0, 1] = (idx // 256).to(torch.uint8)
    labels = (idx % n_classes).to(torch.int64)            # interleaved classes
    return ImageSet(images, labels, [f"c{i}" for i in range(n_classes)], "toy")


def _ids(ds: ImageSet) -> list[int]:
    return (ds.images[:, 0, 0].long() + 256 * ds.images[:, 0, 1].long()).tolist()


def test_k49_zipf_sizes():
    sizes = zipf_sizes(49, 4800, 2.0, 5)
    assert sizes[:6] == [4800, 1200, 533, 300, 192, 133]
    assert sizes.count(5) == 21
    assert sum(sizes) == 7822
    assert sizes[19] == 12            # 4800 / 20² is exactly 12, not floored to 11
    assert sizes == sorted(sizes, reverse=True)
    assert LONGTAIL_PRESETS["k49"].sizes(49) == sizes


def test_cifar_lt_exponential_sizes():
    sizes = exponential_sizes(10, 5000, 100)
    assert sizes == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(sizes) == 12_406
    assert sum(exponential_sizes(100, 500, 100)) == 10_847   # CIFAR-100-LT (ρ = 100)
    assert get_longtail_spec("cifar10-lt").sizes(10) == sizes
    assert exponential_sizes(1, 7, 100) == [7]
    # Exact integers survive floating point (64 · 64^(-5/6) is 1.9999999999999998 in floats).
    assert exponential_sizes(7, 64, 64) == [64, 32, 16, 8, 4, 2, 1]


def test_presets_fit_their_datasets():
    # digits: smallest class has 174 images; animals: 1000 per class.
    d = LONGTAIL_PRESETS["digits"]
    assert max(d.sizes(10)) + d.n_test_per_class <= 174
    a = LONGTAIL_PRESETS["animals"]
    assert max(a.sizes(10)) + a.n_test_per_class <= 1000
    with pytest.raises(ConfigError, match="preset"):
        get_longtail_spec("nope")
    with pytest.raises(ConfigError, match="profile"):
        LongTailSpec(profile="pareto")
    with pytest.raises(ConfigError):
        zipf_sizes(0, 10, 2.0, 1)


def test_rank_permutation_seeded():
    a = class_rank_permutation(49, instance=3, seed=0)
    assert np.array_equal(a, class_rank_permutation(49, instance=3, seed=0))
    assert sorted(a.tolist()) == list(range(49))
    others = [class_rank_permutation(49, instance=i, seed=0) for i in range(30)]
    assert all(sorted(p.tolist()) == list(range(49)) for p in others)
    assert len({tuple(p.tolist()) for p in others}) == 30        # 30 distinct instances
    assert not np.array_equal(a, class_rank_permutation(49, instance=3, seed=1))


def test_make_long_tailed_counts_split_and_input_untouched():
    ds = _balanced()
    before_images, before_labels = ds.images.clone(), ds.labels.clone()
    spec = LongTailSpec("zipf", n_max=40, alpha=1.0, n_min=2,
                        n_test_per_class=10)
    train, test, sizes = make_long_tailed(ds, spec, instance=5, seed=0)
    perm = class_rank_permutation(10, 5, 0)
    by_rank = zipf_sizes(10, 40, 1.0, 2)
    expected = [0] * 10
    for r, c in enumerate(perm):
        expected[int(c)] = by_rank[r]
    assert sizes == expected
    assert train.class_counts().tolist() == expected
    assert test.class_counts().tolist() == [10] * 10                 # balanced
    train_ids, test_ids = _ids(train), _ids(test)
    assert len(set(train_ids)) == len(train_ids)                     # no repeats
    assert not set(train_ids) & set(test_ids)                        # disjoint
    # Each image keeps its own label.
    assert all(i % 10 == int(y) for i, y in zip(train_ids, train.labels))
    assert torch.equal(ds.images, before_images) and torch.equal(ds.labels, before_labels)
    # Reproducible; the test split does not depend on the instance.
    train2, test2, _ = make_long_tailed(ds, spec, instance=5, seed=0)
    assert _ids(train2) == train_ids and _ids(test2) == test_ids
    _, test3, sizes3 = make_long_tailed(ds, spec, instance=6, seed=0)
    assert _ids(test3) == test_ids and sizes3 != sizes
    # The outputs are copies.
    train.images.zero_()
    assert torch.equal(ds.images, before_images)


def test_make_long_tailed_by_preset_name_on_real_digits():
    from mil_core.data.mnist_like import load_digits
    train, test, sizes = make_long_tailed(load_digits(size=8, margin=0), "digits", instance=0)
    assert sorted(sizes, reverse=True) == LONGTAIL_PRESETS["digits"].sizes(10)
    assert test.class_counts().tolist() == [30] * 10


def test_too_few_images_error_and_allow_repeat():
    ds = _balanced(per_class=20)
    spec = LongTailSpec("zipf", n_max=15, alpha=2.0, n_min=1, n_test_per_class=10)
    with pytest.raises(DataError) as info:
        make_long_tailed(ds, spec, instance=0)
    msg = str(info.value)
    head = int(class_rank_permutation(10, 0, 0)[0])
    assert f"class {head}" in msg and "has 20 images but needs 25" in msg
    assert "n_test_per_class" in msg and "n_max" in msg
    # allow_repeat cycles through the class's remaining images (as GIT's K49 script does).
    rep = LongTailSpec("zipf", n_max=15, alpha=2.0, n_min=1, n_test_per_class=10,
                       allow_repeat=True)
    train, test, sizes = make_long_tailed(ds, rep, instance=0)
    assert train.class_counts()[head] == 15
    head_ids = [i for i, y in zip(_ids(train), train.labels.tolist()) if y == head]
    assert len(set(head_ids)) == 10 and not set(head_ids) & set(_ids(test))


def test_class_balanced_sampler_uniform_over_classes():
    labels = torch.tensor([0] * 500 + [1] * 50 + [2] * 5 + [3] * 1)
    w = class_balanced_weights(labels)
    assert w.shape == labels.shape
    for c in range(4):
        assert torch.isclose(w[labels == c].sum(), torch.tensor(1.0, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    n = 40_000
    drawn = torch.tensor(list(class_balanced_sampler(labels, num_samples=n, generator=g)))
    freq = torch.bincount(labels[drawn], minlength=4).double() / n
    # Binomial sd of a frequency is sqrt(0.25·0.75/40000) ≈ 0.0022; allow ~5 sd.
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.012)
    # Within a class, images are uniform too: all 5 images of class 2 show up.
    assert set(drawn[labels[drawn] == 2].tolist()) == set(range(550, 555))
    assert len(class_balanced_sampler(labels)) == len(labels)
