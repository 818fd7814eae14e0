"""Tests of mil_core.metrics: Fréchet distance, Inception stem, SIFID, SWD, diversity, patch NN."""
import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mil_core.errors import ConfigError, DataError, OfflineError
from mil_core.metrics import (INCEPTION_WEIGHTS_ENV, INCEPTION_WEIGHTS_FILE, InceptionFeatures,
                              InceptionWeightsMissing, diversity, download_inception_weights,
                              extract_patches, feature_stats, frechet_distance,
                              inception_feature_size, laplacian_pyramid, nearest_reference,
                              patch_nn_distance, resolve_inception_weights, sifid, sifid_folders,
                              sifid_many, sifid_report, sliced_wasserstein, summarize_sifid, swd)
from mil_core.data import load_image
from synthetic import noisy, smooth_image

_BLOCKS = {"Conv2d_1a_3x3": (3, 32, 3), "Conv2d_2a_3x3": (32, 32, 3),
           "Conv2d_2b_3x3": (32, 64, 3), "Conv2d_3b_1x1": (64, 80, 1),
           "Conv2d_4a_3x3": (80, 192, 3)}


def _image(seed: int, h: int = 48, w: int = 56) -> torch.Tensor:
    return smooth_image(seed, h, w)


_noisy = noisy


@pytest.fixture(scope="module")
def extractor():
    return InceptionFeatures("2b", random_init=True, seed=0)


# ----------------------------------------------------------------------------- Fréchet distance

def _sqrt_trace_eig(s1, s2):
    """Tr((Σ₁Σ₂)^{1/2}) = Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) via symmetric eigendecompositions."""
    w, v = np.linalg.eigh(s1)
    r = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected,
                                                                                 rel=1e-9)


