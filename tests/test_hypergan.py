"""MIL's hyper-GAN (mil_core.models.hypergan / hypergan_train): generated shapes at every scale,
weight normalisation, progressive heads (earlier heads frozen, a new head copies the last),
learning (the reconstruction loss drops, images get their own GANs), bit-exact resume, a clean
stop on NaN, input validation, determinism, the batch sampler, the encoder's normalisation,
persistence, the shared critic and the accumulated reconstruction loss (DDP:
tests/test_hypergan_ddp.py).

Everything runs the ``smoke`` profile (3 scales, 32 px, 8 channels, embed 16, resnet-small) on
tiny images; the one longer run (300 steps) is a module fixture shared by several tests."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import pytest
import torch
import torch.nn.functional as F

from mil_core.checkpoint import load_checkpoint
from mil_core.data.pyramid import PyramidConfig
from mil_core.errors import CheckpointError, ConfigError, DataError, TrainingError
from mil_core.models import SinGANConfig, train_singan
from mil_core.models.hypergan import (HyperGAN, HyperGANConfig, SharedDiscriminator,
                                      canonical_shapes)
from mil_core.models.hypergan_train import CHECKPOINT_NAME, BatchSampler, train_hypergan

FIXTURE_ITERS = 100          # steps per scale of the shared run (3 scales: 300 steps)


def stripes(h: int = 40, w: int = 52) -> torch.Tensor:
    """(3, h, w) in [-1, 1]: sine stripes, a vertical ramp and diagonal bars."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([0.8 * torch.sin(6 * xx), 0.9 * yy,
                        0.6 * torch.sign(torch.sin(5 * (xx + yy)))]).clamp(-1, 1)


def blob(h: int = 44, w: int = 60) -> torch.Tensor:
    """An unrelated (3, h, w) image: a bright off-centre disc on a dark, coloured background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    disc = ((xx - 0.3) ** 2 + (yy + 0.2) ** 2 < 0.35).float()
    return torch.stack([disc * 1.6 - 0.8, 0.7 - disc * 1.4, disc * 0.5 - 0.9]).clamp(-1, 1)


def noise_image(seed: int, h: int = 40, w: int = 52) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def smoke(regime: str = "minibatch", n_images: int = 2, **overrides) -> HyperGANConfig:
    return HyperGANConfig.from_profile("smoke", regime, n_images, **overrides)


def train(images, cfg, **kwargs) -> HyperGAN:
    return train_hypergan(images, cfg, show_progress=False, device="cpu", **kwargs)


def params_equal(a: HyperGAN, b: HyperGAN) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def trained():
    """Two different images, mini-batch regime, 3 scales × 100 steps (~20 s on 2 cores), with
    snapshots of every head after its scale, the distance of each new head from its parent
    after its first step, and the model's partial outputs after each scale."""
    images = [stripes(), blob()]
    originals = [img.clone() for img in images]
    cfg = smoke(iters_per_scale=FIXTURE_ITERS)
    info: dict = {"heads": {}, "encoder": {}, "new_head_delta": {}, "partial": {}}

    def on_scale(model: HyperGAN, n: int) -> None:
        info["heads"][n] = {k: v.clone() for k, v in model.G.heads[n].state_dict().items()}
        info["encoder"][n] = {k: v.clone() for k, v in model.G.encoder.state_dict().items()}
        e = model.embed(images)
        info["partial"][n] = (model.n_trained, len(model.generator_weights(e)),
                              tuple(model.reconstruct(images).shape))

    def on_step(model: HyperGAN, step: int) -> None:
        k = len(model.G.heads)
        if k >= 2 and k - 1 not in info["new_head_delta"]:  # first step of scale k−1
            new, old = model.G.heads[k - 1].state_dict(), model.G.heads[k - 2].state_dict()
            info["new_head_delta"][k - 1] = max((new[n] - old[n]).abs().max().item()
                                                for n in new)

    model = train(images, cfg, seed=0, step_callback=on_step, scale_callback=on_scale)
    return model, images, originals, info


