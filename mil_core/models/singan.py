"""SinGAN, the single-image GAN baseline (Shaham, Dekel, Michaeli, ICCV 2019; REFERENCE §2).

A pyramid of small fully-convolutional generators ``G_0 … G_N`` (coarse → fine), each trained
against its own patch critic ``D_n`` at one scale of the image, one scale after the other.

Generation (SinGAN Eq. 1), with ``↑`` the bilinear upsampling to the next scale's shape::

    x_0 = G_0(z_0)
    x_n = G_n(σ_n·z_n + ↑x_{n−1}) + ↑x_{n−1}          (residual; input zero-padded by 5 px)

The reconstruction path uses a fixed noise ``z*`` at scale 0 (drawn once, amplitude 1) and zero
noise above. The noise amplitude of scale ``n > 0`` is ``σ_n = 0.1·RMSE(x_n, ↑x̃_{n−1})`` with
``x̃`` the reconstruction (SinGAN Sec. 2.2); ``σ_0 = 1``.

Training of scale ``n`` (SinGAN Eq. 2–4): ``steps_d`` WGAN-GP critic steps, then ``steps_g``
generator steps on ``−D(x̃_n) + α·‖G_n(↑x̃_{n−1}) + ↑x̃_{n−1} − x_n‖²``; Adam with lr ×0.1 at
``lr_decay_at`` of the iterations. ``G_n``/``D_n`` start from ``G_{n−1}``/``D_{n−1}`` when the
channel counts match; the earlier scales are frozen (eval mode, no gradients).

Differences from the official code, on purpose: no in-place updates of tensors that need grad (the
fake is recomputed for every generator step), no global options object, checkpoints through
:mod:`mil_core.checkpoint` (never pickled modules), every random draw from one explicit
``torch.Generator`` (a CPU run is reproducible from its seed; the stream is seeded with a hash of
the seed, :func:`~mil_core.models.blocks.stream_seed`, so that sampling with the training seed does
not replay z*), and 3-channel noise at every scale.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..checkpoint import (OTHER_RUN_HINT, check_same_run, load_checkpoint, prepare_checkpoint_path,
                          restore_run_log, save_checkpoint)
from ..data.pyramid import PyramidConfig, build_pyramid, plan_pyramid, resize_to
from .. import validation as check
from ..errors import CheckpointError, ConfigError, DataError
from ..levers import make_adam
from ..losses import critic_loss, generator_adv_loss, noise_amplitude, reconstruction_loss
from ..profiles import Profile, get_profile
from ..runtime import get_device, progress
from .blocks import (FiveLayerNet, channels_at_scale, check_gan_image, init_weights, pad_for,
                     stream_seed, upsample, zero_pad)

__all__ = ["SinGANConfig", "SinGAN", "train_singan", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "singan.safetensors"   # file written in ``checkpoint_dir`` after every scale
_KIND = "singan"
_STATE_VERSION = 1


@dataclass
class SinGANConfig:
    """Everything a SinGAN run depends on (defaults: the official code, REFERENCE §2)."""
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)  # scales of the image
    channels: int = 32                  # `nfc` at the coarsest scale
    max_channels: int = 128             # cap of the doubling every 4 scales
    iters_per_scale: int = 2000         # iterations per scale (each: steps_d + steps_g updates)
    steps_d: int = 3                    # critic steps per iteration
    steps_g: int = 3                    # generator steps per iteration
    lr_g: float = 5e-4                  # Adam lr of every G_n
    lr_d: float = 5e-4                  # Adam lr of every D_n
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas
    lr_decay_at: float = 0.8            # lr ×0.1 after this fraction of a scale's iterations
    lambda_grad: float = 0.1            # WGAN-GP gradient-penalty weight
    alpha: float = 10.0                 # reconstruction-loss weight
    noise_amp_init: float = 0.1         # σ_n = noise_amp_init · RMSE(x_n, ↑x̃_{n−1}) for n > 0
    batch_size: int = 1                 # fake samples per step (SinGAN: 1)

    def __post_init__(self) -> None:
        if isinstance(self.pyramid, dict):
            self.pyramid = PyramidConfig(**self.pyramid)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def from_profile(cls, profile: str | Profile, **overrides: Any) -> "SinGANConfig":
        """The config of a run profile: its image sizes (SinGAN's pyramid rule, the image's own
        aspect) and its ``gan`` section's iterations, steps and channels; ``max_channels`` is
        4 × channels (128 for the ``paper`` profile, which gives exactly the official defaults).
        Keyword ``overrides`` replace fields afterwards."""
        prof = get_profile(profile)
        values: dict[str, Any] = dict(
            pyramid=PyramidConfig.from_profile(prof.image, "singan"),
            channels=prof.gan.channels, max_channels=4 * prof.gan.channels,
            iters_per_scale=prof.gan.iters_per_scale, steps_d=prof.gan.steps_d,
            steps_g=prof.gan.steps_g)
        return check.with_overrides(cls, values, overrides)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        if not isinstance(self.pyramid, PyramidConfig):
            raise ConfigError(f"SinGANConfig.pyramid must be a PyramidConfig, got "
                              f"{type(self.pyramid).__name__}")
        self.pyramid.validate()
        check.positive_ints(self, ("channels", "max_channels", "iters_per_scale", "steps_d",
                                   "steps_g", "batch_size"))
        check.positive_numbers(self, ("lr_g", "lr_d"))
        check.nonnegative_numbers(self, ("lambda_grad", "alpha", "noise_amp_init"))
        check.adam_betas(self)
        check.fraction(self, "lr_decay_at", "(1: no decay)")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: ``SinGANConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def _residual_step(net: nn.Module, z: torch.Tensor, prev: torch.Tensor, pad: int) -> torch.Tensor:
    """One scale of SinGAN Eq. 1: ``G(pad(z + prev)) + prev``; all maps (B, 3, H, W)."""
    return net(zero_pad(z + prev, pad)) + prev


class SinGAN(nn.Module):
    """A trained (or partly trained) SinGAN: one generator per scale plus what generation needs.

    Attributes: ``generators``/``discriminators`` (nn.ModuleList, coarse → fine), ``noise_amps``
    (σ_n per trained scale), ``z_star`` (1, 3, H_0, W_0), ``reals`` (the pyramid, (3, H_n, W_n)),
    ``shapes`` ((H, W) per planned scale), ``config``, ``history`` (one dict per logged
    iteration: scale, iter, d_loss, g_loss, g_adv, rec_loss, wasserstein, gp) and ``timings``
    (seconds_per_scale, total_seconds, iters_per_second, device).
    """

    def __init__(self, config: SinGANConfig, reals: list[torch.Tensor], z_star: torch.Tensor):
        super().__init__()
        self.config = config
        self.shapes: list[tuple[int, int]] = [(int(r.shape[-2]), int(r.shape[-1])) for r in reals]
        for i, r in enumerate(reals):
            self.register_buffer(f"real_{i}", r.detach().clone())   # (3, H_i, W_i)
        self.register_buffer("z_star", z_star.detach().clone())      # (1, 3, H_0, W_0)
        self.generators = nn.ModuleList()
        self.discriminators = nn.ModuleList()
        self.noise_amps: list[float] = []
        self.history: list[dict[str, float]] = []
        self.timings: dict[str, Any] = {"seconds_per_scale": [], "total_seconds": 0.0,
                                        "iters_per_second": 0.0, "device": "cpu"}

    # --- basic facts -------------------------------------------------------------------------
    @property
    def reals(self) -> list[torch.Tensor]:
        """The image pyramid, coarse → fine, each (3, H_n, W_n)."""
        return [getattr(self, f"real_{i}") for i in range(len(self.shapes))]

    @property
    def n_scales(self) -> int:
        """Scales of the pyramid (planned)."""
        return len(self.shapes)

    @property
    def n_trained(self) -> int:
        """Scales trained so far (== n_scales once training finished)."""
        return len(self.generators)

    @property
    def device(self) -> torch.device:
        return self.z_star.device

    def _noise(self, batch: int, shape: tuple[int, int], generator: torch.Generator | None
               ) -> torch.Tensor:
        """Standard normal noise (batch, 3, H, W), drawn on the CPU then moved to the device."""
        return torch.randn(batch, 3, *shape, generator=generator).to(self.device)

    # --- generation --------------------------------------------------------------------------
    def _generate(self, shapes: list[tuple[int, int]], batch: int, *, reconstruct: bool = False,
                  generator: torch.Generator | None = None, start: int = 0,
                  x: torch.Tensor | None = None, stop: int | None = None) -> torch.Tensor:
        """Run scales ``start … stop−1`` (Eq. 1) with fresh noise from ``generator`` (or, with
        ``reconstruct``, z* at scale 0 and zero noise above) through :meth:`run_scales`; ``x``
        is the previous output (None: zeros). Returns the un-clamped output, (batch, 3, H, W)."""
        stop = self.n_trained if stop is None else stop
        noise = None if reconstruct else (
            [None] * start + [self._noise(batch, shapes[s], generator) for s in range(start, stop)])
        return self.run_scales(noise, shapes=shapes, start=start, x=x, reconstruct=reconstruct,
                               stop=stop)

    def run_scales(self, noise: list[torch.Tensor | None] | None, *,
                   shapes: list[tuple[int, int]] | None = None, start: int = 0,
                   x: torch.Tensor | None = None, reconstruct: bool = False,
                   stop: int | None = None) -> torch.Tensor:
        """The residual chain with given standard-normal ``noise`` (per scale, (B, 3, H_s, W_s),
        scaled by σ_s here), scales ``start … stop−1`` (default: the finest trained); ``x``: the
        previous output to start from (None: zeros). The same contract as
        :meth:`mil_core.models.hypergan.HyperGAN.run_scales`, so applications
        (:mod:`mil_core.applications`) drive both models alike. Un-clamped, without gradients."""
        self._require_trained()
        shapes = self.shapes if shapes is None else shapes
        stop = self.n_trained if stop is None else stop
        with torch.no_grad():
            batch = (noise[start].shape[0] if noise is not None else
                     x.shape[0] if x is not None else 1)
            out = x
            for s in range(start, stop):
                net = self.generators[s]
                prev = (torch.zeros(batch, 3, *shapes[s], device=self.device) if out is None
                        else upsample(out.to(self.device), shapes[s]))           # (B, 3, H, W)
                if reconstruct:
                    z = (self.z_star.expand(batch, -1, -1, -1) if s == 0
                         else torch.zeros_like(prev))
                else:
                    z = self.noise_amps[s] * noise[s].to(prev)
                out = _residual_step(net, z, prev, pad_for(net))
        assert out is not None, "no scale was run"
        return out

    def _require_trained(self) -> None:
        if self.n_trained == 0:
            raise ConfigError("this SinGAN has no trained scale yet; train it with train_singan")

    def train(self, mode: bool = True) -> "SinGAN":
        """Only sets the flag: trained scales are frozen and stay in eval mode (BatchNorm uses
        its running statistics), so ``model.train()`` never changes what the model generates.
        ``train_singan`` trains each new scale's nets before they are added here."""
        self.training = mode
        return self

    def _eval_run(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``fn`` without gradients and clamp the result to [-1, 1]."""
        with torch.no_grad():
            return fn().clamp(-1.0, 1.0)

    def scaled_shapes(self, shape: tuple[int, int]) -> list[tuple[int, int]]:
        """Per-scale noise shapes for a finest output of ``shape`` = (H, W): every trained scale's
        shape times (H / H_N, W / W_N), rounded (at least 1 px), the finest exactly ``shape``."""
        if (len(shape) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                   for v in shape)):
            raise ConfigError(f"shape must be (H, W) with positive integers, got {shape!r}")
        top_h, top_w = self.shapes[self.n_trained - 1]
        rh, rw = shape[0] / top_h, shape[1] / top_w
        out = [(max(1, round(h * rh)), max(1, round(w * rw)))
               for h, w in self.shapes[:self.n_trained - 1]]
        return out + [(int(shape[0]), int(shape[1]))]

    def sample(self, n: int = 1, generator: torch.Generator | None = None,
               shape: tuple[int, int] | None = None) -> torch.Tensor:
        """``n`` random samples (n, 3, H, W) in [-1, 1] at the finest trained scale.

        ``shape=(H, W)`` asks for another size or aspect: every scale's noise map is scaled by the
        same ratio (the nets are fully convolutional), and the output is exactly (n, 3, H, W).
        Noise comes from ``generator`` (CPU; None: torch's global RNG).
        """
        self._require_trained()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"sample: n must be a positive integer, got {n!r}")
        shapes = self.shapes if shape is None else self.scaled_shapes(tuple(shape))
        return self._eval_run(lambda: self._generate(shapes, n, generator=generator))

    def reconstruct(self, scale: int | None = None) -> torch.Tensor:
        """The fixed-noise reconstruction (1, 3, H_s, W_s) at ``scale`` (default: the finest
        trained scale): z* at scale 0, zero noise above (SinGAN Eq. 4)."""
        self._require_trained()
        stop = self.n_trained if scale is None else _check_scale(scale, self.n_trained) + 1
        return self._eval_run(lambda: self._generate(self.shapes, 1, reconstruct=True,
                                                     stop=stop))

    def inject(self, image: torch.Tensor, scale: int, n: int = 1,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate from ``image`` injected at ``scale`` (SinGAN Sec. 4: paint-to-image,
        editing, harmonization): ``image`` resized to scale ``scale − 1`` stands for
        ``x_{scale−1}`` and is upsampled into ``G_scale`` as every previous output is (SinGAN's
        reference code resizes its input to scale n − 1 and up again); scales ``scale … N`` then
        run as in :meth:`sample` (noise σ_n·z_n added from ``scale`` on). So structure coarser
        than ``scale`` comes from ``image``, finer detail from the model, and injecting the
        model's own scale ``scale − 1`` output continues its chain exactly (the same definition
        as :func:`mil_core.applications.inject`). ``1 <= scale < n_trained``: ``G_0`` was
        trained on pure noise (its previous output is always 0), so there is no injecting at
        scale 0. Returns (n, 3, H_N, W_N) in [-1, 1]."""
        self._require_trained()
        check_gan_image(image, "SinGAN")
        if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale < self.n_trained:
            raise ConfigError(f"inject: scale must be an integer in [1, {self.n_trained - 1}], "
                              f"got {scale!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"inject: n must be a positive integer, got {n!r}")
        prev = resize_to(image.detach().float().cpu(), self.shapes[scale - 1])  # (3, H_{s-1}, W_{s-1})
        x = prev.unsqueeze(0).expand(n, -1, -1, -1).to(self.device)            # (n, 3, H_{s-1}, W_{s-1})
        return self._eval_run(lambda: self._generate(self.shapes, n, generator=generator,
                                                     start=scale, x=x))

    # --- persistence -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model: tensors as tensors, the rest plain values."""
        return {
            "kind": _KIND, "version": _STATE_VERSION,
            "config": self.config.to_dict(),
            "shapes": [list(s) for s in self.shapes],
            "noise_amps": [float(a) for a in self.noise_amps],
            "z_star": self.z_star,
            "reals": self.reals,
            "generators": [g.state_dict() for g in self.generators],
            "discriminators": [d.state_dict() for d in self.discriminators],
            "history": list(self.history),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SinGAN":
        """Inverse of :meth:`state`; raises CheckpointError for anything else."""
        if not isinstance(state, dict) or state.get("kind") != _KIND:
            raise CheckpointError("not a SinGAN checkpoint (its state has no kind='singan'); "
                                  "load it with the class that wrote it")
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise CheckpointError("this SinGAN checkpoint was written by a newer mil_core")
        try:
            cfg = SinGANConfig(**state["config"])
            model = cls(cfg, list(state["reals"]), state["z_star"])
            for i, (g_sd, d_sd) in enumerate(zip(state["generators"], state["discriminators"])):
                g, d = _make_nets(cfg, i)
                g.load_state_dict(g_sd)
                d.load_state_dict(d_sd)
                model.generators.append(_freeze(g))
                model.discriminators.append(_freeze(d))
            restore_run_log(model, state)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"damaged SinGAN checkpoint: {exc}") from exc
        if len(model.noise_amps) != model.n_trained:
            raise CheckpointError("damaged SinGAN checkpoint: noise_amps and generators disagree")
        return model.eval()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the model to ``path`` (safetensors; see :mod:`mil_core.checkpoint`).

        ``extra`` (tensors and plain values) is stored beside the model, e.g. an RNG state."""
        state = self.state()
        if extra:
            state["extra"] = extra
        meta = {"kind": _KIND, "n_scales": self.n_scales, "n_trained": self.n_trained,
                "shapes": [list(s) for s in self.shapes], "config": self.config.to_dict()}
        return save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu") -> "SinGAN":
        """Load a model written by :meth:`save` onto ``map_location``; never unpickles
        (CheckpointError otherwise)."""
        model = cls.from_state(load_checkpoint(path, map_location="cpu"))
        return model.to(map_location) if map_location is not None else model


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def _make_nets(cfg: SinGANConfig, n: int) -> tuple[FiveLayerNet, FiveLayerNet]:
    """The generator (3 → 3, tanh) and patch critic (3 → 1, linear) of scale ``n``."""
    ch = channels_at_scale(n, cfg.channels, cfg.max_channels)
    return FiveLayerNet(3, ch, 3, tail="tanh"), FiveLayerNet(3, ch, 1, tail="none")


def _freeze(net: nn.Module) -> nn.Module:
    net.eval()
    net.requires_grad_(False)
    return net


def _train_scale(model: SinGAN, n: int, gen: torch.Generator, *, show_progress: bool,
                 log_every: int) -> int:
    """Train ``G_n``/``D_n`` with scales ``0 … n−1`` frozen, then append them to ``model``.

    Returns the number of iterations run.
    """
    cfg, dev = model.config, model.device
    shape, shapes, batch = model.shapes[n], model.shapes, cfg.batch_size
    real = model.reals[n].unsqueeze(0)                                        # (1, 3, H, W)
    real_b = real.expand(batch, -1, -1, -1)                                   # (B, 3, H, W)

    # reconstruction input and noise amplitude from the frozen coarser scales
    with torch.no_grad():
        if n == 0:
            rec_prev = torch.zeros_like(real)                                 # (1, 3, H, W)
            amp = 1.0
        else:
            rec_prev = upsample(model._generate(shapes, 1, reconstruct=True, stop=n), shape)
            amp = noise_amplitude(real, rec_prev, factor=cfg.noise_amp_init)
    z_rec = model.z_star if n == 0 else torch.zeros_like(rec_prev)            # (1, 3, H, W)

    net_g, net_d = _make_nets(cfg, n)
    init_weights(net_g, gen)
    init_weights(net_d, gen)
    if n > 0 and channels_at_scale(n - 1, cfg.channels, cfg.max_channels) == \
            channels_at_scale(n, cfg.channels, cfg.max_channels):
        net_g.load_state_dict(model.generators[n - 1].state_dict())
        net_d.load_state_dict(model.discriminators[n - 1].state_dict())
    net_g.to(dev).train().requires_grad_(True)
    net_d.to(dev).train().requires_grad_(True)
    pad = pad_for(net_g)

    opt_g = make_adam(net_g.parameters(), cfg.lr_g, cfg.betas, dev)
    opt_d = make_adam(net_d.parameters(), cfg.lr_d, cfg.betas, dev)
    iters = cfg.iters_per_scale
    decay_at = int(round(cfg.lr_decay_at * iters))

    steps = range(iters)
    bar = progress(steps, total=iters, desc=f"SinGAN scale {n}/{model.n_scales - 1}") \
        if show_progress else steps
    for it in bar:
        if it == decay_at:
            for opt in (opt_d, opt_g):
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * 0.1
        with torch.no_grad():                                                 # ↑x̃_{n−1}
            prev = (torch.zeros(batch, 3, *shape, device=dev) if n == 0 else
                    upsample(model._generate(shapes, batch, generator=gen, stop=n), shape))

        # critic: maximise D(real) − D(fake) − λ·GP (SinGAN Eq. 2–3)
        net_d.requires_grad_(True)
        for _ in range(cfg.steps_d):
            z = amp * model._noise(batch, shape, gen)                         # (B, 3, H, W)
            with torch.no_grad():
                fake = _residual_step(net_g, z, prev, pad)
            d_loss, parts = critic_loss(net_d, real_b, fake, cfg.lambda_grad, generator=gen)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

        # generator: adversarial + α·reconstruction (SinGAN Eq. 4); the fake is recomputed
        # every step, never reused across an optimizer update
        net_d.requires_grad_(False)
        for _ in range(cfg.steps_g):
            fake = _residual_step(net_g, z, prev, pad)                        # (B, 3, H, W)
            g_adv = generator_adv_loss(net_d, fake)
            rec = _residual_step(net_g, z_rec, rec_prev, pad)                 # (1, 3, H, W)
            rec_loss = reconstruction_loss(rec, real)
            g_loss = g_adv + cfg.alpha * rec_loss
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()

        if it % log_every == 0 or it == iters - 1:
            row = {"scale": n, "iter": it, "d_loss": d_loss.item(), "g_loss": g_loss.item(),
                   "g_adv": g_adv.item(), "rec_loss": rec_loss.item(),
                   "wasserstein": parts["wasserstein"], "gp": parts["gp"]}
            model.history.append(row)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(rec=f"{row['rec_loss']:.4f}", w=f"{row['wasserstein']:.3f}",
                                refresh=False)

    model.generators.append(_freeze(net_g))
    model.discriminators.append(_freeze(net_d))
    model.noise_amps.append(float(amp))
    return iters


def _resume(path: Path, cfg: SinGANConfig, reals: list[torch.Tensor], seed: int
            ) -> tuple[SinGAN, torch.Tensor]:
    """Reload finished scales from ``path``; check they belong to this image, config and seed."""
    state = load_checkpoint(path)
    model = SinGAN.from_state(state)
    extra = state.get("extra") or {}
    check_same_run(path, "SinGANConfig", model.config.to_dict(), cfg.to_dict(), extra.get("seed"),
                   seed)
    same = len(reals) == model.n_scales and all(
        a.shape == b.shape and torch.allclose(a, b, atol=1e-6) for a, b in zip(reals, model.reals))
    if not same:
        raise CheckpointError(f"{path} was trained on another image; {OTHER_RUN_HINT}")
    if "rng" not in extra:
        raise CheckpointError(f"{path} holds no RNG state (it was written by SinGAN.save, not by "
                              f"train_singan), so training cannot resume exactly; {OTHER_RUN_HINT}")
    return model, extra["rng"]


def train_singan(image: torch.Tensor, cfg: SinGANConfig | None = None, *, seed: int = 0,
                 device: str | torch.device | None = None, show_progress: bool = True,
                 log_every: int = 10, checkpoint_dir: str | Path | None = None,
                 resume: bool = False, overwrite: bool = False,
                 callback: Callable[[SinGAN, int], None] | None = None) -> SinGAN:
    """Train a SinGAN on ``image`` (3, H, W) in [-1, 1], coarse to fine (SinGAN Sec. 2.2).

    ``seed`` seeds the one ``torch.Generator`` every random draw comes from (z*, init, noise,
    gradient-penalty mixing), so a CPU run is reproducible. That stream starts from
    :func:`~mil_core.models.blocks.stream_seed` ``(seed)``, not from ``seed`` itself: z* is its
    first draw, so sampling with ``torch.Generator().manual_seed(seed)`` would otherwise replay
    z* and make sample 0 the reconstruction. ``log_every``: iterations between
    rows of ``model.history``. ``checkpoint_dir``: the model is saved atomically to
    ``checkpoint_dir/singan.safetensors`` after each finished scale; with ``resume=True`` the
    finished scales are reloaded from there (same image, config and seed) and training goes on
    exactly as if uninterrupted. An existing checkpoint there is never replaced silently: without
    ``resume`` it raises CheckpointError unless ``overwrite=True``, which replaces it when the
    first new scale is saved (see :func:`mil_core.checkpoint.prepare_checkpoint_path`).
    ``callback(model, n)`` runs after scale ``n`` is finished.

    Raises DataError / ConfigError for a bad image or config and CheckpointError for a
    checkpoint of another run, all before any training.
    """
    cfg = SinGANConfig() if cfg is None else cfg
    if not isinstance(cfg, SinGANConfig):
        raise ConfigError(f"train_singan: cfg must be a SinGANConfig, got {type(cfg).__name__}")
    cfg.validate()
    check_gan_image(image, "SinGAN")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ConfigError(f"train_singan: log_every must be a positive integer, got {log_every!r}")
    plan_pyramid(int(image.shape[-2]), int(image.shape[-1]), cfg.pyramid)   # size errors first
    dev = torch.device(device) if device is not None else get_device()

    gen = torch.Generator()
    gen.manual_seed(stream_seed(seed))     # not Generator(seed): sampling with it would replay z*
    reals = build_pyramid(image.detach().float().cpu(), cfg.pyramid)        # [(3, H_n, W_n)]
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)

    if ckpt is not None and resume and ckpt.exists():
        model, rng_state = _resume(ckpt, cfg, reals, int(seed))
        gen.set_state(rng_state)
    else:
        z_star = torch.randn(1, 3, *reals[0].shape[-2:], generator=gen)      # (1, 3, H_0, W_0)
        model = SinGAN(cfg, reals, z_star)
    model.to(dev)
    model.timings["device"] = str(dev)

    for n in range(model.n_trained, model.n_scales):
        t0 = time.perf_counter()
        _train_scale(model, n, gen, show_progress=show_progress, log_every=log_every)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        model.timings["seconds_per_scale"].append(time.perf_counter() - t0)
        total = float(sum(model.timings["seconds_per_scale"]))
        model.timings["total_seconds"] = total
        model.timings["iters_per_second"] = (cfg.iters_per_scale * model.n_trained / total
                                             if total > 0 else 0.0)
        if ckpt is not None:
            model.save(ckpt, extra={"seed": int(seed), "rng": gen.get_state()})
        if callback is not None:
            callback(model, n)
    return model.eval()


def _check_scale(scale: int, n_trained: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < n_trained:
        raise ConfigError(f"scale must be an integer in [0, {n_trained - 1}], got {scale!r}")
    return scale