def test_frechet_full_covariances_match_eigendecomposition():
    rng = np.random.default_rng(1)
    d = 8
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _sqrt_trace_eig(s1, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_estimate_from_samples_near_closed_form():
    rng = np.random.default_rng(2)
    d, n = 4, 40000
    a = rng.normal(size=(d, d)) * 0.5
    s1, s2 = np.eye(d), a @ a.T + 0.5 * np.eye(d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    x1 = rng.multivariate_normal(mu1, s1, size=n)
    x2 = rng.multivariate_normal(mu2, s2, size=n)
    m1, c1 = feature_stats(x1)
    m2, c2 = feature_stats(torch.from_numpy(x2))           # tensors are accepted too
    assert c1.shape == (d, d) and m2.shape == (d,)
    assert np.allclose(c1, np.cov(x1, rowvar=False))
    truth = frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(truth, rel=0.05)


def test_frechet_errors():
    with pytest.raises(DataError, match="at least 2"):
        feature_stats(np.zeros((1, 3)))
    with pytest.raises(DataError, match="2-D"):
        feature_stats(np.zeros(5))
    with pytest.raises(DataError, match="sigma1 and sigma2"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))


# ----------------------------------------------------------------------------- Inception stem

def _fake_state_dict(seed: int = 0, extra: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (cin, cout, k) in _BLOCKS.items():
        sd[f"{name}.conv.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.1
        sd[f"{name}.bn.weight"] = torch.rand(cout, generator=g) + 0.5
        sd[f"{name}.bn.bias"] = torch.randn(cout, generator=g) * 0.1
        sd[f"{name}.bn.running_mean"] = torch.randn(cout, generator=g) * 0.1
        # small variances, so that BatchNorm's eps (0.001) visibly matters
        sd[f"{name}.bn.running_var"] = torch.rand(cout, generator=g) * 0.01 + 0.001
        sd[f"{name}.bn.num_batches_tracked"] = torch.tensor(7)
    if extra:                                   # later layers of the real files are ignored
        sd["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 192, 1, 1)
        sd["fc.weight"] = torch.zeros(1008, 2048)
    return sd


def test_inception_output_shapes():
    x = torch.rand(2, 3, 64, 80) * 2 - 1
    f2b = InceptionFeatures("2b", random_init=True)(x)
    f4a = InceptionFeatures("4a", random_init=True)(x)
    # 1a: ⌊(64−3)/2⌋+1 = 31, ⌊(80−3)/2⌋+1 = 39; 2a: 29×37; 2b (pad 1): 29×37
    assert f2b.shape == (2, 64, 29, 37)
    # max-pool 3/2: 14×18; 3b 1×1: 14×18; 4a: 12×16
    assert f4a.shape == (2, 192, 12, 16)
    assert inception_feature_size(64, 80, "2b") == (29, 37)
    assert inception_feature_size(64, 80, "4a") == (12, 16)
    assert not f2b.requires_grad and (f2b >= 0).all()          # after ReLU
    with pytest.raises(ConfigError, match="layer"):
        InceptionFeatures("mixed_5b", random_init=True)


def test_inception_random_init_is_seeded_locally():
    state = torch.random.get_rng_state()
    a = InceptionFeatures("2b", random_init=True, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)      # global RNG untouched
    b = InceptionFeatures("2b", random_init=True, seed=1)
    c = InceptionFeatures("2b", random_init=True, seed=2)
    assert torch.equal(a.Conv2d_2b_3x3.conv.weight, b.Conv2d_2b_3x3.conv.weight)
    assert not torch.equal(a.Conv2d_2b_3x3.conv.weight, c.Conv2d_2b_3x3.conv.weight)


def test_inception_loads_official_keys_by_path_env_and_cache(tmp_path, monkeypatch):
    sd = _fake_state_dict()
    path = tmp_path / "weights.pth"
    torch.save(sd, path)
    m = InceptionFeatures("4a", weights=path)
    for name in _BLOCKS:
        block = getattr(m, name)
        assert torch.equal(block.conv.weight, sd[f"{name}.conv.weight"])
        assert torch.equal(block.bn.running_var, sd[f"{name}.bn.running_var"])
        assert torch.equal(block.bn.bias, sd[f"{name}.bn.bias"])
    # the forward pass is Conv(no bias) → BN(eps=0.001, stored stats) → ReLU, no resizing
    x = torch.rand(1, 3, 40, 44) * 2 - 1
    ref = x
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
        stride, pad = (2, 0) if name.endswith("1a_3x3") else (1, 1 if "2b" in name else 0)
        ref = F.conv2d(ref, sd[f"{name}.conv.weight"], stride=stride, padding=pad)
        ref = F.batch_norm(ref, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"],
                           sd[f"{name}.bn.weight"], sd[f"{name}.bn.bias"], False, 0.0, 0.001)
        ref = F.relu(ref)
    m2b = InceptionFeatures("2b", weights=path)
    m2b.train()                                                  # must stay in eval mode
    assert not m2b.training
    assert torch.allclose(m2b(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    # environment variable
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    assert resolve_inception_weights() == path
    assert torch.equal(InceptionFeatures("2b").Conv2d_2b_3x3.conv.weight,
                       sd["Conv2d_2b_3x3.conv.weight"])
    # default cache file under $HOME
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".cache" / "mil_core" / INCEPTION_WEIGHTS_FILE
    cache.parent.mkdir(parents=True)
    sd3 = _fake_state_dict(seed=3, extra=False)
    torch.save(sd3, cache)
    assert resolve_inception_weights() == cache
    m3 = InceptionFeatures("2b")
    assert torch.equal(m3.Conv2d_1a_3x3.conv.weight, sd3["Conv2d_1a_3x3.conv.weight"])
    assert not torch.equal(m3.Conv2d_1a_3x3.conv.weight, sd["Conv2d_1a_3x3.conv.weight"])


def test_inception_missing_keys_listed(tmp_path):
    sd = _fake_state_dict()
    del sd["Conv2d_2b_3x3.bn.running_var"], sd["Conv2d_4a_3x3.conv.weight"]
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(DataError) as exc:
        InceptionFeatures("4a", weights=path)
    assert "Conv2d_2b_3x3.bn.running_var" in str(exc.value)
    assert "Conv2d_4a_3x3.conv.weight" in str(exc.value)
    # layer 2b only needs the first three blocks, but one of those is missing too
    with pytest.raises(DataError, match="Conv2d_2b_3x3.bn.running_var"):
        InceptionFeatures("2b", weights=path)
    # num_batches_tracked is optional
    sd = {k: v for k, v in _fake_state_dict().items() if "num_batches" not in k}
    torch.save(sd, path)
    InceptionFeatures("4a", weights=path)
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(DataError, match="not an Inception-v3 state dict"):
        InceptionFeatures("2b", weights=path)


def test_inception_no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(InceptionWeightsMissing) as exc:
        InceptionFeatures()
    msg = str(exc.value)
    assert INCEPTION_WEIGHTS_FILE in msg and INCEPTION_WEIGHTS_ENV in msg
    assert "https://github.com/mseitzer/pytorch-fid/releases" in msg
    assert isinstance(exc.value, DataError) and isinstance(exc.value, OfflineError)
    with pytest.raises(InceptionWeightsMissing):                # SIFID without extractor
        sifid(_image(0), _image(1))
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(DataError, match=INCEPTION_WEIGHTS_ENV):
        resolve_inception_weights()
    with pytest.raises(DataError, match="does not exist"):
        resolve_inception_weights(tmp_path / "missing.pth")


def test_download_inception_weights_offline(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("MIL_OFFLINE", "1")
    with pytest.raises(OfflineError, match=INCEPTION_WEIGHTS_FILE):
        download_inception_weights(tmp_path / INCEPTION_WEIGHTS_FILE)
    assert not (tmp_path / INCEPTION_WEIGHTS_FILE).exists()


class _Payload:
    """Pickles as a call to os.getcwd: code that weights_only loading must refuse."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_inception_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    sd = _fake_state_dict(extra=False)
    sd["payload"] = _Payload()
    torch.save(sd, path)
    with pytest.raises(DataError, match="weights_only"):
        InceptionFeatures("2b", weights=path)


def test_inception_input_checks(extractor):
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        extractor(torch.full((1, 3, 32, 32), 200.0))
    with pytest.raises(DataError, match="too small"):
        extractor(torch.zeros(1, 3, 5, 5))
    with pytest.raises(DataError, match="3, H, W"):
        extractor(torch.zeros(1, 1, 32, 32))


# ----------------------------------------------------------------------------- SIFID

def test_sifid_zero_for_same_image_and_grows_with_noise(extractor):
    x = _image(0)
    assert abs(sifid(x, x, extractor)) < 1e-6
    values = [sifid(x, _noisy(x, s), extractor) for s in (0.05, 0.2, 0.5)]
    assert values[0] > 1e-6
    assert values[0] < values[1] < values[2]
    # sifid_many: one real against many fakes (a tensor or a list of mixed sizes)
    fakes = [_noisy(x, 0.05), x, _noisy(_image(0, 40, 60), 0.2), _noisy(x, 0.5)]
    many = sifid_many(x, fakes, extractor, batch_size=2)
    singles = [sifid(x, f, extractor) for f in fakes]
    assert many == pytest.approx(singles, rel=1e-6, abs=1e-9)
    assert sifid_many(x, torch.stack([x, _noisy(x, 0.2)]), extractor) == pytest.approx(
        [singles[1], values[1]], rel=1e-6, abs=1e-9)


def test_sifid_summary_convention():
    rep = summarize_sifid({"a": [3.0, 1.0, 2.0], "b": [5.0, 4.0]})
    assert rep["SIFID"] == pytest.approx((1.0 + 4.0) / 2)            # mean of per-image minima
    assert rep["mSIFID"] == pytest.approx(15.0 / 5)                  # pooled mean of all samples
    assert rep["n_images"] == 2 and rep["n_samples"] == 5
    rows = {r["image"]: r for r in rep["per_image"]}
    assert rows["a"]["min"] == 1.0 and rows["a"]["mean"] == pytest.approx(2.0)
    assert rows["b"]["n"] == 2 and rows["b"]["max"] == 5.0
    with pytest.raises(DataError, match="no samples"):
        summarize_sifid({"a": []})


def test_sifid_report(extractor):
    x, y = _image(0), _image(5)
    pairs = {"x": (x, [x, _noisy(x, 0.3)]), "y": (y, torch.stack([_noisy(y, 0.1)]))}
    rep = sifid_report(pairs, extractor)
    vx = sifid_many(x, [x, _noisy(x, 0.3)], extractor)
    vy = sifid_many(y, [_noisy(y, 0.1)], extractor)
    assert rep["SIFID"] == pytest.approx((min(vx) + vy[0]) / 2, abs=1e-9)
    assert rep["mSIFID"] == pytest.approx((sum(vx) + vy[0]) / 3, abs=1e-9)


def _save(img: torch.Tensor, path, **kw):
    arr = ((img.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, **kw)


def test_sifid_folders_pair_by_name(tmp_path, extractor):
    real_dir, fake_dir = tmp_path / "real", tmp_path / "fake"
    real_dir.mkdir(), fake_dir.mkdir()
    names = ["1", "2", "10"]
    imgs = {n: _image(int(n), 40, 48) for n in names}
    order = names[:]
    random.Random(3).shuffle(order)
    for n in order:                                  # written in a shuffled order
        _save(imgs[n], real_dir / f"{n}.png")
    _save(imgs["10"], fake_dir / "10.png")                           # identical → SIFID 0
    _save(imgs["2"], fake_dir / "2.jpg", quality=100, subsampling=0)  # same image, JPEG
    _save(_noisy(imgs["1"], 0.4), fake_dir / "1.png")
    png, jpg = load_image(real_dir / "2.png"), load_image(fake_dir / "2.jpg")
    assert jpg.min() >= -1 and jpg.max() <= 1 and (png - jpg).abs().mean() < 0.02
    rep = sifid_folders(real_dir, fake_dir, extractor)
    rows = rep["per_image"]
    assert [r["image"] for r in rows] == ["1", "2", "10"]            # natural order
    assert rows[2]["fake"] == "10.png" and abs(rows[2]["min"]) < 1e-6
    assert rows[1]["min"] < rows[0]["min"]
    assert rows[0]["min"] == pytest.approx(
        sifid(load_image(real_dir / "1.png"), load_image(fake_dir / "1.png"), extractor))
    assert rep["SIFID"] == pytest.approx(rep["mSIFID"])             # one sample per image


def test_sifid_folders_mismatched_names(tmp_path, extractor):
    real_dir, fake_dir = tmp_path / "real", tmp_path / "fake"
    real_dir.mkdir(), fake_dir.mkdir()
    for n in ("a", "b"):
        _save(_image(1, 32, 32), real_dir / f"{n}.png")
    for n in ("a", "c"):
        _save(_image(1, 32, 32), fake_dir / f"{n}.png")
    with pytest.raises(DataError) as exc:
        sifid_folders(real_dir, fake_dir, extractor)
    assert "['b']" in str(exc.value) and "['c']" in str(exc.value)


# ----------------------------------------------------------------------------- SWD

def test_laplacian_pyramid_reconstructs():
    from mil_core.metrics.swd import _up
    x = _image(0, 64, 70).unsqueeze(0).double()
    levels = laplacian_pyramid(x, min_size=16)
    assert [tuple(t.shape[-2:]) for t in levels] == [(64, 70), (32, 35), (16, 18)]
    rec = levels[-1]
    for lap in reversed(levels[:-1]):
        rec = lap + _up(rec, tuple(lap.shape[-2:]))
    assert torch.allclose(rec, x, atol=1e-12)


def test_laplacian_pyramid_of_constant_is_flat():
    x = torch.full((1, 3, 64, 35), 0.3, dtype=torch.float64)
    levels = laplacian_pyramid(x, min_size=8)
    assert [tuple(t.shape[-2:]) for t in levels] == [(64, 35), (32, 18), (16, 9)]
    for lap in levels[:-1]:
        assert lap.abs().max() < 1e-12
    assert torch.allclose(levels[-1], torch.full_like(levels[-1], 0.3))


def test_sliced_wasserstein_known_values():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 1, generator=g), torch.rand(500, 1, generator=g) * 3
    # in 1-D every unit direction is ±1: SWD is the empirical W1 distance
    w1 = (a.sort(dim=0).values - b.sort(dim=0).values).abs().mean().item()
    assert sliced_wasserstein(a, b, 16, generator=g) == pytest.approx(w1, rel=1e-5)
    # a translation by c·e₁ in 2-D: mean over unit u of |u·e₁|·c = 2c/π
    a2 = torch.randn(300, 2, generator=g)
    b2 = a2 + torch.tensor([0.5, 0.0])
    assert sliced_wasserstein(a2, b2, 4096, generator=g) == pytest.approx(1 / np.pi, rel=0.03)


def test_swd_self_small_and_monotone_in_noise():
    x = _image(0, 64, 64)

    def run(y):
        return swd(x, y, patches_per_image=1024, generator=torch.Generator().manual_seed(4))

    base = run(x)
    noisy = [run(_noisy(x, s))["mean"] for s in (0.05, 0.2, 0.5)]
    assert len(base["per_level"]) == 3 and base["level_sizes"] == [(64, 64), (32, 32), (16, 16)]
    assert base["mean"] < 0.5 * noisy[1]
    assert base["mean"] < noisy[0] < noisy[1] < noisy[2]
    assert base["mean"] == pytest.approx(np.mean(base["per_level"]))


def test_swd_invariant_to_per_channel_affine_maps():
    # descriptors are normalised per channel with the union's mean/std: a per-channel affine map
    # applied to both sets (same seed, so the same patches and directions) changes nothing
    x, y = _image(0, 48, 48), _noisy(_image(0, 48, 48), 0.2)
    scale, shift = torch.tensor([3.0, 0.2, 1.0]).view(3, 1, 1), torch.tensor([0.5, -1, 0]).view(
        3, 1, 1)
    a = swd(x, y, patches_per_image=256)
    b = swd(x * scale + shift, y * scale + shift, patches_per_image=256)
    assert b["per_level"] == pytest.approx(a["per_level"], rel=1e-4)


def test_swd_seeded_and_set_against_single():
    x = _image(0, 48, 48)
    fakes = torch.stack([_noisy(x, 0.1, seed=s) for s in range(3)])
    a = swd(x, fakes, patches_per_image=64, generator=torch.Generator().manual_seed(1))
    b = swd(x, fakes, patches_per_image=64, generator=torch.Generator().manual_seed(1))
    c = swd(x, fakes, patches_per_image=64, generator=torch.Generator().manual_seed(2))
    assert a == b and a["mean"] != c["mean"]
    assert a["n_descriptors"] == 64 * 3
    assert swd(x, fakes, patches_per_image=64) == swd(x, fakes, patches_per_image=64)
    with pytest.raises(ConfigError, match="min_size"):
        swd(x, fakes, min_size=4)
    with pytest.raises(DataError, match="smaller than min_size"):
        swd(x, torch.zeros(3, 12, 12))


# ----------------------------------------------------------------------------- diversity

def test_diversity_values():
    real = torch.arange(6, dtype=torch.float32).view(3, 1, 2)
    s0 = torch.zeros(3, 1, 2)
    s1 = torch.tensor([[[2.0, 0.0]], [[0.0, 4.0]], [[2.0, 2.0]]])
    # per-pixel std (ddof 0) of two values = |a − b| / 2 → 1, 0, 0, 2, 1, 1; mean 5/6
    expected = (5 / 6) / np.std(np.arange(6))
    assert diversity(torch.stack([s0, s1]), real) == pytest.approx(expected, rel=1e-6)
    assert diversity([s0, s1], real) == pytest.approx(expected, rel=1e-6)
    x = _image(0, 16, 16)
    assert diversity(torch.stack([x] * 4), x) == 0.0
    samples = torch.stack([_noisy(x, 0.3, seed=s) for s in range(5)])
    d = diversity(samples, x)
    assert d == pytest.approx(np.std(samples.double().numpy(), axis=0).mean()
                              / np.std(x.double().numpy()), rel=1e-9)
    assert diversity(samples * 2.0, x) == pytest.approx(2 * d, rel=1e-9)
    assert diversity(samples * 2.0, x * 2.0) == pytest.approx(d, rel=1e-9)


def test_diversity_errors():
    x = _image(0, 16, 16)
    with pytest.raises(DataError, match="at least 2"):
        diversity(x.unsqueeze(0), x)
    with pytest.raises(DataError, match="real image's size"):
        diversity(torch.stack([x, x]), _image(0, 16, 20))
    with pytest.raises(DataError, match="constant"):
        diversity(torch.stack([x, x]), torch.zeros(3, 16, 16))


# ----------------------------------------------------------------------------- patch NN

def test_extract_patches():
    img = torch.arange(3 * 10 * 12, dtype=torch.float32).view(3, 10, 12)
    p = extract_patches(img, size=3, stride=2)
    assert p.shape == (4 * 5, 27)
    assert torch.equal(p[0], img[:, :3, :3].flatten())
    assert torch.equal(p[1], img[:, :3, 2:5].flatten())
    assert extract_patches(img.unsqueeze(0), 3, 2).shape == (1, 20, 27)
    with pytest.raises(DataError, match="smaller than the patch"):
        extract_patches(img, size=11)


def test_extract_patches_at_corners_match_the_grid():
    # the random-patch mode of SWD cuts patches at given corners: the same rows as the full grid
    img = torch.randn(3, 12, 15, dtype=torch.float64)
    grid = extract_patches(img, size=7)                                  # (6·9, 147)
    ys, xs = torch.tensor([0, 5, 2, 5]), torch.tensor([0, 8, 3, 8])
    at = extract_patches(img, size=7, positions=(ys, xs))
    assert at.dtype == torch.float64 and at.shape == (4, 147)
    assert torch.equal(at, grid[ys * 9 + xs])
    with pytest.raises(DataError, match="inside"):
        extract_patches(img, size=7, positions=(torch.tensor([6]), torch.tensor([0])))
    with pytest.raises(DataError, match="one image"):
        extract_patches(img.unsqueeze(0), size=7, positions=(ys, xs))
    with pytest.raises(DataError, match="one length"):
        extract_patches(img, size=7, positions=(ys, xs[:2]))


def test_patch_nn_distance_and_nearest_reference():
    refs = [_image(0, 40, 40), _image(1, 40, 40), _image(2, 36, 44)]
    gen = [refs[0], _noisy(refs[1], 0.05), _noisy(refs[2], 0.05)]
    d = patch_nn_distance(gen, refs, size=7, stride=2, max_patches=64)
    assert d.shape == (3, 3)
    assert d[0, 0] == 0.0 and (d[0, 1:] > 0).all()
    assert nearest_reference(gen, refs, max_patches=64).tolist() == [0, 1, 2]
    a = patch_nn_distance(gen, refs, max_patches=32, generator=torch.Generator().manual_seed(0))
    b = patch_nn_distance(gen, refs, max_patches=32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    # a generated image stitched from two references is near both of them (leakage)
    half = torch.cat([refs[0][:, :, :20], refs[1][:, :, 20:]], dim=2)
    dh = patch_nn_distance([half], refs[:2] + [refs[2]], stride=1, max_patches=10_000)
    assert dh[0, 2] > max(dh[0, 0], dh[0, 1])