# --- 2. shapes ---------------------------------------------------------------------------
def test_config_from_smoke_profile():
    cfg = smoke(n_images=2)
    assert cfg.pyramid.n_scales == 3 and cfg.pyramid.max_size == 32
    assert (cfg.channels, cfg.embed_dim, cfg.backbone) == (8, 16, "resnet-small")
    assert cfg.batch_size == 2 and cfg.discriminator == "hyper"
    assert smoke("single", 1).discriminator == "shared"
    assert smoke("dataset", 5).batch_size == 2               # the profile's batch, not n_images
    assert canonical_shapes(cfg.pyramid) == [(12, 16), (17, 23), (24, 32)]
    assert HyperGANConfig(**cfg.to_dict()) == cfg


def test_generation_shapes_at_every_scale(trained):
    model, images, _, info = trained
    assert model.n_trained == model.n_scales == 3
    assert model.shapes == [(12, 16), (17, 23), (24, 32)]
    # partial models (seen in scale_callback): n+1 scales of weights, reconstructions at shapes[n]
    assert info["partial"] == {n: (n + 1, n + 1, (2, 3, *model.shapes[n])) for n in range(3)}
    e = model.embed(images)
    assert e.shape == (2, 16)
    weights = model.generator_weights(e)
    assert len(weights) == 3
    for scale in weights:
        assert [tuple(w.shape) for w, _ in scale] == [(2, 8, 3, 3, 3), (2, 8, 8, 3, 3),
                                                      (2, 8, 8, 3, 3), (2, 8, 8, 3, 3),
                                                      (2, 3, 8, 3, 3)]
        assert [tuple(b.shape) for _, b in scale] == [(2, 8)] * 4 + [(2, 3)]
        assert not any(w.requires_grad for w, _ in scale)
    assert len(model.generator_weights(e, stop=1)) == 1
    out = model.generate(images, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 3, 24, 32)
    assert out.min() >= -1 and out.max() <= 1
    assert (out[:, 0] - out[:, 1]).abs().mean() > 1e-3      # samples of one image differ
    for size in [(30, 50), (17, 17), (24, 32)]:
        assert model.generate(images, size=size).shape == (2, 1, 3, *size)
    for s in range(3):
        assert model.reconstruct(images, scale=s).shape == (2, 3, *model.shapes[s])
    assert torch.equal(model.reconstruct(images), model.reconstruct(images, scale=2))
    # embeddings are an equivalent input
    g = torch.Generator()
    assert torch.equal(model.generate(images, 2, generator=g.manual_seed(4)),
                       model.generate(embeddings=e, n_samples=2, generator=g.manual_seed(4)))
    assert torch.equal(model.reconstruct(images), model.reconstruct(embeddings=e))
    assert model.head_parameters() == [(8 * 3 * 9 + 3 * 8 * 8 * 9 + 3 * 8 * 9 + 4 * 8 + 3) * 17] * 3


def test_model_weights_are_normalised_head_outputs(trained):
    # generator_weights == raw head output / sqrt(in·9) · gain (LeakyReLU, then 5/3 tanh tail)
    model, images, _, _ = trained
    e = model.embed(images)
    leaky = math.sqrt(2.0 / (1.0 + 0.02 ** 2))
    for s, scale in enumerate(model.generator_weights(e)):
        head = model.G.heads[s]
        for i, ((w, b), (out, inp)) in enumerate(zip(scale, model.config.g_spec.layer_shapes)):
            gain = leaky if i < 4 else 5.0 / 3.0
            with torch.no_grad():
                raw_w = head.weight_heads[i](e).reshape(2, out, inp, 3, 3)
                raw_b = head.bias_heads[i](e)
            torch.testing.assert_close(w, raw_w * gain / math.sqrt(inp * 9))
            torch.testing.assert_close(b, raw_b / math.sqrt(inp))


# --- 4. progressive heads ----------------------------------------------------------------
def test_earlier_heads_are_frozen_and_encoder_keeps_training(trained):
    model, _, _, info = trained
    assert sorted(info["heads"]) == [0, 1, 2]
    for n, snap in info["heads"].items():                    # head n never moves after scale n
        final = model.G.heads[n].state_dict()
        for key, value in snap.items():
            assert torch.equal(value, final[key]), (n, key)
    enc0, enc_final = info["encoder"][0], model.G.encoder.state_dict()
    assert any(not torch.equal(v, enc_final[k]) for k, v in enc0.items())   # shared encoder
    assert not any(torch.equal(a, b) for a, b in zip(model.G.heads[0].parameters(),
                                                     model.G.heads[1].parameters()))
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_new_head_starts_as_copy_of_previous(trained):
    # after its first Adam step (|update| <= lr elementwise) head n+1 is still within lr of head n
    model, _, _, info = trained
    lr = model.config.lr_g
    assert sorted(info["new_head_delta"]) == [1, 2]
    for delta in info["new_head_delta"].values():
        assert 0 < delta <= lr * 1.01


