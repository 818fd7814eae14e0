"""Style-swap fidelity (mil_core.metrics.fidelity): known values, true transform against itself
(small) and against no transform (large), recovery of known parameters, read-outs, bad input.

The thresholds below were set from 20 seed pairs on the same 256 digits (one torch thread):
true-vs-true maxima / no-transform minima were level_w1 6.9 / 46.8 levels, level_w1_uniform
4.2 / 49.5, rotation_w1 12.6 / 82°, ink_w1 0.014 / 0.058, thickness_w1 0.20 / 0.94 px.
"""
from __future__ import annotations

import pytest
import torch

from mil_core.data.mnist_like import load_digits
from mil_core.data.nuisance import (Background, DilateErode, Rotation, dilate, get_transform,
                                    to_float)
from mil_core.errors import ConfigError, DataError
from mil_core.metrics.fidelity import (angle_targets, background_histogram, background_levels,
                                       background_mask, circular_wasserstein_1d, class_readout,
                                       estimated_rotation, fidelity, linear_readout,
                                       rotation_grid, stroke_stats, wasserstein_1d,
                                       wasserstein_to_uniform_levels)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """256 real sklearn digits (every 7th), float (256, 1, 28, 28), background exactly 0."""
    return to_float(load_digits().images[::7][:256])


# -----------------------------------------------------------------------------
# Wasserstein-1 on the line and on the circle

def test_wasserstein_1d_known_values():
    u = torch.tensor([0.0, 1.0, 5.0])
    assert wasserstein_1d(u, u) == 0.0
    assert wasserstein_1d(u, u + 2.5) == pytest.approx(2.5, abs=1e-12)
    assert wasserstein_1d(torch.tensor([3.0]), torch.tensor([-1.0])) == pytest.approx(4.0)
    # Unequal sizes: δ_0 against {0, 2} is half the mass moved by 2.
    assert wasserstein_1d(torch.tensor([0.0]), torch.tensor([0.0, 2.0])) == pytest.approx(1.0)
    # Weights: all of v's mass at 10 against u's at 0.
    assert wasserstein_1d(torch.tensor([0.0]), torch.tensor([0.0, 10.0]),
                          v_weights=torch.tensor([0.0, 1.0])) == pytest.approx(10.0)


def test_wasserstein_1d_equals_sorted_matching():
    gen = _gen(0)
    for _ in range(5):
        u, v = torch.randn(50, generator=gen), 3 * torch.rand(50, generator=gen)
        brute = float((u.double().sort().values - v.double().sort().values).abs().mean())
        assert wasserstein_1d(u, v) == pytest.approx(brute, rel=1e-9, abs=1e-12)


def test_wasserstein_to_uniform_levels_point_mass_is_half_the_range():
    assert wasserstein_to_uniform_levels(torch.zeros(10), 99) == pytest.approx(49.5)
    assert wasserstein_to_uniform_levels(torch.arange(100.0), 99) == pytest.approx(0.0, abs=1e-12)


def test_circular_wasserstein_takes_the_short_way_round():
    a, b = torch.tensor([-170.0]), torch.tensor([170.0])
    assert wasserstein_1d(a, b) == pytest.approx(340.0)
    assert circular_wasserstein_1d(a, b) == pytest.approx(20.0)
    # Angles outside [-180, 180) are wrapped: 190° is -170°.
    assert circular_wasserstein_1d(torch.tensor([190.0]), a) == pytest.approx(0.0, abs=1e-9)


def test_circular_wasserstein_equals_best_cyclic_matching_and_is_shift_invariant():
    gen = _gen(1)
    for _ in range(6):
        u = torch.rand(7, generator=gen, dtype=torch.float64) * 360 - 180
        v = torch.rand(7, generator=gen, dtype=torch.float64) * 360 - 180
        us, vs = u.sort().values, v.sort().values
        arc = lambda d: torch.minimum(torch.remainder(d, 360), 360 - torch.remainder(d, 360))
        brute = min(float(arc(us - vs.roll(k)).mean()) for k in range(7))
        value = circular_wasserstein_1d(u, v)
        assert value == pytest.approx(brute, rel=1e-9, abs=1e-9)
        assert circular_wasserstein_1d(u + 123.0, v + 123.0) == pytest.approx(value, abs=1e-9)
        assert value <= wasserstein_1d(u, v) + 1e-12


