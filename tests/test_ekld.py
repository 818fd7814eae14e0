"""eKLD (GIT, REFERENCE §6): exact zeros, closed form, same-image pairing, counts, bootstrap CIs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mil_core.data.mnist_like import ImageSet
from mil_core.data.nuisance import NuisanceTransform
from mil_core.errors import ConfigError, DataError
from mil_core.metrics import EKLDResult, bootstrap_ci, ekld, kl_from_logits
from mil_core.metrics.ekld import CONFIDENCE_COLUMNS, predictive_entropy


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob_set(per_class: tuple[int, ...] = (12, 12, 12), seed: int = 0) -> ImageSet:
    """Black 28×28 images with one white 5×5 square in the top-left quadrant (asymmetric)."""
    g = _gen(seed)
    n = sum(per_class)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    pos = torch.randint(1, 9, (n, 2), generator=g)
    for i, (r, c) in enumerate(pos.tolist()):
        images[i, r:r + 5, c:c + 5] = 255
    labels = torch.cat([torch.full((k,), c, dtype=torch.int64) for c, k in enumerate(per_class)])
    return ImageSet(images, labels, [f"c{c}" for c in range(len(per_class))], "blobs")


class Constant(nn.Module):
    """Ignores its input: the same logits for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.3, -1.0, 2.0]).expand(x.shape[0], 3)


class MeanReader(nn.Module):
    """Two classes from the mean pixel value (background intensity, amount of ink)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))                                           # (B,)
        return torch.stack([40.0 * (m - 0.1), torch.zeros_like(m)], dim=1)


class TopBottomReader(nn.Module):
    """Two classes from ink in the top half minus ink in the bottom half (rotation-sensitive)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2] // 2
        d = x[:, :, :h].mean(dim=(1, 2, 3)) - x[:, :, h:].mean(dim=(1, 2, 3))
        return torch.stack([50.0 * d, torch.zeros_like(d)], dim=1)


