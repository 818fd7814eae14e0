"""Tests of mil_core.metrics.swd: the every-patch mode, unequal sets, the per-sample protocol.

(The pyramid, the random-patch mode's seeding and its invariances are in tests/test_metrics.py.)
"""
import importlib

import numpy as np
import pytest
import torch

from mil_core.errors import ConfigError, DataError
from mil_core.metrics import extract_patches, sliced_wasserstein, swd, swd_per_sample
from synthetic import noisy, smooth_image

swd_module = importlib.import_module("mil_core.metrics.swd")


def _image(seed: int, h: int = 48, w: int = 64) -> torch.Tensor:
    return smooth_image(seed, h, w)


_noisy = noisy


# ----------------------------------------------------------------------------- the floor

def test_every_patch_identical_copy_is_exactly_zero():
    x = _image(0)
    r = swd(x, x.clone())
    assert r["mean"] == 0.0 and r["per_level"] == [0.0, 0.0]
    assert r["patches_per_image"] == "all" and r["n_descriptors"] is None
    # every 7×7 patch of each level: (h − 6)·(w − 6)
    assert r["level_sizes"] == [(48, 64), (24, 32)]
    assert r["set_sizes"] == [(42 * 58, 42 * 58), (18 * 26, 18 * 26)]
    assert swd(x, x, patches_per_image=None) == r
    # a copy of a set: N identical copies against one image (unequal sets) is 0 too
    pooled = swd(x, [x, x, x])
    assert pooled["set_sizes"][0] == (42 * 58, 3 * 42 * 58)
    assert pooled["mean"] < 1e-6


def test_random_patch_mode_has_a_sampling_floor_the_every_patch_mode_does_not():
    # the reader's problem (issue 10 §1): with 128 random patches an identical copy scores a
    # sizeable fraction of another image's distance
    x, other = _image(0), _image(3)
    legacy_copy = swd(x, x, patches_per_image=128)["mean"]
    legacy_other = swd(x, other, patches_per_image=128)["mean"]
    assert legacy_copy > 0.2 * legacy_other
    assert swd(x, x)["mean"] == 0.0 < 0.02 * swd(x, other)["mean"]


def test_every_patch_mirror_positive_other_image_larger():
    x = _image(0)
    mirror = swd(x, x.flip(-1))["mean"]
    other = swd(x, _image(3))["mean"]
    assert 0.0 < mirror < other
    # and it grows with the damage done to the image
    noise = [swd(x, _noisy(x, s))["mean"] for s in (0.02, 0.1, 0.3)]
    assert 0.0 < noise[0] < noise[1] < noise[2]


def test_every_patch_symmetric_also_for_unequal_sizes():
    x, y, z = _image(0), _noisy(_image(0), 0.1), _image(5, 40, 64)
    assert swd(x, y)["per_level"] == pytest.approx(swd(y, x)["per_level"], rel=1e-12)
    xz, zx = swd(x, z), swd(z, x)
    assert xz["set_sizes"][0] == (42 * 58, 34 * 58)
    assert xz["per_level"] == pytest.approx(zx["per_level"], rel=1e-12)


def test_every_patch_invariant_to_per_channel_affine_maps():
    x, y = _image(0), _noisy(_image(0), 0.2)
    scale = torch.tensor([3.0, 0.2, 1.0]).view(3, 1, 1)
    shift = torch.tensor([0.5, -1.0, 0.0]).view(3, 1, 1)
    a, b = swd(x, y), swd(x * scale + shift, y * scale + shift)
    assert b["per_level"] == pytest.approx(a["per_level"], rel=1e-4)


def test_every_patch_does_not_depend_on_the_order_of_the_patches():
    # a set is a set: the images of a pooled set in another order give the same distance
    x, y, z = _image(0), _image(2), _noisy(_image(0), 0.1)
    assert swd(x, [y, z])["mean"] == pytest.approx(swd(x, [z, y])["mean"], rel=1e-6)


# ----------------------------------------------------------------------------- 1-D W1, unequal sets

def test_sliced_wasserstein_unequal_sizes_known_values():
    # in 1-D every unit direction is ±1, so SWD is the empirical W1 distance:
    # Q_a = 0 on [0, ½), 1 on [½, 1); Q_b = 0, ½, 1 on thirds → |Q_a − Q_b| = ½ on [⅓, ⅔): 1/6
    a = torch.tensor([[0.0], [1.0]])
    b = torch.tensor([[0.0], [0.5], [1.0]])
    assert sliced_wasserstein(a, b, 8) == pytest.approx(1 / 6, rel=1e-6)
    assert sliced_wasserstein(b, a, 8) == pytest.approx(1 / 6, rel=1e-6)
    # a set against three copies of itself: the same quantile function
    g = torch.Generator().manual_seed(0)
    c = torch.randn(37, 1, generator=g)
    assert sliced_wasserstein(c, torch.cat([c, c, c]), 8) == 0.0
    # one point against three: W1 = the mean distance to the point
    one, three = torch.tensor([[0.0]]), torch.tensor([[0.0], [1.0], [2.0]])
    assert sliced_wasserstein(one, three, 8) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(DataError, match="one D"):
        sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 3))