# -----------------------------------------------------------------------------
# BG

def test_background_levels_recover_known_backgrounds_exactly():
    # Synthetic: a random object (values in (0, 1], some below the background) on a third of
    # the frame, background exactly 0, then BG with known values.
    gen = _gen(2)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:20, 6:20] = torch.rand(64, 1, 16, 14, generator=gen).clamp_min(1 / 255)
    v = torch.randint(0, 100, (64,), generator=gen)
    y = Background().apply(x, {"value": v})
    for mask in (None, background_mask(y), background_mask(x)):
        levels = background_levels(y, mask)
        assert levels.dtype == torch.float64 and levels.shape == (64,)
        assert torch.equal(levels.round().long(), v)
        assert float((levels - v).abs().max()) < 1e-3


def test_background_levels_on_real_digits(digits):
    v = torch.arange(256) % 100
    y = Background().apply(digits, {"value": v})
    assert torch.equal(background_levels(y, background_mask(digits)).round().long(), v)
    assert torch.equal(background_levels(digits), torch.zeros(256, dtype=torch.float64))


def test_background_histogram_counts_and_expected():
    levels = torch.tensor([0.0, 0.2, 1.0, 99.0, 120.0, -3.0])
    h = background_histogram(levels, max_value=99)
    assert h.counts.shape == (100,) and h.edges.shape == (101,)
    assert h.counts[0] == 2 and h.counts[1] == 1 and h.counts[99] == 1
    assert (h.below, h.above) == (1, 1)
    assert int(h.counts.sum()) + h.below + h.above == levels.numel()
    assert float(h.expected.sum()) == pytest.approx(levels.numel())
    coarse = background_histogram(torch.arange(100.0), max_value=99, n_bins=10)
    assert coarse.counts.tolist() == [10] * 10
    assert torch.allclose(coarse.expected, torch.full((10,), 10.0, dtype=torch.float64))


def test_bg_fidelity_true_vs_true_small_and_vs_none_large(digits):
    tfm = get_transform("bg")
    reference, translated = tfm(digits, _gen(10)), tfm(digits, _gen(11))
    f = fidelity("bg", digits, translated, reference)
    assert f["level_w1"] < 10 and f["level_w1_uniform"] < 6
    assert f["level_w1_uniform_reference"] < 6
    assert f["level_w1_none"] > 40
    assert f["level_w1_uniform_none"] == pytest.approx(49.5)   # all levels 0: exactly 99/2
    # "_none" is the distance of originals passed as translations.
    same = fidelity("bg", digits, digits, reference)
    assert same["level_w1"] == pytest.approx(f["level_w1_none"])
    assert same["level_w1"] > 5 * f["level_w1"]


# -----------------------------------------------------------------------------
# ROT

def test_rotation_grid():
    g = rotation_grid()
    assert g.numel() == 72 and float(g[0]) == -180.0 and float(g[-1]) == 175.0
    assert rotation_grid(5.0, 45.0).tolist() == [-45.0 + 5 * i for i in range(19)]


def test_estimated_rotation_recovers_known_angles_within_one_step(digits):
    angle = Rotation().sample_params(256, _gen(5))["angle"]
    y = Rotation().apply(digits, {"angle": angle})
    est = estimated_rotation(digits, y)
    err = torch.remainder(est - angle + 180, 360) - 180
    assert float(err.abs().max()) <= 5.0                     # one grid step
    # The sign convention: +30° is found as +30°, not −30°.
    y30 = Rotation().apply(digits[:8], {"angle": torch.full((8,), 30.0, dtype=torch.float64)})
    assert torch.equal(estimated_rotation(digits[:8], y30), torch.full((8,), 30.0,
                                                                      dtype=torch.float64))


