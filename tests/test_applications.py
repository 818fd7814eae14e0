"""SinGAN's applications for SinGAN and the hyper-GAN (mil_core.applications, application_inputs)."""
import numpy as np
import pytest
import torch
from PIL import Image

from mil_core import applications as A
from mil_core.application_inputs import copy_move, load_mask, naive_paste, quantize_paint
from mil_core.data.pyramid import PyramidConfig, resize_to
from mil_core.errors import ConfigError, DataError
from mil_core.models import SinGANConfig, train_singan
from mil_core.models.hypergan import HyperGANConfig
from mil_core.models.hypergan_train import train_hypergan


def stripes(h=24, w=32):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([0.8 * torch.sin(6 * xx), 0.9 * yy,
                        0.6 * torch.sign(torch.sin(5 * (xx + yy)))]).clamp(-1, 1)


def blob(h=24, w=32):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    disc = ((xx - 0.3) ** 2 + (yy + 0.2) ** 2 < 0.35).float()
    return torch.stack([disc * 1.6 - 0.8, 0.7 - disc * 1.4, disc * 0.5 - 0.9]).clamp(-1, 1)


@pytest.fixture(scope="module")
def chains():
    torch.manual_seed(0)
    cfg = SinGANConfig(pyramid=PyramidConfig(scale_factor=0.5, min_size=12, max_size=32),
                       channels=8, iters_per_scale=30, steps_d=1, steps_g=1)
    sg = train_singan(stripes(), cfg, seed=0, device="cpu", show_progress=False)
    hcfg = HyperGANConfig.from_profile("smoke", "minibatch", 2)
    hg = train_hypergan([stripes(), blob()], hcfg, show_progress=False, device="cpu")
    recs = {"SinGAN": lambda scale: sg.reconstruct(scale)[0],
            "hyper-GAN": lambda scale: hg.reconstruct([stripes()], scale)[0]}
    out = {"SinGAN": A.as_chain(sg), "hyper-GAN": A.as_chain(hg, stripes())}
    out["recs"] = recs
    return out


@pytest.mark.parametrize("kind", ["SinGAN", "hyper-GAN"])
def test_any_size_and_aspect(chains, kind):
    c = chains[kind]
    g = torch.Generator().manual_seed(0)
    for size in [(24, 32), (20, 60), (40, 16)]:      # wider and taller than any training aspect
        out = A.sample(c, 2, size, generator=g)
        assert out.shape == (2, 3, *size) and out.abs().max() <= 1
    assert A.sample(c, 1).shape == (1, 3, *c.shapes[-1])


@pytest.mark.parametrize("kind", ["SinGAN", "hyper-GAN"])
def test_injection_with_zero_noise_is_the_chain_from_that_scale(chains, kind):
    """Injecting the model's own reconstruction at scale s − 1 at scale s, with zero noise,
    gives its reconstruction at the finest scale (z* at scale 0, zero noise above)."""
    c, rec = chains[kind], chains["recs"][kind]
    checked = 0
    for s in range(1, c.n_scales):
        x = rec(s - 1)
        if x.abs().max() > 0.999:      # clamped to [-1, 1]: no longer the chain's own x_{s-1}
            continue
        out = A.inject(c, x, s, zero_noise=True)
        assert torch.allclose(out[0], rec(c.n_scales - 1), atol=1e-5), s
        checked += 1
    assert checked >= 1
    img, s = stripes(), 1
    a = A.inject(c, img, s, 2, torch.Generator().manual_seed(1))
    assert a.shape == (2, 3, *c.shapes[-1]) and not torch.equal(a[0], a[1])
    with pytest.raises(ConfigError, match=r"injection scale must be an integer in \[1, "):
        A.inject(c, img, 0)
    with pytest.raises(ConfigError, match="injection scale"):
        A.inject(c, img, c.n_scales)


def test_harmonization_keeps_the_outside_and_changes_the_inside(chains):
    c = chains["SinGAN"]
    comp, mask = naive_paste(stripes(), blob(), (6, 8, 10, 12))
    assert mask.shape == (1, 24, 32) and float(mask.sum()) == 120
    out = A.harmonize(c, comp, mask, scale=1, generator=torch.Generator().manual_seed(0))
    outside = mask.expand(3, -1, -1) == 0
    assert torch.equal(out[0][outside], comp[outside])
    assert not torch.equal(out[0][~outside], comp[~outside])


def test_input_builders_make_masks_of_the_expected_area():
    img = stripes()
    edited, mask = copy_move(img, (2, 3, 8, 9), (12, 20))
    assert mask.shape == (1, 24, 32) and float(mask.sum()) == 72
    assert torch.equal(edited[:, 12:20, 20:29], img[:, 2:10, 3:12])
    assert torch.equal(edited[:, mask[0] == 0], img[:, mask[0] == 0])
    paint = quantize_paint(img, k=4, seed=0)
    assert paint.shape == img.shape and len(torch.unique(paint.reshape(3, -1).t(), dim=0)) <= 4
    assert torch.equal(quantize_paint(img, k=4, seed=0), paint)
    with pytest.raises(ConfigError, match="does not fit"):
        naive_paste(img, blob(), (20, 20, 10, 10))
    with pytest.raises(ConfigError, match=r"k must be an integer in \[2, 64\]"):
        quantize_paint(img, k=1)


