"""HP-VAE-GAN baseline (mil_core.models.hpvaegan / hpvaegan_train): config, KL, shapes, the VAE
fit, diversity against SinGAN, checkpoints, exact resume, input validation and the NaN stop."""
import math

import pytest
import torch
import torch.nn.functional as F

from mil_core.checkpoint import checkpoint_metadata, load_checkpoint
from mil_core.data.pyramid import PyramidConfig, pyramid_shapes
from mil_core.errors import CheckpointError, ConfigError, DataError, TrainingError
from mil_core.metrics.diversity import diversity
from mil_core.models import (HPVAEGAN, HPVAEGANConfig, SinGANConfig, kl_divergence,
                             train_hpvaegan, train_singan)
from mil_core.models import hpvaegan_train as ht
from mil_core.models.hpvaegan import CHECKPOINT_NAME
from mil_core.profiles import get_profile

H, W = 24, 32
PYRAMID = dict(scale_factor=0.5, min_size=12, max_size=32)   # 3 scales: 12×16, 17×23, 24×32


def synthetic_image(h: int = H, w: int = W) -> torch.Tensor:
    """(3, h, w) in [-1, 1]: stripes, a ramp and diagonal bars (as tests/test_singan.py)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([0.8 * torch.sin(6 * xx), 0.9 * yy,
                        0.6 * torch.sign(torch.sin(5 * (xx + yy)))]).clamp(-1, 1)


def tiny_cfg(**kw) -> HPVAEGANConfig:
    base = dict(pyramid=PyramidConfig(**PYRAMID), vae_levels=2, latent_dim=8, channels=8,
                hidden_layers=3, iters_per_scale=150)
    return HPVAEGANConfig(**{**base, **kw})


def _quick(**kw):
    return dict(seed=3, device="cpu", show_progress=False, log_every=1, **kw)


@pytest.fixture(scope="module")
def trained() -> HPVAEGAN:
    return train_hpvaegan(synthetic_image(), tiny_cfg(), seed=0, device="cpu",
                          show_progress=False, log_every=10)


# --- config and profiles ----------------------------------------------------------------------
def test_paper_profile_carries_the_official_settings():
    cfg = HPVAEGANConfig.from_profile("paper")
    assert cfg == HPVAEGANConfig()
    assert (cfg.vae_levels, cfg.latent_dim, cfg.enc_blocks, cfg.channels, cfg.hidden_layers) == (
        3, 128, 2, 64, 5)
    assert (cfg.rec_weight, cfg.kl_weight, cfg.lambda_grad, cfg.noise_amp_factor) == (
        10.0, 1.0, 0.1, 0.1)
    assert (cfg.lr_g, cfg.lr_d, cfg.betas, cfg.lr_scale, cfg.train_depth) == (
        5e-4, 5e-4, (0.5, 0.999), 0.2, 1)
    assert (cfg.grad_clip, cfg.batch_size, cfg.iters_per_scale) == (5.0, 2, 50_000)
    p = cfg.pyramid
    assert (p.scale_factor, p.min_size, p.max_size) == (0.75, 32, 256)


def test_cpu_and_smoke_profiles_match_singans_budget():
    for name in ("cpu", "smoke"):
        hp, sg, prof = (HPVAEGANConfig.from_profile(name), SinGANConfig.from_profile(name),
                        get_profile(name))
        assert hp.iters_per_scale == sg.iters_per_scale == prof.gan.iters_per_scale
        assert hp.channels == sg.channels
        assert (hp.pyramid.min_size, hp.pyramid.max_size) == (sg.pyramid.min_size,
                                                              sg.pyramid.max_size)
    cfg = HPVAEGANConfig.from_profile("cpu", iters_per_scale=7, vae_levels=2)
    assert (cfg.iters_per_scale, cfg.vae_levels) == (7, 2)
    with pytest.raises(ConfigError, match="iters_per_stage"):
        HPVAEGANConfig.from_profile("cpu", iters_per_stage=7)
    assert HPVAEGANConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize("field, value", [
    ("vae_levels", 0), ("latent_dim", 2.5), ("channels", 0), ("hidden_layers", -1),
    ("lr_g", 0.0), ("lr_scale", -0.2), ("kl_weight", -1.0), ("grad_clip", float("nan")),
    ("batch_size", True), ("betas", (0.5, 1.0)), ("leaky_slope", 1.0)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        tiny_cfg(**{field: value})


def test_bad_pyramid_and_cfg_type():
    with pytest.raises(ConfigError, match="scale_factor"):
        tiny_cfg(pyramid={"scale_factor": 1.5})
    with pytest.raises(ConfigError, match="HPVAEGANConfig"):
        train_hpvaegan(synthetic_image(), SinGANConfig(), show_progress=False)


# --- the KL term ---------------------------------------------------------------------------
def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    z = torch.zeros(2, 4, 3, 5)
    assert kl_divergence(z, z).item() == 0.0
    mu = torch.tensor([1.0, 0.0, -2.0])
    logvar = torch.tensor([0.0, math.log(2.0), math.log(0.5)])
    # 0.5 (μ² + σ² − 1 − log σ²) per element, averaged
    want = (0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 2 - 1 - math.log(2))
            + 0.5 * (4 + 0.5 - 1 - math.log(0.5))) / 3
    assert kl_divergence(mu, logvar).item() == pytest.approx(want, rel=1e-6)
    assert kl_divergence(mu, logvar).item() > 0


# --- shapes and the interface ------------------------------------------------------------------
def test_shapes_at_every_scale(trained):
    shapes = pyramid_shapes(H, W, PyramidConfig(**PYRAMID))
    assert trained.shapes == shapes == [(12, 16), (17, 23), (24, 32)]
    assert trained.n_scales == trained.n_trained == trained.n_active == 3
    assert [tuple(r.shape) for r in trained.reals] == [(3, *s) for s in shapes]
    mu, logvar = trained.G.encoder(trained.real_0)
    assert mu.shape == logvar.shape == (1, 8, 12, 16)             # spatial latent
    for k, s in enumerate(shapes):
        assert trained.reconstruct(scale=k).shape == (1, 3, *s)
    assert len(trained.noise_amps) == 3 and all(a > 0 for a in trained.noise_amps)
    t = trained.timings
    assert len(t["seconds_per_scale"]) == 3 and t["total_seconds"] > 0 and t["device"] == "cpu"


@pytest.mark.parametrize("size", [None, (40, 90), (13, 17), (64, 32)])
def test_samples_of_any_size_and_aspect(trained, size):
    x = trained.sample(3, generator=torch.Generator().manual_seed(1), size=size)
    assert x.shape == (3, 3, *(size or (H, W))) and x.min() >= -1 and x.max() <= 1
    assert not torch.equal(x[0], x[1])


def test_sampling_is_seeded_and_validated(trained):
    a, b, c = (trained.sample(2, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(trained.sample(1, generator=torch.Generator().manual_seed(2), size=(9, 9)),
                       trained.sample(1, generator=torch.Generator().manual_seed(2), shape=(9, 9)))
    for bad in (dict(n=0), dict(size=(0, 10)), dict(size=(10,))):
        with pytest.raises(ConfigError):
            trained.sample(**{"n": 1, **bad})
    with pytest.raises(ConfigError, match="scale"):
        trained.reconstruct(scale=3)


def test_injection_shapes_and_errors(trained):
    out = trained.inject(synthetic_image().flip(-1), scale=1, n=2,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, H, W)
    with pytest.raises(ConfigError, match="scale"):
        trained.inject(synthetic_image(), scale=0)
    with pytest.raises(DataError):
        trained.inject(synthetic_image() * 3, scale=1)


def test_learning_rates_and_freezing():
    cfg = tiny_cfg(vae_levels=3, train_depth=2)
    model, _, gen = ht.prepare_hpvaegan(synthetic_image(), cfg, seed=0, device="cpu")
    for _ in range(4):
        model.G.grow(gen)
    lrs = {g["name"]: g["lr"] for g in ht.generator_param_groups(model.G, 2, cfg)}
    assert lrs == pytest.approx({"encoder": 5e-4 * 0.04, "decoder": 5e-4 * 0.04,
                                 "body.1": 5e-4, "body.0": 1e-4})
    lrs = {g["name"]: g["lr"] for g in ht.generator_param_groups(model.G, 3, cfg)}
    assert lrs == pytest.approx({"body.2": 5e-4})                 # the VAE stays frozen
    assert not any(p.requires_grad for p in model.G.encoder.parameters())
    assert set(g["name"] for g in ht.generator_param_groups(model.G, 4, cfg)) == {"body.3",
                                                                                    "body.2"}


# --- training behaviour ------------------------------------------------------------------------
def test_vae_reconstruction_loss_falls(trained):
    rows = [h for h in trained.history if h["scale"] == 0]
    assert rows[-1]["rec_vae"] < 0.5 * rows[0]["rec_vae"]
    assert rows[-1]["kl"] > 0                                      # the latent carries information
    gan = [h for h in trained.history if h["scale"] == 2]
    assert all(h["kl"] == 0 and h["gp"] >= 0 for h in gan)         # scale 2 is a GAN level
    assert F.mse_loss(trained.reconstruct()[0], trained.reals[-1]).item() < 0.5 * rows[0]["rec_loss"]


def test_the_prior_latent_alone_varies_the_samples(trained):
    # noise off at every finer scale: all variation comes from z ~ N(0, I) at scale 0 (§3.3)
    amps = list(trained.noise_amps)
    trained.noise_amps = [1.0] + [0.0] * (len(amps) - 1)
    try:
        x = trained.sample(8, generator=torch.Generator().manual_seed(0))
    finally:
        trained.noise_amps = amps
    assert diversity(x, trained.reals[-1]) > 0.05


@pytest.mark.xfail(strict=True, reason="measured: at SinGAN's budget HP-VAE-GAN is LESS "
                   "diverse than SinGAN (about 0.24 vs 0.62 here; notebook 01 at the cpu profile "
                   "0.30 vs 0.39). Its decoder has only seen posterior draws of the one image and "
                   "the posterior has not reached the prior yet; at 4x the steps notebook 01 "
                   "measures 0.52 vs 0.39, the paper's trade-off. On this tiny case 4x the steps "
                   "is not enough (0.27 vs 0.62; a Places photo at 40 px: 0.33 vs 0.71): "
                   "SinGAN's under-trained samples carry noise that the ruler counts as "
                   "diversity. strict: this test fails once the trend flips at this budget.")
def test_samples_are_more_diverse_than_singans():
    """HP-VAE-GAN's claim (paper §4; MIL Table 1: diversity 0.62 vs SinGAN's 0.52) at equal
    small budget: same image, iterations, channels, 1 D + 1 G step, two seeds each."""
    img, iters = synthetic_image(), 150
    sg_cfg = SinGANConfig(pyramid=PyramidConfig(**PYRAMID), channels=8, iters_per_scale=iters,
                          steps_d=1, steps_g=1)
    hp, sg = [], []
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(100 + seed)
        m = train_hpvaegan(img, tiny_cfg(iters_per_scale=iters), seed=seed, device="cpu",
                           show_progress=False)
        hp.append(diversity(m.sample(16, generator=gen), m.reals[-1]))
        s = train_singan(img, sg_cfg, seed=seed, device="cpu", show_progress=False)
        sg.append(diversity(s.sample(16, generator=gen), s.reals[-1]))
    assert sum(hp) / 2 > 1.2 * sum(sg) / 2, (hp, sg)


def test_training_is_deterministic_per_seed():
    cfg = tiny_cfg(iters_per_scale=3)
    runs = [train_hpvaegan(synthetic_image(), cfg, **{**_quick(), "seed": s}) for s in (3, 3, 4)]
    x = [m.sample(2, generator=torch.Generator().manual_seed(0)) for m in runs]
    assert torch.equal(x[0], x[1]) and not torch.equal(x[0], x[2])
    assert runs[0].history == runs[1].history


# --- persistence and exact resume --------------------------------------------------------------
def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "m.safetensors")
    loaded = HPVAEGAN.load(path)
    assert loaded.shapes == trained.shapes and loaded.noise_amps == trained.noise_amps
    assert loaded.config == trained.config and loaded.history == trained.history
    assert loaded.timings == trained.timings
    for seed in (0, 5):
        assert torch.equal(trained.sample(3, generator=torch.Generator().manual_seed(seed)),
                           loaded.sample(3, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(trained.reconstruct(), loaded.reconstruct())
    assert checkpoint_metadata(path)["kind"] == "hpvaegan"
    assert trained.state()["kind"] == "hpvaegan" and trained.state()["version"] == 1
    assert not path.read_bytes().startswith(b"\x80")              # not a pickle
    with pytest.raises(CheckpointError, match="not an HP-VAE-GAN checkpoint"):
        from mil_core.checkpoint import save_checkpoint
        HPVAEGAN.load(save_checkpoint(tmp_path / "w", {"kind": "singan"}))


class _Interrupt(Exception):
    pass


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    img, cfg = synthetic_image(), tiny_cfg(iters_per_scale=4)
    full = train_hpvaegan(img, cfg, **_quick(checkpoint_dir=tmp_path / "a"))

    def stop(model, n):
        if n == 1:                                   # after the second VAE level
            raise _Interrupt
    with pytest.raises(_Interrupt):
        train_hpvaegan(img, cfg, **_quick(checkpoint_dir=tmp_path / "b", callback=stop))
    assert HPVAEGAN.load(tmp_path / "b" / CHECKPOINT_NAME).n_trained == 2
    seen: list[int] = []
    resumed = train_hpvaegan(img, cfg, **_quick(checkpoint_dir=tmp_path / "b", resume=True,
                                                callback=lambda m, n: seen.append(n)))
    assert seen == [2]
    a, b = dict(full.named_parameters()), dict(resumed.named_parameters())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.noise_amps == full.noise_amps and resumed.history == full.history
    assert torch.equal(full.sample(2, generator=torch.Generator().manual_seed(0)),
                       resumed.sample(2, generator=torch.Generator().manual_seed(0)))
    sa = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)["extra"]
    sb = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["extra"]
    assert all(torch.equal(sa["critic"][k], sb["critic"][k]) for k in sa["critic"])


def test_resume_refuses_another_run_and_never_overwrites_silently(tmp_path):
    img, cfg = synthetic_image(), tiny_cfg(iters_per_scale=2)
    train_hpvaegan(img, cfg, **_quick(checkpoint_dir=tmp_path))
    with pytest.raises(CheckpointError, match="seed 3, not 4"):
        train_hpvaegan(img, cfg, **{**_quick(checkpoint_dir=tmp_path, resume=True), "seed": 4})
    with pytest.raises(CheckpointError, match="another HPVAEGANConfig"):
        train_hpvaegan(img, tiny_cfg(iters_per_scale=3),
                       **_quick(checkpoint_dir=tmp_path, resume=True))
    with pytest.raises(CheckpointError, match="another image"):
        train_hpvaegan(img.flip(-1), cfg, **_quick(checkpoint_dir=tmp_path, resume=True))
    with pytest.raises(CheckpointError, match="resume=True"):
        train_hpvaegan(img, cfg, **_quick(checkpoint_dir=tmp_path))


# --- bad input and divergence ------------------------------------------------------------------
@pytest.mark.parametrize("image, match", [
    (torch.zeros(1, 3, H, W), "3, H, W"), (torch.zeros(4, H, W), "3, H, W"),
    (torch.zeros(3, H, W, dtype=torch.uint8), "float"), (torch.full((3, H, W), 2.0), r"\[-1, 1\]"),
    (torch.full((3, H, W), float("nan")), "NaN"), (torch.zeros(3, 8, 9), "smaller than"),
])
def test_bad_images_raise_before_training(image, match, monkeypatch):
    def never(*a, **k):
        raise AssertionError("training started")
    monkeypatch.setattr(ht, "train_scale", never)
    with pytest.raises(DataError, match=match):
        train_hpvaegan(image, tiny_cfg(), show_progress=False)


def test_nan_loss_stops_training_and_names_the_last_checkpoint(tmp_path):
    def poison(model, n):
        if n == 0:
            with torch.no_grad():
                model.G.decoder[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="diverged at scale 1, iteration 0") as info:
        train_hpvaegan(synthetic_image(), tiny_cfg(iters_per_scale=2),
                       **_quick(checkpoint_dir=tmp_path, callback=poison))
    assert str(tmp_path / CHECKPOINT_NAME) in str(info.value)
    good = HPVAEGAN.load(tmp_path / CHECKPOINT_NAME)               # the checkpoint is intact
    assert good.n_trained == 1 and all(torch.isfinite(p).all() for p in good.parameters())
    with pytest.raises(TrainingError, match="no checkpoint was written"):
        train_hpvaegan(synthetic_image(), tiny_cfg(iters_per_scale=2), **_quick(callback=poison))
