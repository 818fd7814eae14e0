"""The image pyramid: SinGAN's scale rule, MIL's fixed count and aspect, antialiasing, errors."""
from __future__ import annotations

import math

import pytest
import torch

from mil_core.data import pyramid
from mil_core.data.pyramid import (PyramidConfig, build_pyramid, check_min_size,
                                   effective_scale_factor, plan_pyramid, pyramid_shapes, resize_to)
from mil_core.errors import ConfigError, DataError


def _increasing(shapes):
    return all(a[0] < b[0] and a[1] < b[1] for a, b in zip(shapes, shapes[1:]))


def test_singan_rule_250x188():
    cfg = PyramidConfig()                                    # 0.75, 25, 250
    shapes = pyramid_shapes(188, 250, cfg)
    assert len(shapes) == 10
    assert shapes[-1] == (188, 250)
    assert min(shapes[0]) == 25
    r = effective_scale_factor(188, 250, cfg)
    assert r == pytest.approx(0.80, abs=0.005)
    assert r == pytest.approx((25 / 188) ** (1 / 9))
    assert _increasing(shapes)
    for i, (h, w) in enumerate(shapes):                      # each scale ≈ finest · r^(n-1-i)
        assert h == pytest.approx(188 * r ** (9 - i), abs=1)


def test_large_image_is_resized_to_max_size():
    shapes = pyramid_shapes(750, 1000, PyramidConfig())
    assert shapes[-1] == (188, 250) and len(shapes) == 10
    portrait = pyramid_shapes(451, 300, PyramidConfig())
    assert max(portrait[-1]) == 250 and portrait[-1][0] > portrait[-1][1]
    assert min(portrait[0]) == 25 and _increasing(portrait)


def test_small_image_not_enlarged_unless_upscale():
    assert pyramid_shapes(100, 120, PyramidConfig())[-1] == (100, 120)
    assert pyramid_shapes(100, 120, PyramidConfig(upscale=True))[-1] == (208, 250)


def test_mil_fixed_scales_forced_aspect_on_square():
    cfg = PyramidConfig(n_scales=7, aspect=0.75)
    plan = plan_pyramid(300, 300, cfg)
    assert plan.n_scales == 7 and _increasing(plan.shapes)
    for h, w in plan.shapes:
        assert h / w == pytest.approx(0.75, abs=0.03)
    assert plan.shapes[-1] == (188, 250) and min(plan.shapes[0]) == 25
    assert plan.scale_factor == pytest.approx((25 / 188) ** (1 / 6))
    assert plan.crop == (37, 0, 225, 300)                    # centre crop, full width
    img = torch.rand(3, 300, 300) * 2 - 1
    pyr = build_pyramid(img, cfg)
    assert [tuple(p.shape[-2:]) for p in pyr] == plan.shapes
    # the finest scale is the resized centre crop, not a stretched copy of the whole image
    ref = resize_to(img[:, 37:262, :], (188, 250))
    assert torch.allclose(pyr[-1], ref)


def test_build_pyramid_values_ranks_and_batches():
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(3, 188, 250, generator=g) * 2.4 - 1.2).clamp(-1, 1)
    pyr = build_pyramid(img)
    assert len(pyr) == 10 and all(p.dim() == 3 and p.shape[0] == 3 for p in pyr)
    assert all(float(p.min()) >= -1.0 and float(p.max()) <= 1.0 for p in pyr)
    assert torch.equal(pyr[-1], img)                         # finest = the image itself
    batch = torch.stack([img, -img])                         # (2, 3, H, W)
    pb = build_pyramid(batch)
    assert all(p.shape[0] == 2 for p in pb)
    assert torch.allclose(pb[3][0], pyr[3], atol=1e-6)
    # every scale comes directly from the full image: blurring a coarse scale's mean is kept
    smooth = torch.zeros(3, 188, 250) + 0.3
    assert all(torch.allclose(p, torch.full_like(p, 0.3), atol=1e-5)
               for p in build_pyramid(smooth))


def test_antialias_reduces_checkerboard_aliasing():
    yy, xx = torch.meshgrid(torch.arange(188), torch.arange(250), indexing="ij")
    checker = ((yy + xx) % 2).float() * 2 - 1                 # highest frequency, mean 0
    img = checker.expand(3, -1, -1).clone()
    aa = build_pyramid(img, PyramidConfig(antialias=True))
    raw = build_pyramid(img, PyramidConfig(antialias=False))
    # the checkerboard cannot be represented at coarse scales: the right answer is flat grey
    err_aa = sum(float(p.abs().mean()) for p in aa[:-1]) / (len(aa) - 1)
    err_raw = sum(float(p.abs().mean()) for p in raw[:-1]) / (len(raw) - 1)
    assert err_aa < 0.1
    assert err_raw > 3 * err_aa