def test_rot_fidelity_true_vs_true_small_and_vs_none_large(digits):
    tfm = get_transform("rot")
    reference, translated = tfm(digits, _gen(20)), tfm(digits, _gen(21))
    f = fidelity("rot", digits, translated, reference)
    assert f["rotation_w1"] < 20
    assert f["rotation_w1_none"] > 60
    assert f["rotation_w1_none"] > 4 * f["rotation_w1"]


# -----------------------------------------------------------------------------
# DIL

def test_stroke_stats_of_a_rectangle():
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 10:13, 8:18] = 1.0                              # 3 × 10
    x[1, 0, 0:4, 0:28] = 0.8                                # 4 × 28 on the frame's top edge
    s = stroke_stats(x)
    assert s.shape == (2, 2) and s.dtype == torch.float64
    assert s[0].tolist() == pytest.approx([30 / 784, 2 * 30 / 26])
    assert s[1].tolist() == pytest.approx([112 / 784, 2 * 112 / 64])
    # A 3×3 dilation makes the 3×10 bar 5×12.
    assert stroke_stats(dilate(x[:1], 3))[0].tolist() == pytest.approx([60 / 784, 2 * 60 / 34])
    assert stroke_stats(torch.zeros(1, 1, 8, 8)).tolist() == [[0.0, 0.0]]


def test_stroke_stats_ignore_background_intensity(digits):
    v = torch.full((256,), 99)
    assert torch.equal(stroke_stats(Background().apply(digits, {"value": v})),
                       stroke_stats(digits))


def test_dil_fidelity_true_vs_true_small_and_vs_none_large(digits):
    tfm = get_transform("dil")
    reference, translated = tfm(digits, _gen(30)), tfm(digits, _gen(31))
    f = fidelity("dil", digits, translated, reference)
    assert f["ink_w1"] < 0.025 and f["thickness_w1"] < 0.35 and f["thickness_change_w1"] < 0.35
    assert f["ink_w1_none"] > 0.045 and f["thickness_w1_none"] > 0.8
    assert f["thickness_change_w1_none"] > 0.8
    # Always dilating by 4 is not the true law either.
    always4 = DilateErode(p_dilate=1.0, dilate_sizes=(4,))(digits, _gen(32))
    assert fidelity("dil", digits, always4, reference)["thickness_w1"] > 0.8


def test_change_distances_catch_a_copy_of_transformed_inputs(digits):
    # Originals that are themselves transformed: copying them keeps the marginal law, so only
    # the *_change_w1 distances (and ROT's, paired by construction) can tell.
    for name, key in (("bg", "level_change_w1"), ("dil", "thickness_change_w1")):
        tfm = get_transform(name)
        originals, reference = tfm(digits, _gen(40)), tfm(digits, _gen(41))
        fresh = fidelity(name, originals, tfm(digits, _gen(42)), reference)
        assert fresh[f"{key}_none"] > 5 * fresh[key], (name, fresh)


# -----------------------------------------------------------------------------
# read-outs

def test_linear_readout_linear_target_and_noise():
    gen = _gen(50)
    X = torch.randn(400, 8, generator=gen)
    y = X @ torch.randn(8, generator=gen) + 0.01 * torch.randn(400, generator=gen)
    assert linear_readout(X, y) > 0.99
    angle = torch.rand(400, generator=gen, dtype=torch.float64) * 360 - 180
    codes = angle_targets(angle) @ torch.randn(2, 8, generator=gen, dtype=torch.float64)
    codes = (codes + 0.01 * torch.randn(400, 8, generator=gen, dtype=torch.float64)).float()
    assert linear_readout(codes, angle_targets(angle)) > 0.99
    noise = torch.randn(400, 2, generator=gen)
    for seed in range(3):
        r2 = linear_readout(X, noise, seed=seed)
        assert -0.25 < r2 <= 0.1