def test_add_head_copies_state_without_sharing():
    model = HyperGAN(smoke())
    first = model.G.add_head()
    with torch.no_grad():
        first.weight_heads[0].weight.add_(1.0)
    second = model.G.add_head()
    assert len(model.G.heads) == 2
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k
    with torch.no_grad():
        second.bias_heads[4].bias.add_(1.0)                  # a copy, not shared parameters
    assert not torch.equal(first.bias_heads[4].bias, second.bias_heads[4].bias)


# --- 5./6. learning ----------------------------------------------------------------------
def test_training_reduces_reconstruction_loss(trained):
    model, images, _, _ = trained
    rows = [r for r in model.history if r["scale"] == 0]
    assert rows[0]["iter"] == 0 and rows[-1]["iter"] == FIXTURE_ITERS - 1
    assert rows[-1]["rec_loss"] < 0.5 * rows[0]["rec_loss"]
    finest = [r for r in model.history if r["scale"] == 2]
    assert finest[-1]["rec_loss"] < 0.5 * rows[0]["rec_loss"]
    assert set(model.history[0]) >= {"scale", "iter", "step", "d_loss", "g_loss", "g_adv",
                                     "rec_loss", "wasserstein", "gp", "embed_norm", "noise_amp",
                                     "lr"}
    assert [r["step"] for r in model.history] == sorted(r["step"] for r in model.history)
    reals = model.pyramid(images)[-1]
    assert F.mse_loss(model.reconstruct(images), reals).item() < 0.5 * rows[0]["rec_loss"]
    assert model.noise_amps[0] == 1.0 and all(0 < a < 1 for a in model.noise_amps[1:])
    t = model.timings
    assert len(t["seconds_per_scale"]) == 3 and t["n_images"] == 2 and t["world_size"] == 1


def test_each_image_gets_its_own_gan(trained):
    # the model is conditioned: reconstructions differ and each resembles its own image
    model, images, _, _ = trained
    rec = model.reconstruct(images)
    reals = model.pyramid(images)[-1]
    assert (rec[0] - rec[1]).abs().mean() > 0.2
    for i, j in ((0, 1), (1, 0)):
        own = F.mse_loss(rec[i], reals[i]).item()
        other = F.mse_loss(rec[i], reals[j]).item()
        assert own < 0.25 * other, (i, own, other)
    # and the reconstruction of one image does not depend on the other being in the batch
    torch.testing.assert_close(model.reconstruct(images[1:]), rec[1:], atol=1e-5, rtol=1e-5)