def test_bad_masks_are_refused_with_the_fix(tmp_path, chains):
    img = stripes()
    with pytest.raises(DataError, match=r"is \(10, 10\) but the image is \(24, 32\)"):
        A.check_mask(torch.ones(10, 10), img)
    with pytest.raises(DataError, match="not binary"):
        A.check_mask(torch.full((24, 32), 0.5), img)
    with pytest.raises(DataError, match="empty"):
        A.check_mask(torch.zeros(24, 32), img)
    arr = np.zeros((24, 32), np.uint8)
    arr[4:10, 5:15] = 255
    Image.fromarray(arr).save(tmp_path / "m.png")
    assert float(load_mask(tmp_path / "m.png", img).sum()) == 60
    arr[0, 0] = 128
    Image.fromarray(arr).save(tmp_path / "soft.png")
    with pytest.raises(DataError, match="soft.png: the mask is not binary"):
        load_mask(tmp_path / "soft.png", img)


@pytest.mark.parametrize("kind", ["SinGAN", "hyper-GAN"])
def test_super_resolution_and_paint(chains, kind):
    c = chains[kind]
    lo = resize_to(stripes(), (12, 16))
    sr = A.super_resolve(c, lo, 2.0, torch.Generator().manual_seed(0))
    assert sr.shape == (1, 3, 24, 32) and sr.abs().max() <= 1
    out = A.paint_to_image(c, quantize_paint(stripes(), 4))
    assert out.shape == (1, 3, *c.shapes[-1])
    with pytest.raises(ConfigError, match="factor must be a number > 1"):
        A.super_resolve(c, lo, 1.0)


def test_animation_gif_has_the_requested_frames(chains, tmp_path):
    frames = A.animate(chains["SinGAN"], n_frames=7, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (7, 3, 24, 32)
    ch = A.frame_changes(frames)
    assert ch["frame change"] > 0 and ch["drift max"] >= ch["drift last"] >= 0
    path = A.save_gif(frames, tmp_path / "anim.gif")
    with Image.open(path) as im:
        assert im.n_frames == 7 and im.size == (32, 24)


def test_region_swd_is_zero_for_a_statistically_uniform_image_and_large_for_a_paste():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 40, 40, generator=g) * 2 - 1
    half = torch.zeros(1, 40, 40)
    half[:, :, :20] = 1
    flat = noise.clone()
    flat[:, 10:30, 10:30] = 0.3                                        # a flat pasted square
    box = torch.zeros(1, 40, 40)
    box[:, 10:30, 10:30] = 1
    assert A.region_swd(noise, half) < 0.3 * A.region_swd(flat, box)


@pytest.mark.parametrize("kind", ["SinGAN", "hyper-GAN"])
def test_run_all_gives_every_application_a_number(chains, kind):
    pics, rows = A.run_all(chains[kind], stripes(48, 64), blob(), n_frames=4)
    assert [r["application"] for r in rows] == ["harmonization", "editing", "paint-to-image",
                                                "super-resolution", "super-resolution",
                                                "animation"]
    assert all(np.isfinite(r["input"]) and np.isfinite(r["output"]) for r in rows)
    assert all(r["model"] == kind for r in rows)
    shape = (3, *chains[kind].shapes[-1])
    assert pics["harmonized"].shape == shape
    h, w = chains[kind].shapes[-1]                   # SR goes beyond the training size, ×2
    assert pics["super-resolved"].shape == pics["high-res truth"].shape == (3, 2 * h, 2 * w)
    assert rows[4]["measure"].startswith("RMSE") and rows[4]["input"] > 0
    assert pics["frames"].shape[0] == 4
    harm = rows[0]
    assert harm["input"] > 0                         # a naive paste differs from its background


def test_super_resolution_needs_a_ground_truth_at_the_higher_resolution(chains):
    """SR is measured against the photo itself at sr_factor × the training size: a photo no
    larger than the training view has no such truth, and says so."""
    with pytest.raises(DataError, match="no ground truth at that resolution"):
        A.run_all(chains["SinGAN"], stripes(), blob(), n_frames=2)
    with pytest.raises(ConfigError, match="factor must be a positive number"):
        A.training_view(chains["SinGAN"], stripes(), factor="2")


def test_singan_inject_is_the_applications_inject(chains):
    """One definition of injection: SinGAN.inject and applications.inject agree exactly for
    the same generator (image resized to scale s − 1, noise drawn for scales s … N)."""
    sg_chain = chains["SinGAN"]
    model = sg_chain.run.__self__                     # the SinGAN behind the chain
    for s in range(1, sg_chain.n_scales):
        a = model.inject(blob(), s, 2, generator=torch.Generator().manual_seed(3))
        b = A.inject(sg_chain, blob(), s, 2, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(a, b)


def test_patch_swd_compares_images_of_any_size_by_their_patch_statistics():
    x = stripes(24, 32)
    assert A.patch_swd(x, x) == pytest.approx(0.0, abs=1e-9)
    tiled = torch.cat([x, x], dim=-1)                           # 1 × 2, the same patches and a seam
    assert A.patch_swd(x, tiled) < 0.2 * A.patch_swd(x, blob(24, 64))
    with pytest.raises(DataError, match="at least 7 px"):
        A.patch_swd(x, torch.zeros(3, 5, 40))