@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=1.0), dict(scale_factor=0.0), dict(scale_factor=1.5),
    dict(min_size=300), dict(min_size=0), dict(max_size=-5), dict(min_size=2.5),
    dict(n_scales=1), dict(n_scales=0), dict(n_scales=3.0),
    dict(aspect=0.0), dict(aspect=-1.0), dict(aspect=math.inf),
])
def test_invalid_configs_raise(kwargs):
    with pytest.raises(ConfigError):
        PyramidConfig(**kwargs)


def test_config_checked_again_when_used_and_per_image():
    cfg = PyramidConfig()
    cfg.scale_factor = 2.0                                    # mutated after construction
    with pytest.raises(ConfigError, match="scale_factor"):
        pyramid_shapes(188, 250, cfg)
    with pytest.raises(ConfigError, match="n_scales"):        # 26 px cannot give 7 distinct scales
        pyramid_shapes(26, 30, PyramidConfig(n_scales=7))
    with pytest.raises(ConfigError):                         # aspect too extreme for max_size
        pyramid_shapes(1000, 1000, PyramidConfig(aspect=0.05))


def test_too_small_image_and_bad_tensors():
    with pytest.raises(DataError, match="min_size=25"):
        build_pyramid(torch.zeros(3, 20, 40))
    with pytest.raises(DataError):
        build_pyramid(torch.zeros(1, 64, 64))
    with pytest.raises(DataError):
        build_pyramid(torch.zeros(3, 64, 64, dtype=torch.uint8))


def test_from_profile_styles():
    from mil_core.profiles import get_profile

    img = get_profile("paper").image
    mil = PyramidConfig.from_profile(img, "mil")
    assert (mil.n_scales, mil.aspect, mil.upscale, mil.max_size) == (7, 0.75, True, 250)
    shapes = pyramid_shapes(400, 400, mil)
    assert len(shapes) == 7 and abs(shapes[-1][0] / shapes[-1][1] - 0.75) < 0.01
    sing = PyramidConfig.from_profile(img, "singan")
    assert sing.n_scales is None and sing.aspect is None
    assert len(pyramid_shapes(188, 250, sing)) == 10
    with pytest.raises(ConfigError, match="style"):
        PyramidConfig.from_profile(img, "other")


def test_check_min_size_names_the_tiny_image():
    assert "check_min_size" in pyramid.__all__
    cfg = PyramidConfig()                                    # min_size=25
    ok = [torch.zeros(3, 25, 40), torch.zeros(3, 188, 250)]
    check_min_size(ok, cfg)                                  # exactly min_size is fine
    check_min_size(torch.zeros(2, 3, 30, 30), cfg)
    check_min_size([], cfg)
    with pytest.raises(DataError) as info:
        check_min_size(ok + [torch.zeros(3, 1, 1)], cfg, names=["a", "b", "dot"])
    assert str(info.value) == (
        "Image 'dot' is 1×1 (H×W), smaller than the pyramid's min_size=25 px (the short side of "
        "its coarsest scale), so it cannot be used for training. Use a larger image, or lower the "
        "pyramid's min_size.")
    with pytest.raises(DataError) as info:
        check_min_size(torch.zeros(4, 3, 24, 300), cfg, what="inference")
    assert str(info.value).startswith("Image 0 is 24×300 (H×W), smaller than the pyramid's "
                                      "min_size=25 px")
    assert "cannot be used for inference" in str(info.value)
    check_min_size([torch.zeros(3, 1, 1)], PyramidConfig(min_size=1, max_size=250))


def test_check_min_size_with_a_forced_aspect_checks_the_crop():
    cfg = PyramidConfig(aspect=0.75, min_size=25)
    check_min_size([torch.zeros(3, 30, 40)], cfg)            # crop 30×40
    with pytest.raises(DataError) as info:
        check_min_size([torch.zeros(3, 200, 30)], cfg)       # crop 22×30: too short
    assert str(info.value) == (
        "Image 0 is 200×30 (H×W), and its centre crop to aspect 0.75 (H/W) is 22×30, smaller "
        "than the pyramid's min_size=25 px, so it cannot be used for training. Use a larger "
        "image, or lower the pyramid's min_size.")
    with pytest.raises(DataError):                           # plan_pyramid agrees
        plan_pyramid(200, 30, cfg)


def test_check_min_size_bad_arguments():
    cfg = PyramidConfig()
    with pytest.raises(ConfigError, match="one name per image"):
        check_min_size([torch.zeros(3, 30, 30)], cfg, names=["a", "b"])
    with pytest.raises(ConfigError, match="one name per image"):
        check_min_size([torch.zeros(3, 30, 30)], cfg, names="a")
    with pytest.raises(DataError, match="image 1"):
        check_min_size([torch.zeros(3, 30, 30), torch.zeros(30, 30)], cfg)
    with pytest.raises(DataError, match=r"\(3, 30, 30\)"):
        check_min_size(torch.zeros(3, 30, 30), cfg)          # one image must be in a list