def test_sampling_with_the_training_seed_does_not_replay_z_star(trained):
    # the training noise stream is offset from the seed: sampling with Generator(seed) must not
    # reuse z* (which made "sample 0" of the first image its reconstruction)
    model, images, _, _ = trained
    n0 = model.shapes[0]
    first = torch.randn(1, 3, *n0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(first, model.z_star)
    sample = model.generate(images[:1], 1, generator=torch.Generator().manual_seed(0))[0, 0]
    rec = model.reconstruct(images[:1])[0]
    assert (sample - rec).abs().mean() > 1e-3


def test_user_images_are_not_modified(trained):
    _, images, originals, _ = trained
    for img, orig in zip(images, originals):
        assert torch.equal(img, orig)


# --- persistence -------------------------------------------------------------------------
def test_save_load_round_trip(trained, tmp_path):
    model, images, _, _ = trained
    loaded = HyperGAN.load(model.save(tmp_path / "mil.safetensors"))
    assert params_equal(model, loaded)
    assert loaded.config == model.config and loaded.shapes == model.shapes
    assert loaded.noise_amps == model.noise_amps and loaded.history == model.history
    assert loaded.n_trained == 3 and not loaded.training
    g = torch.Generator()
    a = model.generate(images, 2, generator=g.manual_seed(9))
    assert torch.equal(a, loaded.generate(images, 2, generator=g.manual_seed(9)))
    assert torch.equal(a, model.generate(images, 2, generator=g.manual_seed(9)))   # seeded
    assert (a - model.generate(images, 2, generator=g.manual_seed(10))).abs().mean() > 1e-3
    assert torch.equal(model.reconstruct(images), loaded.reconstruct(images))
    assert torch.equal(model.generate(images, size=(20, 40), generator=g.manual_seed(1)),
                       loaded.generate(images, size=(20, 40), generator=g.manual_seed(1)))


def test_singan_checkpoint_is_not_a_hypergan(tmp_path):
    cfg = SinGANConfig(pyramid=PyramidConfig(scale_factor=0.5, min_size=12, max_size=24),
                       channels=8, iters_per_scale=1)
    path = train_singan(stripes(24, 32), cfg, show_progress=False).save(tmp_path / "s.safetensors")
    with pytest.raises(CheckpointError, match="HyperGAN"):
        HyperGAN.load(path)
    with pytest.raises(CheckpointError):
        HyperGAN.load(tmp_path / "missing.safetensors")


# --- 7. DDP: tests/test_hypergan_ddp.py ------------------------------------------------


# --- 8./9. checkpoints, resume, NaN ------------------------------------------------------
class Interrupt(Exception):
    pass


def _resume_setup():
    # dataset regime: 3 images, batches of 2 (the sampler's permutation state matters),
    # 3 scales × 4 steps, checkpoints at steps 5 and 10 plus after every scale (4, 8, 12)
    images = [stripes(), blob(), noise_image(0)]
    cfg = smoke("dataset", 3, iters_per_scale=4, batch_size=2, checkpoint_every=5, log_every=1)
    return images, cfg


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    images, cfg = _resume_setup()
    full = train(images, cfg, seed=5, checkpoint_dir=tmp_path / "a")

    def stop_at_7(model: HyperGAN, step: int) -> None:
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(images, cfg, seed=5, checkpoint_dir=tmp_path / "b", step_callback=stop_at_7)
    ckpt = tmp_path / "b" / CHECKPOINT_NAME
    assert load_checkpoint(ckpt)["extra"]["step"] == 5    # mid scale 1, with Adam's state
    seen: list[int] = []
    resumed = train(images, cfg, seed=5, checkpoint_dir=tmp_path / "b", resume=True,
                    step_callback=lambda m, s: seen.append(s))
    assert seen == list(range(6, 13))                      # only the missing steps ran
    assert params_equal(full, resumed)
    assert resumed.noise_amps == full.noise_amps
    assert resumed.history == full.history
    assert torch.equal(resumed.z_star, full.z_star)
    # resuming a finished run trains nothing and returns the same model
    again = train(images, cfg, seed=5, checkpoint_dir=tmp_path / "b", resume=True,
                  step_callback=lambda m, s: seen.append(s))
    assert seen == list(range(6, 13)) and params_equal(full, again)
    # a checkpoint is never mixed with another run
    with pytest.raises(CheckpointError, match="seed"):
        train(images, cfg, seed=6, checkpoint_dir=tmp_path / "b", resume=True)
    other_cfg = smoke("dataset", 3, iters_per_scale=4, batch_size=2, checkpoint_every=5,
                      log_every=1, alpha=10.0)
    with pytest.raises(CheckpointError, match="HyperGANConfig"):
        train(images, other_cfg, seed=5, checkpoint_dir=tmp_path / "b", resume=True)
    with pytest.raises(CheckpointError, match="other images"):
        train([stripes(), blob(), noise_image(1)], cfg, seed=5, checkpoint_dir=tmp_path / "b",
              resume=True)


def _sha256(path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_run_into_a_checkpoint_dir_needs_resume_or_overwrite(tmp_path):
    images, _ = _resume_setup()
    cfg = smoke("dataset", 3, iters_per_scale=2, batch_size=2, log_every=1)
    train(images, cfg, seed=5, checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    before = _sha256(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()     # ordinary file mode
    with pytest.raises(CheckpointError) as info:
        train(images, cfg, seed=6, checkpoint_dir=tmp_path)
    assert all(w in str(info.value) for w in (str(path), "resume", "overwrite"))
    with pytest.raises(ConfigError, match="resume=True and overwrite=True"):
        train(images, cfg, seed=5, checkpoint_dir=tmp_path, resume=True, overwrite=True)
    assert _sha256(path) == before
    # a run that diverges at once with overwrite=True does not call the old file "last good"
    def poison(model: HyperGAN, step: int) -> None:
        with torch.no_grad():
            model.G.encoder.fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="no checkpoint was written"):
        train(images, cfg, seed=6, checkpoint_dir=tmp_path, overwrite=True, step_callback=poison)
    assert _sha256(path) == before
    train(images, cfg, seed=6, checkpoint_dir=tmp_path, overwrite=True)
    assert _sha256(path) != before and load_checkpoint(path)["extra"]["seed"] == 6


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_command_line_errors_are_one_line(tmp_path):
    """The training CLI: a bad folder, then a second run into a finished run's folder, each end
    in one ``error:`` line and a non-zero status; ``--debug`` shows the traceback."""
    env = {**os.environ, "MIL_OFFLINE": "1", "MIL_PROGRESS": "0"}
    env.pop("MIL_DEBUG", None)
    base = [sys.executable, "-m", "mil_core.models.hypergan_train", "--profile", "smoke",
            "--set", "iters_per_scale=1", "--threads", "1", "--out", str(tmp_path / "run")]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env,
                              timeout=180)

    def one_line(res: subprocess.CompletedProcess) -> str:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        assert lines[0].startswith("error:") and "Traceback" not in res.stderr
        return lines[0]

    assert "does not exist" in one_line(cli("--images", str(tmp_path / "nothere")))
    debug = cli("--images", str(tmp_path / "nothere"), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    ok = cli("--images", "bundled", "--limit", "2")
    assert ok.returncode == 0, ok.stderr[-2000:]
    path = tmp_path / "run" / CHECKPOINT_NAME
    before = _sha256(path)
    line = one_line(cli("--images", "bundled", "--limit", "2"))
    assert str(path) in line and "--resume" in line and "--overwrite" in line
    assert _sha256(path) == before
    assert cli("--images", "bundled", "--limit", "2", "--overwrite").returncode == 0


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    images, cfg = _resume_setup()

    def poison(model: HyperGAN, step: int) -> None:
        if step == 6:                                      # after the step-5 checkpoint
            with torch.no_grad():
                model.G.encoder.fc.weight.fill_(float("nan"))

    ckpt = tmp_path / CHECKPOINT_NAME
    with pytest.raises(TrainingError) as err:
        train(images, cfg, seed=1, checkpoint_dir=tmp_path, step_callback=poison)
    assert str(ckpt) in str(err.value)
    assert "step 7" in str(err.value)
    model = HyperGAN.load(ckpt)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(b).all() for b in model.buffers())
    assert load_checkpoint(ckpt)["extra"]["step"] == 5
    assert model.n_trained == 1 and len(model.G.heads) == 2


def test_nan_without_checkpoint_dir_says_so():
    images, cfg = _resume_setup()

    def poison(model: HyperGAN, step: int) -> None:
        with torch.no_grad():
            model.G.heads[0].weight_heads[0].weight.fill_(float("inf"))

    with pytest.raises(TrainingError, match="no checkpoint was written"):
        train(images, cfg, seed=1, step_callback=poison)


# --- 10. bad input -----------------------------------------------------------------------
@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started despite bad input")
    monkeypatch.setattr("mil_core.models.hypergan_train._iteration", refuse)


@pytest.mark.parametrize("images", [
    [torch.zeros(1, 40, 52), torch.zeros(1, 40, 52)],               # not 3 channels
    torch.zeros(2, 4, 40, 52),                                      # a batch of 4-channel images
    torch.zeros(2, 1, 3, 40, 52),                                   # 5-d
    [stripes(), torch.full((3, 40, 52), 2.0)],                      # outside [-1, 1]
    [stripes(), (torch.rand(3, 40, 52) * 255).to(torch.uint8)],     # integers
    [stripes(), torch.full((3, 40, 52), float("nan"))],
    [],
    "images/",
], ids=["1-channel", "4-channel", "5d", "range", "uint8", "nan", "empty", "str"])
def test_bad_images_raise_data_error(no_training, images):
    with pytest.raises(DataError):
        train(images, smoke(n_images=2))


def test_image_below_min_size_is_refused_before_training(no_training):
    cfg = smoke(n_images=2)
    tiny = torch.zeros(3, 1, 1)                                     # a 1×1 image
    with pytest.raises(DataError, match=r"Image 1 is 1×1 .*min_size=" + str(cfg.pyramid.min_size)):
        train([stripes(), tiny], cfg)
    with pytest.raises(DataError, match=r"Image 'dot.png' is 1×1"):
        train([stripes(), tiny], cfg, names=["a.png", "dot.png"])


def test_bad_configs_raise_config_error(no_training):
    with pytest.raises(ConfigError, match="batch_size"):
        train([stripes(), blob()], smoke(n_images=3))           # batch 3 > 2 images
    with pytest.raises(ConfigError, match="regime"):
        smoke("everything")
    with pytest.raises(ConfigError, match="backbone"):
        smoke(backbone="resnet50")
    with pytest.raises(ConfigError, match="norm"):
        smoke(norm="layer")
    with pytest.raises(ConfigError, match="discriminator"):
        smoke(discriminator="none")
    with pytest.raises(ConfigError, match="rec_mode"):
        smoke(rec_mode="all")
    with pytest.raises(ConfigError, match="unknown field"):
        smoke(iterations=3)
    with pytest.raises(ConfigError, match="iters_per_scale"):
        smoke(iters_per_scale=0)
    with pytest.raises(ConfigError, match="cfg"):
        train([stripes()], {"iters_per_scale": 3})
    cfg = smoke()
    cfg.lr_g = float("nan")                                       # mutated after construction
    with pytest.raises(ConfigError, match="lr_g"):
        train([stripes(), blob()], cfg)


def test_inference_misuse_raises_config_error(trained):
    model, images, _, _ = trained
    with pytest.raises(ConfigError, match="n_samples"):
        model.generate(images, n_samples=0)
    with pytest.raises(ConfigError, match="embeddings"):
        model.generate(embeddings=torch.zeros(2, 15))
    with pytest.raises(ConfigError, match="embeddings"):
        model.generator_weights(torch.zeros(16))
    with pytest.raises(ConfigError, match="NaN"):
        model.reconstruct(embeddings=torch.full((1, 16), float("nan")))
    with pytest.raises(ConfigError, match="exactly one"):
        model.generate(images, embeddings=model.embed(images))
    with pytest.raises(ConfigError, match="exactly one"):
        model.reconstruct()
    with pytest.raises(ConfigError, match="scale"):
        model.reconstruct(images, scale=3)
    with pytest.raises(ConfigError, match="size"):
        model.generate(images, size=(0, 10))
    with pytest.raises(DataError):
        model.generate(images[0] * 3)
    untrained = HyperGAN(smoke())
    untrained.G.add_head()
    for call in (lambda: untrained.generate(images), lambda: untrained.reconstruct(images),
                 lambda: untrained.generator_weights(torch.zeros(2, 16))):
        with pytest.raises(ConfigError, match="no trained scale"):
            call()


# --- 11. determinism, sampler, encoder normalisation, regimes ----------------------------
def test_seeded_runs_are_deterministic():
    # same seed: identical runs (a (N, 3, H, W) tensor or a list of images alike); another
    # seed: other z*, other weights; the caller's tensor is left untouched
    batch = torch.stack([stripes(), stripes().flip(-1)])
    original = batch.clone()
    cfg = smoke(iters_per_scale=2)
    a = train(batch, cfg, seed=3)
    assert torch.equal(batch, original)
    b, c = train(list(original), cfg, seed=3), train(batch, cfg, seed=4)
    assert params_equal(a, b) and a.noise_amps == b.noise_amps and a.history == b.history
    assert torch.equal(a.z_star, b.z_star)
    assert not torch.equal(a.z_star, c.z_star)
    sa, sc = a.state_dict(), c.state_dict()
    assert all(not torch.equal(sa[k], sc[k]) for k in sa if k.startswith("G.heads.0."))


def test_batch_sampler_epochs_and_state():
    sampler = BatchSampler(10, 3, seed=0)
    epochs = [torch.cat([sampler.next() for _ in range(3)]) for _ in range(4)]  # 3 full batches
    for idx in epochs:
        assert idx.numel() == 9 and len(set(idx.tolist())) == 9   # no repeats within an epoch
        assert set(idx.tolist()) <= set(range(10))
    assert len({tuple(e.tolist()) for e in epochs}) > 1             # reshuffled every epoch
    even = BatchSampler(6, 2, seed=1)
    for _ in range(3):
        batches = [even.next() for _ in range(3)]
        assert all(b.numel() == 2 for b in batches)
        assert sorted(torch.cat(batches).tolist()) == list(range(6))  # each index once
    # state round trip: the restored sampler continues the same sequence
    s = BatchSampler(7, 2, seed=2)
    for _ in range(5):
        s.next()
    state = s.state()
    expected = [s.next().tolist() for _ in range(8)]
    t = BatchSampler(7, 2, seed=99)
    t.load(state)
    assert [t.next().tolist() for _ in range(8)] == expected
    assert torch.equal(BatchSampler(4, 4, seed=0).next(), torch.arange(4))   # all, in order
    assert BatchSampler(10, 3, seed=0).next().tolist() == BatchSampler(10, 3, 0).next().tolist()
    assert BatchSampler(10, 3, 0).next().tolist() != BatchSampler(10, 3, 1).next().tolist()


def test_group_norm_embedding_ignores_batch_mates():
    torch.manual_seed(0)
    model = HyperGAN(smoke())
    img, mates = stripes(), [blob(), noise_image(2)]
    alone = model.embed([img])
    together = model.embed([img, *mates])
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=1e-5)
    enc = model.G.encoder.train()                              # also in training mode
    x = model.embed_input([img, *mates])
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[:1], enc(x[:1]), atol=1e-5, rtol=1e-5)