def small_cnn(seed: int = 0) -> nn.Module:
    """A random CNN without global pooling, so that its predictions move with the nuisances."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 14 * 14, 5))
    with torch.no_grad():
        net[-1].weight.mul_(30.0)   # logits of order 1..10 for the blob images
    return net


class SetCorner(NuisanceTransform):
    """Deterministic test transform: sets pixel (0, 0) of every image to ``b``."""
    name = "set-corner"

    def __init__(self, b: float) -> None:
        self.b = b

    def sample_params(self, n, generator=None):
        return {"value": torch.full((n,), self.b, dtype=torch.float64)}

    def apply(self, x, params):
        out = x.clone()
        out[:, 0, 0, 0] = params["value"].to(x)
        return out


def corner_model(x: torch.Tensor) -> torch.Tensor:
    """p(·|x) = (a, 1 − a) with a the corner pixel, exactly (float64 log-probabilities)."""
    a = x[:, 0, 0, 0].double()
    return torch.stack([a.log(), (1 - a).log()], dim=1)


def bernoulli_kl(a: np.ndarray, b: float) -> np.ndarray:
    """KL((a, 1 − a) ‖ (b, 1 − b)) in float64, with a and b rounded to float32 as the images are."""
    a, b = a.astype(np.float32).astype(np.float64), float(np.float32(b))
    return a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))


def corner_set(per_class: tuple[int, ...], seed: int = 0) -> ImageSet:
    """Images whose corner pixel is a random value in 20..235 (everything else 0)."""
    n = sum(per_class)
    images = torch.zeros(n, 8, 8, dtype=torch.uint8)
    images[:, 0, 0] = torch.randint(20, 236, (n,), generator=_gen(seed)).to(torch.uint8)
    labels = torch.cat([torch.full((k,), c, dtype=torch.int64) for c, k in enumerate(per_class)])
    return ImageSet(images, labels, [str(c) for c in range(len(per_class))], "corner")


# -----------------------------------------------------------------------------
# exact zeros and positivity

@pytest.mark.parametrize("name", ["rot", "bg", "dil"])
def test_constant_classifier_has_zero_ekld_and_full_consistency(name):
    res = ekld(Constant(), blob_set(), name, images_per_class=5, n_transforms=6)
    assert np.all(np.abs(res.ekld) <= 1e-7)
    assert np.all(res.consistency == 1.0)


def test_identity_transform_zero_for_any_classifier():
    res = ekld(small_cnn(), blob_set(), "identity", images_per_class=6, n_transforms=5,
               batch_size=13)
    assert np.all(np.abs(res.ekld) <= 1e-7)
    assert np.all(res.consistency == 1.0)


@pytest.mark.parametrize("name, model", [("bg", MeanReader()), ("rot", TopBottomReader()),
                                         ("dil", MeanReader())])
def test_feature_reading_classifier_has_positive_ekld(name, model):
    res = ekld(model, blob_set(), name, images_per_class=8, n_transforms=20)
    assert np.all(res.ekld > 1e-2), res.ekld
    if name in ("bg", "rot"):   # these flip the decision for a good share of the copies
        assert np.all(res.consistency < 0.95), res.consistency
        assert np.all(res.consistency > 0.0)


# -----------------------------------------------------------------------------
# closed form, same-image pairing, per-class averaging

def test_closed_form_two_class_kl():
    ds = corner_set((7, 9))
    b = 0.3
    res = ekld(corner_model, ds, SetCorner(b), images_per_class=100, n_transforms=3)
    a_all = ds.images[:, 0, 0].double().numpy() / 255.0
    for c in range(2):
        expected = bernoulli_kl(a_all[res.image_index[c]], b)             # per image, analytic
        np.testing.assert_allclose(res.per_image[c], expected, rtol=1e-9, atol=1e-12)
        assert res.ekld[c] == pytest.approx(expected.mean(), rel=1e-9)
    # consistency: the argmax stays iff a < 0.5 (b = 0.3 votes for class 1)
    for c in range(2):
        a = a_all[res.image_index[c]]
        assert res.consistency[c] == pytest.approx(np.mean(a < 0.5))


def test_pairs_use_the_same_image():
    """Images differ strongly (all black vs all white) but the transform leaves them unchanged:
    correct pairing gives 0; pairing an image with another one (the reference bug) would not."""
    n = 40
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    images[torch.randperm(n, generator=_gen(3))[: n // 2]] = 255        # half white, shuffled
    labels = torch.arange(n) % 2
    model = lambda x: torch.stack([30 * (x.mean(dim=(1, 2, 3)) - 0.5),  # noqa: E731
                                   torch.zeros(x.shape[0])], dim=1)
    # dilation / erosion of a constant image is the image itself (the border adds no ink)
    res = ekld(model, (images, labels), "dil", images_per_class=20, n_transforms=7, batch_size=9)
    assert np.all(np.abs(res.ekld) <= 1e-7)
    assert np.all(res.consistency == 1.0)
    # the test has power: the same images paired with their neighbour differ a lot
    x = images[np.concatenate(res.image_index)].float().div(255).unsqueeze(1)
    logits = model(x)
    shifted = kl_from_logits(logits, logits.roll(1, dims=0))
    assert shifted.mean() > 1.0


def test_counts_capped_by_class_size_and_per_class_means():
    ds = corner_set((3, 10, 50))
    ds = ImageSet(ds.images, ds.labels, ["a", "b", "c", "empty"], "corner")   # class 3: none
    res = ekld(corner_model, ds, SetCorner(0.6), images_per_class=5, n_transforms=4,
               class_sizes=[100, 50, 7, 1])
    np.testing.assert_array_equal(res.n_images, [3, 5, 5, 0])
    np.testing.assert_array_equal(res.n_pairs, [12, 20, 20, 0])
    assert [len(v) for v in res.per_image] == [3, 5, 5, 0]
    for c in range(3):
        idx = res.image_index[c]
        assert len(set(idx.tolist())) == len(idx)                              # no repeats
        assert torch.all(ds.labels[idx] == c)
        a = ds.images[idx, 0, 0].double().numpy() / 255.0
        assert res.ekld[c] == pytest.approx(bernoulli_kl(a, 0.6).mean(), rel=1e-9)
    assert math.isnan(res.ekld[3]) and math.isnan(res.consistency[3])
    assert res.mean_ekld() == pytest.approx(np.mean(res.ekld[:3]))

    frame = res.to_frame(n_boot=200)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    for col in ("class", "class_size", "ekld", "consistency", "ci_low", "ci_high"):
        assert col in frame.columns
    assert frame["class"].tolist() == ["a", "b", "c", "empty"]
    assert frame["class_size"].tolist() == [100, 50, 7, 1]
    ok = frame.iloc[:3]
    assert (ok.ci_low <= ok.ekld + 1e-12).all() and (ok.ekld <= ok.ci_high + 1e-12).all()
    assert frame.iloc[3][["ekld", "ci_low", "ci_high"]].isna().all()


@pytest.mark.parametrize("name", ["rot", "dil"])
def test_seeded_and_batch_size_invariant(name):
    ds, model = blob_set((30, 30)), small_cnn(1)
    kw = dict(images_per_class=6, n_transforms=10)
    a = ekld(model, ds, name, batch_size=7, generator=_gen(5), **kw)
    b = ekld(model, ds, name, batch_size=2048, generator=_gen(5), **kw)
    c = ekld(model, ds, name, batch_size=2048, generator=_gen(6), **kw)
    assert np.all(a.ekld > 1e-2), a.ekld
    np.testing.assert_allclose(a.ekld, b.ekld, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.consistency, b.consistency)
    for c_ in range(2):
        np.testing.assert_array_equal(a.image_index[c_], b.image_index[c_])
    assert not np.allclose(a.ekld, c.ekld)                  # another seed, other draws
    d = ekld(model, ds, name, batch_size=7, **kw)            # default generator = seed 0
    e = ekld(model, ds, name, batch_size=100, generator=_gen(0), **kw)
    np.testing.assert_allclose(d.ekld, e.ekld, rtol=0, atol=1e-6)


def test_module_runs_in_eval_mode_and_mode_is_restored():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(28 * 28, 3))
    model.train()
    model[2].eval()   # a frozen part must stay frozen
    res = ekld(model, blob_set(), "identity", images_per_class=4, n_transforms=3)
    assert np.all(np.abs(res.ekld) <= 1e-7)                  # dropout off: deterministic
    assert model.training and model[1].training and not model[2].training
    assert all(p.grad is None for p in model.parameters())


def test_kl_from_logits_matches_torch_and_handles_zero_probabilities():
    g = _gen(2)
    lp, lq = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    ref = F.kl_div(lq.log_softmax(1), lp.log_softmax(1), log_target=True,
                   reduction="none").sum(1)
    torch.testing.assert_close(kl_from_logits(lp, lq), ref.double(), rtol=1e-5, atol=1e-6)
    p = torch.tensor([[0.0, float("-inf")]])    # p = (1, 0): the zero term counts as 0
    q = torch.tensor([[0.0, 0.0]])               # q = (1/2, 1/2)
    assert kl_from_logits(p, q).item() == pytest.approx(math.log(2))


# -----------------------------------------------------------------------------
# bootstrap

def test_bootstrap_ci_contains_mean_shrinks_and_is_seeded():
    g = _gen(0)
    small = torch.rand(10, generator=g).numpy()
    large = torch.rand(1000, generator=g).numpy()
    lo_s, hi_s = bootstrap_ci(small, generator=_gen(1))
    lo_l, hi_l = bootstrap_ci(large, generator=_gen(1))
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)
    assert bootstrap_ci(small, generator=_gen(7)) == bootstrap_ci(small, generator=_gen(7))
    assert bootstrap_ci(small) == bootstrap_ci(small)                        # default seed 0
    assert bootstrap_ci(small, generator=_gen(7)) != bootstrap_ci(small, generator=_gen(8))
    narrow = bootstrap_ci(small, level=0.5, generator=_gen(1))
    assert lo_s <= narrow[0] <= narrow[1] <= hi_s
    assert bootstrap_ci([0.25]) == (0.25, 0.25)


def test_result_cis_resample_images_and_are_deterministic():
    res = ekld(MeanReader(), blob_set((40, 40)), "bg", images_per_class=40, n_transforms=5)
    assert isinstance(res, EKLDResult)
    lo1, hi1 = res.confidence_intervals(n_boot=300)
    lo2, hi2 = res.confidence_intervals(n_boot=300)
    np.testing.assert_array_equal(lo1, lo2)
    np.testing.assert_array_equal(hi1, hi2)
    for c in range(2):   # same numbers as bootstrapping the per-image values directly
        assert (lo1[c], hi1[c]) == bootstrap_ci(res.per_image[c], n_boot=300, generator=_gen(c))


# -----------------------------------------------------------------------------
# bad input

def test_bad_inputs_raise_clear_errors():
    ds = blob_set()
    with pytest.raises(ConfigError, match="nuisance transform"):
        ekld(Constant(), ds, "shear")
    with pytest.raises(ConfigError, match="images_per_class"):
        ekld(Constant(), ds, "rot", images_per_class=0)
    with pytest.raises(ConfigError, match="n_transforms"):
        ekld(Constant(), ds, "rot", n_transforms=0)
    with pytest.raises(ConfigError, match="batch_size"):
        ekld(Constant(), ds, "rot", batch_size=0)
    with pytest.raises(DataError, match="labels"):
        ekld(Constant(), (ds.images, ds.labels[:-1]), "rot")
    with pytest.raises(DataError, match="uint8"):
        ekld(Constant(), (ds.images.float(), ds.labels), "rot")
    with pytest.raises(ConfigError, match="class_sizes"):
        ekld(Constant(), ds, "rot", class_sizes=[1, 2])
    with pytest.raises(DataError, match="logits"):
        ekld(lambda x: x.mean(dim=(1, 2, 3)), ds, "rot", images_per_class=2, n_transforms=2)
    with pytest.raises(DataError, match="values"):
        bootstrap_ci([])
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


# -----------------------------------------------------------------------------
# what the scores are: logits, log-probabilities or probabilities

_PROBS_AS_LOGITS = (
    "look like probabilities (every row is non-negative and sums to 1 within 0.0001), but {w} "
    "expects logits (unnormalised scores) unless told otherwise; a softmax over probabilities "
    "gives a silently wrong KL. Pass inputs=\"probs\" for probabilities (or "
    "inputs=\"log_probs\" for log-probabilities); if these really are logits, add a constant to "
    "them (the softmax is unchanged).")


def test_kl_closed_form_for_logits_log_probs_and_probs():
    lp = torch.tensor([[2.0, 0.0], [0.5, 0.5]], dtype=torch.float64)     # unnormalised
    lq = torch.tensor([[0.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    # by hand: p = (σ(2), 1 − σ(2)) against q = (1/2, 1/2); p = (1/2, 1/2) against (σ(2), …)
    s = 1.0 / (1.0 + math.exp(-2.0))
    kl0 = s * math.log(2 * s) + (1 - s) * math.log(2 * (1 - s))
    kl1 = 0.5 * math.log(0.5 / s) + 0.5 * math.log(0.5 / (1 - s))
    expected = torch.tensor([kl0, kl1], dtype=torch.float64)
    assert kl0 == pytest.approx(0.3278, abs=1e-4) and kl1 == pytest.approx(0.4338, abs=1e-4)
    torch.testing.assert_close(kl_from_logits(lp, lq), expected, rtol=0, atol=1e-12)
    p, q = lp.softmax(1), lq.softmax(1)
    with pytest.raises(DataError) as info:                   # probabilities passed as logits
        kl_from_logits(p, q)
    assert str(info.value) == "kl_from_logits: logits_p " + _PROBS_AS_LOGITS.format(
        w="kl_from_logits")
    wrong = kl_from_logits(p + 1.0, q + 1.0)                 # what the softmax of p would give
    assert float(wrong[0]) == pytest.approx(0.0676, abs=1e-4)    # ... about 5× too small
    torch.testing.assert_close(kl_from_logits(p, q, inputs="probs"), expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(kl_from_logits(p.log(), q.log(), inputs="log_probs"), expected,
                               rtol=0, atol=1e-9)
    torch.testing.assert_close(kl_from_logits(p.log(), q.log()), expected, rtol=0, atol=1e-9)


def test_probabilities_with_zeros_and_kinds_that_do_not_match():
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    half = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    assert kl_from_logits(p, half, inputs="probs").item() == pytest.approx(math.log(2))
    assert kl_from_logits(half, p, inputs="probs").item() == math.inf   # q = 0 < p: infinite
    with pytest.raises(DataError, match=r"inputs=\"probs\" but logits_q are not probabilities"):
        kl_from_logits(half, torch.tensor([[2.0, 0.0]]), inputs="probs")
    with pytest.raises(DataError, match=r"inputs=\"log_probs\" but logits_p are not log-prob"):
        kl_from_logits(half, half.log(), inputs="log_probs")           # probabilities
    with pytest.raises(DataError, match="logits_q look like probabilities"):
        kl_from_logits(torch.tensor([[2.0, 0.0]]), half)
    with pytest.raises(ConfigError, match="inputs must be one of 'logits', 'log_probs', 'probs'"):
        kl_from_logits(half, half, inputs="softmax")
    with pytest.raises(DataError, match="same shape"):
        kl_from_logits(half, torch.zeros(1, 3))
    one_class = torch.ones(4, 1)                              # K = 1: always p = 1, KL = 0
    assert torch.equal(kl_from_logits(one_class, one_class), torch.zeros(4, dtype=torch.float64))


def test_ekld_of_a_model_returning_probabilities():
    ds = corner_set((6, 5))
    kw = dict(images_per_class=100, n_transforms=3)
    ref = ekld(corner_model, ds, SetCorner(0.3), **kw)      # log-probabilities, the default
    a_all = ds.images[:, 0, 0].double().numpy() / 255.0
    for c in range(2):
        np.testing.assert_allclose(ref.per_image[c], bernoulli_kl(a_all[ref.image_index[c]], 0.3),
                                   rtol=1e-9, atol=1e-12)
    probs_model = lambda x: corner_model(x).exp()            # noqa: E731  rows (a, 1 − a)
    with pytest.raises(DataError) as info:
        ekld(probs_model, ds, SetCorner(0.3), **kw)
    assert str(info.value) == "ekld: the outputs of model_or_fn " + _PROBS_AS_LOGITS.format(
        w="ekld")
    for model, kind in ((probs_model, "probs"), (corner_model, "log_probs")):
        res = ekld(model, ds, SetCorner(0.3), inputs=kind, **kw)
        for c in range(2):
            np.testing.assert_allclose(res.per_image[c], ref.per_image[c], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(res.consistency, ref.consistency)
    with pytest.raises(DataError, match="inputs=\"log_probs\" but the outputs of model_or_fn"):
        ekld(probs_model, ds, SetCorner(0.3), inputs="log_probs", **kw)
    with pytest.raises(ConfigError, match="inputs must be one of"):
        ekld(corner_model, ds, SetCorner(0.3), inputs="scores", **kw)


# -----------------------------------------------------------------------------
# confidence beside invariance: entropy, max probability, accuracy per class

def binary_entropy(a: np.ndarray) -> np.ndarray:
    return -(a * np.log(a) + (1 - a) * np.log(1 - a))


def test_predictive_entropy_closed_forms():
    for k in (2, 3, 10):
        uniform = torch.zeros(4, k)                                   # logits of the uniform p
        torch.testing.assert_close(predictive_entropy(uniform),
                                   torch.full((4,), math.log(k), dtype=torch.float64))
    one_hot = torch.eye(3)                                            # p = e_k exactly
    assert torch.equal(predictive_entropy(one_hot, inputs="probs"),
                       torch.zeros(3, dtype=torch.float64))
    sharp = torch.tensor([[1000.0, 0.0, 0.0], [0.0, -1000.0, 1000.0]])   # e^-1000 = 0 in float64
    assert torch.equal(predictive_entropy(sharp), torch.zeros(2, dtype=torch.float64))
    p = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    expected = torch.tensor([-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))],
                            dtype=torch.float64)
    torch.testing.assert_close(predictive_entropy(p, inputs="probs"), expected)
    torch.testing.assert_close(predictive_entropy(p.log(), inputs="log_probs"), expected)
    torch.testing.assert_close(predictive_entropy(p.log() + 3.0), expected)   # logits: shift-free
    with pytest.raises(DataError, match="look like probabilities"):
        predictive_entropy(p.float())
    with pytest.raises(DataError, match="float"):
        predictive_entropy(torch.zeros(3))
    with pytest.raises(ConfigError, match="inputs must be one of"):
        predictive_entropy(p, inputs="softmax")


class Uniform(nn.Module):
    """The same uniform prediction over K classes for every image."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.k)


