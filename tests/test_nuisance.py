"""GIT's nuisance transforms: distributions of REFERENCE §6 and functional checks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mil_core.errors import ConfigError, DataError
from mil_core.data.mnist_like import ImageSet, load_animal_silhouettes
from mil_core.data.nuisance import (TRANSFORMS, Background, DilateErode, Identity, Rotation,
                                    dilate, erode, get_transform, make_transformed_test_split,
                                    to_float, to_uint8, transform_dataset)

N_DRAWS = 5000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def silhouettes() -> torch.Tensor:
    """64 real animal silhouettes as float (64, 1, 28, 28) in [0, 1]."""
    ds = load_animal_silhouettes()
    return to_float(ds.images[::157][:64])


# -----------------------------------------------------------------------------
# distributions

def test_bg_values_exactly_0_to_99():
    v = get_transform("bg").sample_params(N_DRAWS, _gen())["value"]
    assert set(v.tolist()) == set(range(100))          # all of them, none outside
    counts = torch.bincount(v, minlength=100).double()
    assert counts.min() > 20 and counts.max() < 85     # expected 50 each


def test_rotation_angles_uniform_in_pm180():
    a = get_transform("rot").sample_params(N_DRAWS, _gen(1))["angle"]
    assert a.dtype == torch.float64
    assert float(a.min()) >= -180.0 and float(a.max()) <= 180.0
    # Kolmogorov–Smirnov statistic against U(-180, 180); 1% critical value ≈ 1.63/√n ≈ 0.023.
    u = torch.sort((a + 180.0) / 360.0).values
    i = torch.arange(1, N_DRAWS + 1, dtype=torch.float64)
    ks = max(float((i / N_DRAWS - u).max()), float((u - (i - 1) / N_DRAWS).max()))
    assert ks < 0.03
    deciles = torch.histc(a, bins=10, min=-180, max=180)
    assert deciles.min() > 420 and deciles.max() < 580  # expected 500 each
    assert float(a.min()) < -175 and float(a.max()) > 175


def test_dil_branch_frequency_and_kernel_sizes():
    p = get_transform("dil").sample_params(N_DRAWS, _gen(2))
    d, k = p["dilate"], p["size"]
    assert d.dtype == torch.bool and k.dtype == torch.int64
    assert abs(float(d.double().mean()) - 0.6) < 0.03
    kd, ke = k[d], k[~d]
    assert set(kd.tolist()) == {2, 3, 4} and set(ke.tolist()) == {1, 2}
    for sizes, branch in (((2, 3, 4), kd), ((1, 2), ke)):
        for s in sizes:
            assert abs(float((branch == s).double().mean()) - 1 / len(sizes)) < 0.04


# -----------------------------------------------------------------------------
# determinism and devices

@pytest.mark.parametrize("name", ["rot", "bg", "dil", "identity"])
def test_seeded_determinism(name, silhouettes):
    t = get_transform(name)
    a = t(silhouettes, _gen(7))
    b = t(silhouettes, _gen(7))
    assert torch.equal(a, b)
    assert a.shape == silhouettes.shape and a.dtype == silhouettes.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    if name != "identity":
        assert not torch.equal(t(silhouettes, _gen(8)), a)


@pytest.mark.parametrize("name", ["rot", "bg", "dil"])
def test_params_independent_of_x_and_cpu_only(name, silhouettes):
    t = get_transform(name)
    p1 = t.sample_params(64, _gen(3))
    p2 = t.sample_params(64, _gen(3))
    for key in p1:
        assert p1[key].device.type == "cpu" and torch.equal(p1[key], p2[key])
    # The output for float64 input equals that for float32 input: same parameters drawn.
    out32 = t(silhouettes, _gen(3))
    out64 = t(silhouettes.double(), _gen(3))
    assert torch.allclose(out32.double(), out64, atol=1e-4)
    if torch.cuda.is_available():
        out_gpu = t(silhouettes.cuda(), _gen(3)).cpu()
        assert torch.allclose(out_gpu, out32, atol=1e-4)
    # A generator on another device is refused (parameters are always drawn on the CPU).
    gpu_gen = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="CPU"):
        t.sample_params(4, gpu_gen)  # type: ignore[arg-type]


def test_transform_dataset_independent_of_chunking(silhouettes):
    imgs = to_uint8(silhouettes)
    for name in ("rot", "bg", "dil"):
        a = transform_dataset(imgs, name, _gen(5), chunk_size=7)
        b = transform_dataset(imgs, name, _gen(5), chunk_size=1000)
        assert a.dtype == torch.uint8 and a.shape == imgs.shape
        assert torch.equal(a, b)
        assert not torch.equal(a, imgs)


# -----------------------------------------------------------------------------
# functional checks

def test_rotation_by_zero_is_identity(silhouettes):
    out = Rotation().apply(silhouettes, {"angle": torch.zeros(64, dtype=torch.float64)})
    assert torch.allclose(out, silhouettes, atol=1e-5)


def test_rotation_180_flips_both_axes_and_90_is_ccw(silhouettes):
    rot = Rotation()
    out = rot.apply(silhouettes, {"angle": torch.full((64,), 180.0, dtype=torch.float64)})
    assert torch.allclose(out, torch.flip(silhouettes, dims=(2, 3)), atol=1e-4)
    # +90° turns content counter-clockwise (as PIL's rotate that GIT uses) = torch.rot90(k=1).
    out = rot.apply(silhouettes, {"angle": torch.full((64,), 90.0, dtype=torch.float64)})
    assert torch.allclose(out, torch.rot90(silhouettes, 1, dims=(2, 3)), atol=1e-4)
    # Odd size and non-square images too.
    x = torch.rand(3, 1, 9, 9)
    out = rot.apply(x, {"angle": torch.full((3,), -180.0, dtype=torch.float64)})
    assert torch.allclose(out, torch.flip(x, dims=(2, 3)), atol=1e-4)
    x = torch.rand(2, 1, 6, 10)
    out = rot.apply(x, {"angle": torch.full((2,), 180.0, dtype=torch.float64)})
    assert torch.allclose(out, torch.flip(x, dims=(2, 3)), atol=1e-4)


def test_bg_repaints_only_zero_pixels(silhouettes):
    t = Background()
    p = t.sample_params(64, _gen(4))
    out = t.apply(silhouettes, p)
    nonzero = silhouettes != 0
    assert torch.equal(out[nonzero], silhouettes[nonzero])
    for i in range(64):
        bg = out[i][~nonzero[i]]
        assert torch.all(bg == float(p["value"][i]) / 255.0)
    # uint8 round trip gives exactly the sampled value on the background.
    u8 = to_uint8(out)
    for i in range(64):
        assert u8[i][~nonzero[i, 0]].unique().tolist() == [int(p["value"][i])]


def test_dilation_grows_erosion_shrinks(silhouettes):
    t = DilateErode()
    p = t.sample_params(64, _gen(6))
    out = t.apply(silhouettes, p)
    d = p["dilate"]
    assert torch.all(out[d] >= silhouettes[d])
    assert torch.all(out[~d] <= silhouettes[~d])
    assert torch.equal(out[~d & (p["size"] == 1)], silhouettes[~d & (p["size"] == 1)])
    assert float(out[d].sum()) > float(silhouettes[d].sum())
    for k in (2, 3, 4):
        assert torch.all(dilate(silhouettes, k) >= silhouettes)
        assert torch.all(erode(silhouettes, k) <= silhouettes)


def test_morphology_anchor_and_border_match_opencv():
    # Values measured with cv2.dilate / cv2.erode (OpenCV 4.x, default anchor and border).
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    for k, (lo, hi) in {2: (3, 4), 3: (2, 4), 4: (2, 5)}.items():
        rows, cols = torch.nonzero(dilate(x, k)[0, 0], as_tuple=True)
        assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == \
            (lo, hi, lo, hi)
    hole = 1.0 - x
    rows, cols = torch.nonzero(erode(hole, 2)[0, 0] == 0, as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (3, 4, 3, 4)
    # The border neither eats (erosion) nor adds (dilation).
    full = torch.full((1, 1, 6, 6), 0.8)
    for k in (2, 3, 4):
        assert torch.equal(erode(full, k), full) and torch.equal(dilate(full, k), full)


def test_identity_and_registry(silhouettes):
    assert set(TRANSFORMS) == {"identity", "rot", "bg", "dil"}
    assert torch.equal(Identity()(silhouettes, _gen()), silhouettes)
    assert isinstance(get_transform("rot", max_degrees=10.0), Rotation)
    assert float(get_transform("rot", max_degrees=10.0).sample_params(100, _gen())["angle"]
                 .abs().max()) <= 10.0
    with pytest.raises(ConfigError, match="rot"):
        get_transform("rotate")
    with pytest.raises(DataError, match="float"):
        get_transform("bg")(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), _gen())
    with pytest.raises(DataError, match="sample_params"):
        Background().apply(torch.zeros(3, 1, 4, 4), {"value": torch.zeros(2, dtype=torch.int64)})


def test_make_transformed_test_split():
    imgs = torch.zeros(20, 8, 8, dtype=torch.uint8)
    imgs[:, 2:6, 2:6] = 200
    test = ImageSet(imgs, torch.arange(20) % 2, ["a", "b"], "toy-test")
    a = make_transformed_test_split(test, "bg", seed=1)
    b = make_transformed_test_split(test, "bg", seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, test.labels)
    assert a.name == "toy-test-bg" and a.classes == ["a", "b"]
    assert torch.equal(a.images[:, 2:6, 2:6], imgs[:, 2:6, 2:6])
    assert int(a.images[:, 0, 0].max()) <= 99 and len(a.images[:, 0, 0].unique()) > 1
    assert torch.equal(test.images, imgs)                        # input untouched