def test_class_readout_separable_and_noise():
    gen = _gen(60)
    labels = torch.arange(400) % 4
    centres = 10.0 * torch.eye(8)[:4]
    X = centres[labels] + torch.randn(400, 8, generator=gen)
    for method in ("ncm", "softmax"):
        r = class_readout(X, labels, method=method)
        assert r.accuracy == 1.0 and r.n_classes == 4 and r.n_train + r.n_test == 400
        assert r.chance == pytest.approx(0.25)
        noise = class_readout(torch.randn(400, 8, generator=gen), labels, method=method)
        assert abs(noise.accuracy - noise.chance) < 0.1
    # Chance is the majority answer, not 1/K: 300 rows of class 5 against 100 of class 2.
    skewed = torch.where(torch.arange(400) % 4 == 0, 2, 5)
    r = class_readout(torch.randn(400, 8, generator=gen), skewed)
    assert r.chance == pytest.approx(0.75) and r.n_classes == 2


# -----------------------------------------------------------------------------
# bad input

def test_fidelity_refuses_bad_transforms_and_images(digits):
    x = digits[:4]
    with pytest.raises(ConfigError, match="Unknown nuisance transform 'blur'"):
        fidelity("blur", x, x, x)
    with pytest.raises(ConfigError, match="identity has no nuisance"):
        fidelity("identity", x, x, x)
    with pytest.raises(DataError, match="paired images of one shape"):
        fidelity("bg", x, x[:3], x)
    with pytest.raises(DataError, match=r"map it with \(y \+ 1\) / 2"):
        fidelity("rot", x, x * 2 - 1, x)
    with pytest.raises(DataError, match="to_float"):
        fidelity("dil", (x * 255).to(torch.uint8), x, x)
    with pytest.raises(DataError, match="contains NaN"):
        fidelity("dil", x, x.clone().fill_(float("nan")), x)
    with pytest.raises(DataError, match="at least 2 images"):
        fidelity("bg", x[:1], x[:1], x[:1])
    with pytest.raises(DataError, match="selects no pixel"):
        background_levels(x, torch.zeros_like(x, dtype=torch.bool))
    with pytest.raises(DataError, match="bool tensor of the images' shape"):
        background_levels(x, torch.ones(4, 1, 28, 27, dtype=torch.bool))


def test_readouts_and_distances_refuse_bad_arguments():
    X, y = torch.randn(20, 3), torch.randn(20)
    with pytest.raises(ConfigError, match=r"train_fraction must be in \(0, 1\)"):
        linear_readout(X, y, train_fraction=1.0)
    with pytest.raises(DataError, match="N = 20"):
        linear_readout(X, y[:10])
    with pytest.raises(DataError, match="targets are constant"):
        linear_readout(X, torch.ones(20))
    with pytest.raises(DataError, match="flatten style codes"):
        linear_readout(X[:, :, None, None], y)
    labels = torch.arange(20) % 2
    with pytest.raises(DataError, match="at least 2 distinct labels"):
        class_readout(X, torch.zeros(20, dtype=torch.int64))
    with pytest.raises(DataError, match="label 2 has 1"):
        class_readout(X, torch.cat([labels[:19], torch.tensor([2])]))
    with pytest.raises(DataError, match="integer tensor"):
        class_readout(X, labels.float())
    with pytest.raises(ConfigError, match="method must be 'ncm'"):
        class_readout(X, labels, method="knn")
    with pytest.raises(ConfigError, match="period must be a positive number"):
        circular_wasserstein_1d(y, y, period=0)
    with pytest.raises(DataError, match="u is empty"):
        wasserstein_1d(torch.tensor([]), y)
    with pytest.raises(ConfigError, match="step must be a positive number"):
        rotation_grid(0.0)