class Oracle(nn.Module):
    """A one-hot prediction of the true label, whatever the transform does (label from a table
    of the images' first pixels, which this test's images make unique)."""

    def __init__(self, ds: ImageSet) -> None:
        super().__init__()
        self.table = {int(v): int(c) for v, c in zip(ds.images[:, 0, 0], ds.labels)}
        self.k = ds.n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.table[round(float(v) * 255.0)] for v in x[:, 0, 0, 0]]
        return 1000.0 * F.one_hot(torch.tensor(y), self.k).to(x)


def test_confidence_of_uniform_and_one_hot_classifiers():
    ds = corner_set((5, 4, 6))
    res = ekld(Uniform(3), ds, "identity", images_per_class=10, n_transforms=3)
    for name in ("entropy_clean", "entropy_transformed"):
        np.testing.assert_allclose(getattr(res, name), np.full(3, math.log(3)), rtol=1e-12)
    for name in ("max_prob_clean", "max_prob_transformed"):
        np.testing.assert_allclose(getattr(res, name), np.full(3, 1 / 3), rtol=1e-12)
    # argmax of a tie is class 0: right on class 0 only
    np.testing.assert_array_equal(res.acc_clean, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(res.acc_transformed, [1.0, 0.0, 0.0])
    # unique corner values (so the oracle can look the label up); the identity keeps them
    images = torch.zeros(15, 8, 8, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(20, 20 + 15 * 10, 10, dtype=torch.uint8)
    labels = torch.tensor([0] * 5 + [1] * 4 + [2] * 6)
    uniq = ImageSet(images, labels, ["0", "1", "2"], "unique-corner")
    res = ekld(Oracle(uniq), uniq, "identity", images_per_class=10, n_transforms=3)
    for name in ("entropy_clean", "entropy_transformed"):
        np.testing.assert_array_equal(getattr(res, name), np.zeros(3))
    for name in ("max_prob_clean", "max_prob_transformed", "acc_clean", "acc_transformed"):
        np.testing.assert_array_equal(getattr(res, name), np.ones(3))
    np.testing.assert_array_equal(res.ekld, np.zeros(3))


def test_confidence_closed_form_and_frame_columns():
    """Corner model: p(·|x) = (a, 1 − a), p(·|x') = (0.3, 0.7) for every copy."""
    ds = corner_set((6, 5))
    res = ekld(corner_model, ds, SetCorner(0.3), images_per_class=100, n_transforms=4)
    a_all = ds.images[:, 0, 0].double().numpy() / 255.0
    b = float(np.float32(0.3))
    for c in range(2):
        a = a_all[res.image_index[c]].astype(np.float32).astype(np.float64)
        assert res.entropy_clean[c] == pytest.approx(binary_entropy(a).mean(), rel=1e-9)
        assert res.max_prob_clean[c] == pytest.approx(np.maximum(a, 1 - a).mean(), rel=1e-9)
        assert res.acc_clean[c] == pytest.approx(((a > 0.5) if c == 0 else (a < 0.5)).mean())
        assert res.entropy_transformed[c] == pytest.approx(binary_entropy(np.array(b)), rel=1e-9)
        assert res.max_prob_transformed[c] == pytest.approx(1 - b, rel=1e-9)
    np.testing.assert_array_equal(res.acc_transformed, [0.0, 1.0])   # x' always says class 1
    frame = res.to_frame()
    for name in CONFIDENCE_COLUMNS:
        np.testing.assert_array_equal(frame[name].to_numpy(), getattr(res, name))
    # a result built without them (older code) still gives the columns, as NaN
    bare = EKLDResult("t", ["a"], np.array([0.1]), np.array([1.0]), np.array([2]), np.array([4]),
                      [np.array([0.1, 0.1])], [np.array([1.0, 1.0])], [np.array([0, 1])], 2, 2)
    assert bare.to_frame()[list(CONFIDENCE_COLUMNS)].isna().all().all()


def test_confidence_nan_for_a_class_without_images():
    ds = corner_set((4, 3))
    res = ekld(corner_model, (ds.images, ds.labels), SetCorner(0.3), images_per_class=5,
               n_transforms=2, class_sizes=[10, 5, 1])                # class 2: no test image
    assert res.n_images.tolist() == [4, 3, 0]
    for name in CONFIDENCE_COLUMNS:
        values = getattr(res, name)
        assert np.isfinite(values[:2]).all() and np.isnan(values[2]), name