def test_batch_norm_embedding_depends_on_batch_mates_in_train_mode():
    torch.manual_seed(0)
    model = HyperGAN(smoke(norm="batch", embed_size=64))
    enc = model.G.encoder.train()
    x = model.embed_input([stripes(), blob(), noise_image(2), noise_image(3), noise_image(4)])
    with torch.no_grad():
        a, b = enc(x[[0, 1, 2]])[0], enc(x[[0, 3, 4]])[0]
    assert (a - b).abs().max() > 1e-3
    # generation uses evaluation mode (running statistics): batch mates no longer matter
    torch.testing.assert_close(model.embed([stripes()]), model.embed([stripes(), blob()])[:1],
                               atol=1e-5, rtol=1e-5)
    assert model.G.encoder.training                          # embed() restored the mode


def test_single_image_regime_trains_shared_critic():
    cfg = smoke("single", 1, iters_per_scale=3)
    snaps: list = []
    model = train([stripes()], cfg, seed=0,
                  step_callback=lambda m, s: snaps.append([p.clone() for p in m.D.parameters()]))
    assert isinstance(model.D, SharedDiscriminator)
    assert sum(p.numel() for p in model.D.parameters()) == cfg.d_spec.numel()  # not a hyper-net
    assert model.n_trained == 3 and len(snaps) == 9
    assert any(not torch.equal(a, b) for a, b in zip(snaps[0], snaps[-1]))   # the critic learns
    assert all(math.isfinite(r["rec_loss"]) for r in model.history)
    assert model.reconstruct([stripes()]).shape == (1, 3, 24, 32)


def test_accumulated_reconstruction_loss():
    # Eq. 15 sums the reconstruction error of every scale <= n: identical to "current" at scale
    # 0, strictly larger at the first step of scale 1 (same weights, one more positive term)
    images = [stripes(), blob()]
    cur = train(images, smoke(iters_per_scale=3, log_every=1), seed=2)
    acc = train(images, smoke(iters_per_scale=3, log_every=1, rec_mode="accumulated"), seed=2)
    rows_c = [r for r in cur.history if r["scale"] == 0]
    rows_a = [r for r in acc.history if r["scale"] == 0]
    assert rows_c == rows_a
    first_c = next(r for r in cur.history if r["scale"] == 1)
    first_a = next(r for r in acc.history if r["scale"] == 1)
    assert first_a["rec_loss"] > first_c["rec_loss"] + 1e-4
    assert first_a["g_adv"] == pytest.approx(first_c["g_adv"], rel=1e-6)   # same weights
    assert not params_equal(cur, acc)
    assert acc.n_trained == 3
