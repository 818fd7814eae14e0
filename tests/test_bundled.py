"""The bundled photo collection loads offline (network blocked) as colour images in [-1, 1]."""
from __future__ import annotations


import pytest
import torch

from mil_core.data import bundled
from mil_core.data.bundled import (bundled_info, bundled_names, load_bundled,
                                   load_bundled_collection, load_collection)
from mil_core.errors import DataError


@pytest.fixture
def offline_fresh(no_network):
    """No network (conftest) and an empty cache, so photos really load from disk."""
    bundled._load_uint8.cache_clear()
    yield


def test_at_least_ten_photos_with_licences():
    names = bundled_names()
    assert len(names) >= 10 and len(set(names)) == len(names)
    for n in names:
        info = bundled_info(n)
        assert info.licence.strip() and info.credit.strip() and info.package.strip()


@pytest.mark.parametrize("name", bundled_names())
def test_each_photo_loads_offline_in_colour(name, offline_fresh):
    t = load_bundled(name)
    h, w = bundled_info(name).size
    assert tuple(t.shape) == (3, h, w)
    assert t.dtype == torch.float32
    assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
    assert min(h, w) >= 250
    assert not (torch.equal(t[0], t[1]) and torch.equal(t[1], t[2]))   # a colour photo
    assert float((t[0] - t[1]).abs().mean()) > 0.01
    assert float(t.std()) > 0.05                                        # not blank


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError) as info:
        load_bundled("lena")
    assert "lena" in str(info.value) and "astronaut" in str(info.value)
    with pytest.raises(DataError):
        load_bundled_collection(["astronaut", "nope"])


def test_min_size_and_cache_is_not_shared():
    with pytest.raises(DataError, match="min_size=400"):
        load_bundled("chelsea", min_size=400)
    a = load_bundled("chelsea")
    a.zero_()                                                # mutating one result ...
    assert float(load_bundled("chelsea").abs().sum()) > 0    # ... does not corrupt the cache


def test_collections(tmp_path):
    out = load_collection("bundled", limit=2)
    assert [n for n, _ in out] == bundled_names()[:2]
    with pytest.raises(DataError, match="does not exist"):
        load_collection(tmp_path / "missing")
