"""SinGAN baseline: building blocks, residual multi-scale generation, training, injection,
freezing, checkpoints and input validation (mil_core.models.blocks / mil_core.models.singan)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mil_core.checkpoint import save_checkpoint
from mil_core.data.pyramid import PyramidConfig
from mil_core.errors import CheckpointError, ConfigError, DataError
from mil_core.models import (FiveLayerNet, SinGAN, SinGANConfig, channels_at_scale, init_weights,
                             pad_for, train_singan, upsample, zero_pad)
from mil_core.models.singan import CHECKPOINT_NAME


def synthetic_image(h: int = 24, w: int = 32) -> torch.Tensor:
    """(3, h, w) in [-1, 1] with structure: horizontal stripes, a vertical ramp, diagonal bars."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    red = 0.8 * torch.sin(6 * xx)
    green = 0.9 * yy
    blue = 0.6 * torch.sign(torch.sin(5 * (xx + yy)))
    return torch.stack([red, green, blue]).clamp(-1, 1)


def blob_image(h: int = 24, w: int = 32) -> torch.Tensor:
    """An unrelated (3, h, w) image: a bright off-centre disc on a dark, differently coloured
    background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    disc = ((xx - 0.4) ** 2 + (yy + 0.3) ** 2 < 0.3).float()
    return torch.stack([disc * 1.6 - 0.8, 0.7 - disc * 1.4, disc * 0.5 - 0.9]).clamp(-1, 1)


def tiny_config(iters: int = 150) -> SinGANConfig:
    # 24×32 image → 3 scales: 12×16, 17×23, 24×32
    return SinGANConfig(pyramid=PyramidConfig(scale_factor=0.5, min_size=12, max_size=32),
                        channels=8, iters_per_scale=iters, steps_d=1, steps_g=1)


@pytest.fixture(scope="module")
def trained():
    """A SinGAN trained briefly (3 scales × 150 iterations) plus snapshots taken at the end of
    every scale (to check that finished scales stay frozen)."""
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(model: SinGAN, n: int) -> None:
        snapshots[n] = {k: v.clone() for k, v in model.generators[0].state_dict().items()}
        snapshots[n].update({f"D.{k}": v.clone()
                             for k, v in model.discriminators[0].state_dict().items()})

    model = train_singan(synthetic_image(), tiny_config(), seed=0, device="cpu",
                         show_progress=False, log_every=10, callback=snapshot)
    return model, snapshots


# --- building blocks -----------------------------------------------------------------------
def test_five_layer_net_shapes_without_padding():
    g = FiveLayerNet(3, 8, 3, tail="tanh")
    d = FiveLayerNet(3, 8, 1, tail="none")
    x = torch.randn(2, 3, 30, 41)
    assert g(x).shape == (2, 3, 20, 31)
    assert d(x).shape == (2, 1, 20, 31)
    assert g(x).abs().max() <= 1.0                       # tanh tail
    assert pad_for(g) == 5 and pad_for(d) == 5
    assert g(zero_pad(x, pad_for(g))).shape == x.shape   # pad once by 5 px: same size out
    assert upsample(torch.zeros(1, 3, 12, 16), (17, 23)).shape == (1, 3, 17, 23)
    with pytest.raises(ValueError):
        FiveLayerNet(3, 8, 3, tail="relu")


def test_init_weights_statistics():
    net = init_weights(FiveLayerNet(3, 64, 3), torch.Generator().manual_seed(0))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 5 and len(bns) == 4
    w = torch.cat([c.weight.flatten() for c in convs[1:4]])   # 3 body convs: 110k numbers
    assert abs(w.mean().item()) < 1e-3
    assert abs(w.std().item() - 0.02) < 1e-3
    g = torch.cat([b.weight for b in bns])
    assert abs(g.mean().item() - 1.0) < 0.01 and 0.01 < g.std().item() < 0.03
    assert all(c.bias.abs().max() == 0 for c in convs)
    assert all(b.bias.abs().max() == 0 for b in bns)
    # seeded: the same generator seed gives the same weights
    other = init_weights(FiveLayerNet(3, 64, 3), torch.Generator().manual_seed(0))
    assert torch.equal(net.head[0].weight, other.head[0].weight)


def test_stream_seed_is_a_32_bit_hash_shared_with_the_hyper_gan():
    from mil_core.models import hypergan_train
    from mil_core.models.blocks import stream_seed
    seeds = [stream_seed(s) for s in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= v < 2 ** 32 for v in seeds)
    assert all(v != s for s, v in enumerate(seeds))
    # the hyper-GAN's stream as before the helper was shared (seeded golden values)
    assert seeds[:3] == [2654435769, 1013904234, 3668339995]
    assert hypergan_train._stream_seed is stream_seed


def test_channels_at_scale():
    assert [channels_at_scale(n) for n in range(12)] == [32] * 4 + [64] * 4 + [128] * 4
    assert channels_at_scale(20) == 128
    assert [channels_at_scale(n, base=8, max_channels=16) for n in (0, 3, 4, 8)] == [8, 8, 16, 16]


def test_config_from_profile():
    assert SinGANConfig.from_profile("paper") == SinGANConfig()      # official defaults
    smoke = SinGANConfig.from_profile("smoke")
    assert (smoke.channels, smoke.iters_per_scale, smoke.steps_d) == (8, 20, 1)
    assert smoke.pyramid.max_size == 32 and smoke.pyramid.n_scales is None
    assert SinGANConfig.from_profile("cpu", iters_per_scale=7).iters_per_scale == 7
    with pytest.raises(ConfigError):
        SinGANConfig.from_profile("cpu", iterations=7)
    with pytest.raises(ConfigError):
        SinGANConfig(iters_per_scale=0)
    with pytest.raises(ConfigError):
        SinGANConfig(lr_decay_at=1.5)


# --- generation ----------------------------------------------------------------------------
def test_residual_generation_shapes_at_every_scale(trained):
    model, _ = trained
    assert model.n_trained == model.n_scales == 3
    assert model.shapes == [(12, 16), (17, 23), (24, 32)]
    with torch.no_grad():
        for s, shape in enumerate(model.shapes):
            out = model._generate(model.shapes, 2, generator=torch.Generator().manual_seed(0),
                                  stop=s + 1)
            assert out.shape == (2, 3, *shape)
            rec = model._generate(model.shapes, 1, reconstruct=True, stop=s + 1)
            assert rec.shape == (1, 3, *shape)
    assert model.noise_amps[0] == 1.0 and all(0 < a < 1 for a in model.noise_amps[1:])


def test_sample_shapes_and_determinism(trained):
    model, _ = trained
    out = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 3, 24, 32)
    assert out.min() >= -1 and out.max() <= 1
    for shape in [(40, 90), (17, 51), (24, 32), (13, 13)]:
        out = model.sample(2, torch.Generator().manual_seed(0), shape=shape)
        assert out.shape == (2, 3, *shape)
    a = model.sample(2, generator=torch.Generator().manual_seed(5))
    b = model.sample(2, generator=torch.Generator().manual_seed(5))
    c = model.sample(2, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-4
    assert (a[0] - a[1]).abs().mean() > 1e-4               # samples of one batch differ too
    with pytest.raises(ConfigError):
        model.sample(1, shape=(0, 10))


def test_sampling_with_the_training_seed_does_not_replay_z_star(trained):
    # issue 10 §2A: z* was the first draw of Generator(seed), so sample 0 drawn with
    # Generator().manual_seed(seed) was the reconstruction (3/255 from the real image)
    model, _ = trained
    first = torch.randn(model.z_star.shape, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(first, model.z_star)
    rec = model.reconstruct()[0]
    own_error = (rec - model.reals[-1]).abs().mean()
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert ((samples - rec).abs().mean(dim=(1, 2, 3)) > 3 * own_error).all()


def test_training_reduces_reconstruction_error(trained):
    model, _ = trained
    finest = [r for r in model.history if r["scale"] == model.n_scales - 1]
    assert len(finest) >= 10 and finest[0]["iter"] == 0 and finest[-1]["iter"] == 149
    assert finest[-1]["rec_loss"] < 0.5 * finest[0]["rec_loss"]
    coarsest = [r for r in model.history if r["scale"] == 0]
    assert coarsest[-1]["rec_loss"] < 0.5 * coarsest[0]["rec_loss"]
    rec_mse = F.mse_loss(model.reconstruct()[0], model.reals[-1]).item()
    assert rec_mse < 0.5 * finest[0]["rec_loss"]
    assert set(model.history[0]) >= {"scale", "iter", "d_loss", "g_loss", "rec_loss",
                                     "wasserstein"}
    t = model.timings
    assert len(t["seconds_per_scale"]) == 3 and t["total_seconds"] > 0 and t["iters_per_second"] > 0


def test_injection_preserves_coarse_structure(trained):
    model, _ = trained
    injected, unrelated = blob_image(), synthetic_image()
    coarse = model.shapes[0]

    def blur(x: torch.Tensor) -> torch.Tensor:            # compare at the coarsest resolution
        return F.interpolate(x.reshape(-1, 3, *x.shape[-2:]), size=coarse, mode="area")

    out = model.inject(injected, scale=1, n=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 24, 32)
    rand = model.sample(4, generator=torch.Generator().manual_seed(0))
    d_injected = F.mse_loss(blur(out), blur(injected).expand(4, -1, -1, -1)).item()
    d_unrelated = F.mse_loss(blur(out), blur(unrelated).expand(4, -1, -1, -1)).item()
    d_random = F.mse_loss(blur(rand), blur(injected).expand(4, -1, -1, -1)).item()
    assert d_injected < 0.5 * d_unrelated
    assert d_injected < 0.5 * d_random
    with pytest.raises(ConfigError):
        model.inject(injected, scale=0)
    with pytest.raises(ConfigError):
        model.inject(injected, scale=3)
    with pytest.raises(DataError):
        model.inject(injected * 4, scale=1)


def test_earlier_scales_are_frozen(trained):
    model, snapshots = trained
    assert sorted(snapshots) == [0, 1, 2]
    final = {k: v for k, v in model.generators[0].state_dict().items()}
    final.update({f"D.{k}": v for k, v in model.discriminators[0].state_dict().items()})
    for n in (1, 2):                  # scale 0's nets (incl. BatchNorm stats) never changed
        for key, value in snapshots[0].items():
            assert torch.equal(value, snapshots[n][key]), key
    for key, value in snapshots[0].items():
        assert torch.equal(value, final[key]), key
    for net in [*model.generators, *model.discriminators]:
        assert not net.training
        assert not any(p.requires_grad for p in net.parameters())
    model.train()                     # the flag only: frozen nets stay in eval mode
    assert not any(net.training for net in model.generators)
    model.eval()


# --- persistence ---------------------------------------------------------------------------
def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    path = model.save(tmp_path / "singan.safetensors")
    loaded = SinGAN.load(path)
    assert loaded.shapes == model.shapes and loaded.noise_amps == model.noise_amps
    assert loaded.config == model.config and loaded.history == model.history
    a = model.sample(3, generator=torch.Generator().manual_seed(11))
    b = loaded.sample(3, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    assert torch.equal(model.reconstruct(), loaded.reconstruct())
    assert torch.equal(model.sample(1, torch.Generator().manual_seed(2), shape=(30, 50)),
                       loaded.sample(1, torch.Generator().manual_seed(2), shape=(30, 50)))


def test_load_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        SinGAN.load(junk)
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(CheckpointError):
        SinGAN.load(pickled)
    other = save_checkpoint(tmp_path / "other.safetensors", {"weights": torch.zeros(2)})
    with pytest.raises(CheckpointError):
        SinGAN.load(other)
    with pytest.raises(CheckpointError):
        SinGAN.load(tmp_path / "missing.safetensors")


def test_resume_equals_uninterrupted_run(tmp_path):
    img, cfg = synthetic_image(), tiny_config(iters=4)
    full = train_singan(img, cfg, seed=3, device="cpu", show_progress=False)

    class Interrupt(Exception):
        pass

    def stop_after_scale_1(model: SinGAN, n: int) -> None:
        if n == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_singan(img, cfg, seed=3, device="cpu", show_progress=False,
                     checkpoint_dir=tmp_path, callback=stop_after_scale_1)
    partial = SinGAN.load(tmp_path / CHECKPOINT_NAME)
    assert partial.n_trained == 2
    seen: list[int] = []
    resumed = train_singan(img, cfg, seed=3, device="cpu", show_progress=False,
                           checkpoint_dir=tmp_path, resume=True,
                           callback=lambda m, n: seen.append(n))
    assert seen == [2]                                   # only the missing scale was trained
    assert resumed.noise_amps == full.noise_amps
    for g_full, g_res in zip(full.generators, resumed.generators):
        for (k, a), b in zip(g_full.state_dict().items(), g_res.state_dict().values()):
            assert torch.equal(a, b), k
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(full.sample(2, generator=gen),
                       resumed.sample(2, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(CheckpointError):                 # another seed: refuse to mix runs
        train_singan(img, cfg, seed=4, device="cpu", show_progress=False,
                     checkpoint_dir=tmp_path, resume=True)


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("image, error", [
    (torch.zeros(1, 24, 32), DataError),                   # not 3 channels
    (torch.zeros(1, 3, 24, 32), DataError),                # a batch, not one image
    (torch.full((3, 24, 32), 200.0), DataError),           # [0, 255], not [-1, 1]
    (torch.zeros(3, 24, 32, dtype=torch.uint8), DataError),
    (torch.full((3, 24, 32), float("nan")), DataError),
    (torch.zeros(3, 10, 32), DataError),                   # short side below min_size=12
    ("image.png", DataError),
])
def test_bad_input_fails_before_training(monkeypatch, image, error):
    def no_training(*args, **kwargs):
        raise AssertionError("training started despite bad input")
    monkeypatch.setattr("mil_core.models.singan._train_scale", no_training)
    with pytest.raises(error):
        train_singan(image, tiny_config(), device="cpu", show_progress=False)


def test_bad_config_fails_before_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started despite a bad config")
    monkeypatch.setattr("mil_core.models.singan._train_scale", no_training)
    cfg = tiny_config()
    cfg.steps_g = 0                                        # mutated after construction
    with pytest.raises(ConfigError):
        train_singan(synthetic_image(), cfg, device="cpu", show_progress=False)
    with pytest.raises(ConfigError):
        train_singan(synthetic_image(), {"iters_per_scale": 3}, device="cpu")
    with pytest.raises(ConfigError):
        train_singan(synthetic_image(), tiny_config(), device="cpu", log_every=0)


def test_reconstruct_at_every_scale_both_baselines():
    from mil_core.models import ConSinGANConfig, train_consingan
    from mil_core.profiles import get_profile

    img = torch.linspace(-1, 1, 24 * 32).reshape(1, 24, 32).repeat(3, 1, 1)
    prof = get_profile("smoke", **{"gan.iters_per_scale": 2})
    for model in (train_singan(img, SinGANConfig.from_profile(prof), show_progress=False),
                  train_consingan(img, ConSinGANConfig.from_profile(prof), show_progress=False)):
        recs = [model.reconstruct(scale=s) for s in range(len(model.shapes))]
        assert [tuple(r.shape[-2:]) for r in recs] == [tuple(s) for s in model.shapes]
        assert torch.equal(recs[-1], model.reconstruct())
        with pytest.raises(ConfigError, match="scale"):
            model.reconstruct(scale=len(model.shapes))


# --- no silent overwrite -------------------------------------------------------------------
def _sha256(path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_run_into_a_checkpoint_dir_needs_resume_or_overwrite(tmp_path, monkeypatch):
    from mil_core.checkpoint import load_checkpoint

    img, cfg = synthetic_image(), tiny_config(iters=2)
    train_singan(img, cfg, seed=3, device="cpu", show_progress=False, checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    before = _sha256(path)
    with pytest.raises(CheckpointError) as info:
        train_singan(img, cfg, seed=4, device="cpu", show_progress=False,
                     checkpoint_dir=tmp_path)
    assert all(w in str(info.value) for w in (str(path), "resume", "overwrite"))
    assert _sha256(path) == before
    with pytest.raises(ConfigError, match="resume=True and overwrite=True"):
        train_singan(img, cfg, seed=3, device="cpu", show_progress=False,
                     checkpoint_dir=tmp_path, resume=True, overwrite=True)
    assert _sha256(path) == before

    # overwrite=True keeps the old file until the first new scale is saved ...
    def fail(*args, **kwargs):
        raise RuntimeError("stopped before the first scale was finished")
    with monkeypatch.context() as m:
        m.setattr("mil_core.models.singan._train_scale", fail)
        with pytest.raises(RuntimeError, match="stopped"):
            train_singan(img, cfg, seed=4, device="cpu", show_progress=False,
                         checkpoint_dir=tmp_path, overwrite=True)
    assert _sha256(path) == before
    # ... and then replaces it
    train_singan(img, cfg, seed=4, device="cpu", show_progress=False, checkpoint_dir=tmp_path,
                 overwrite=True)
    assert _sha256(path) != before and load_checkpoint(path)["extra"]["seed"] == 4