def test_sliced_wasserstein_unequal_sizes_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(37, 1, generator=g, dtype=torch.float64)
    b = torch.rand(53, 1, generator=g, dtype=torch.float64) * 2
    ref = stats.wasserstein_distance(a[:, 0].numpy(), b[:, 0].numpy())
    assert sliced_wasserstein(a, b, 4) == pytest.approx(ref, rel=1e-9)


def test_quantile_pieces_cover_the_unit_interval():
    ia, ib, w = swd_module._quantile_pieces(4, 6)
    assert w.sum() == pytest.approx(1.0, abs=1e-15) and (w > 0).all()
    assert len(w) == 4 + 6 - 2      # breakpoints 0, ⅙, ¼, ⅓, ½, ⅔, ¾, ⅚ (0 and ½ shared)
    assert ia.tolist() == sorted(ia.tolist()) and ib.tolist() == sorted(ib.tolist())
    assert ia.max() == 3 and ib.max() == 5
    ia, ib, w = swd_module._quantile_pieces(5, 5)
    assert ia.tolist() == ib.tolist() == list(range(5)) and np.allclose(w, 0.2)


# ----------------------------------------------------------------------------- the table protocol

def test_swd_per_sample_is_the_mean_of_single_sample_swds():
    real = _image(0)
    fakes = [_noisy(real, 0.05, seed=1), real.flip(-1), _image(3), real.clone()]
    r = swd_per_sample(real, fakes)
    singles = [swd(real, f)["mean"] for f in fakes]
    assert r["per_sample"] == singles
    assert r["mean"] == pytest.approx(sum(singles) / 4, rel=1e-12)
    assert r["std"] == pytest.approx(np.std(singles, ddof=1), rel=1e-12)
    assert r["n_samples"] == 4 and r["per_sample"][3] == 0.0
    per_level = np.mean([swd(real, f)["per_level"] for f in fakes], axis=0)
    assert r["per_level"] == pytest.approx(per_level.tolist(), rel=1e-12)
    # a batch tensor and one image are accepted; one sample has std 0
    assert swd_per_sample(real, torch.stack(fakes))["per_sample"] == singles
    assert swd_per_sample(real, fakes[0])["std"] == 0.0
    with pytest.raises(DataError, match="one image"):
        swd_per_sample(torch.stack([real, real]), fakes)


def test_swd_per_sample_shares_directions_across_samples():
    real = _image(0)
    f = _noisy(real, 0.1)
    r = swd_per_sample(real, [f, f.clone()], generator=torch.Generator().manual_seed(5))
    assert r["per_sample"][0] == r["per_sample"][1]
    again = swd_per_sample(real, [f, f.clone()], generator=torch.Generator().manual_seed(5))
    other_seed = swd_per_sample(real, [f], generator=torch.Generator().manual_seed(6))
    assert again == r and other_seed["mean"] != r["mean"]
    # the random-patch mode goes through the same protocol
    legacy = swd_per_sample(real, [real, real], patches_per_image=64)
    assert legacy["patches_per_image"] == 64 and legacy["per_sample"][0] > 0


# ----------------------------------------------------------------------------- checks

def test_patches_per_image_is_checked():
    x = _image(0)
    for bad in ("some", 0, -3, True, 2.5):
        with pytest.raises(ConfigError, match="patches_per_image"):
            swd(x, x, patches_per_image=bad)
    with pytest.raises(ConfigError, match="n_projections"):
        swd(x, x, n_projections=0)


def test_every_patch_refuses_oversized_sets(monkeypatch):
    monkeypatch.setattr(swd_module, "MAX_ALL_PATCHES", 1000)
    x = _image(0)
    with pytest.raises(ConfigError, match="swd_per_sample"):
        swd(x, x)
    assert swd(x, x, patches_per_image=32)["mean"] > 0        # the random mode is not limited


def test_swd_cuts_its_descriptors_with_extract_patches(monkeypatch):
    # one patch extraction for SWD and patch nearest neighbours (issue 10 §1)
    calls = []
    real = swd_module.extract_patches

    def spy(*args, **kwargs):
        calls.append(kwargs.get("positions") is None)
        return real(*args, **kwargs)
    monkeypatch.setattr(swd_module, "extract_patches", spy)
    x = _image(0)
    swd(x, x)
    assert calls == [True] * 4                                 # 2 levels × 2 sets, every patch
    calls.clear()
    swd(x, x, patches_per_image=16)
    assert calls == [False] * 4                                # at random corners
    assert swd_module.extract_patches is not extract_patches   # the spy was in place
