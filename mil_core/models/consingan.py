"""ConSinGAN (Hinz et al., "Improved Techniques for Training Single-Image GANs", WACV 2021).

The second single-image baseline of the MIL paper (REFERENCE §3). Differences from SinGAN (§2):

- **One growing generator in feature space** (ConSinGAN §3.1, Fig. 2): a head (RGB noise →
  ``channels`` features) at stage 0, one new body block (3 convs) per stage, initialised as a copy
  of the previous stage's block, and one shared tail (features → RGB, tanh). Between stages the
  *features* are upsampled (bilinear) to the next stage's shape and noise is added to them.
- **Concurrent training of the last** ``train_depth`` **stages** (§3.1): at stage ``n`` the
  blocks of stages ``n−train_depth+1 … n`` are optimised, the block of stage ``k`` with learning
  rate ``lr · lr_scale^(n−k)``; older blocks are frozen.
- **A rescaling schedule with more stages at low resolution** (§3.2), see :func:`stage_shapes`.

Choices made here, where the paper leaves room or the official code would not run as is:

- Every stage is residual in feature space, ``f_k = u_k + body_k(pad(u_k + a_k·z_k))``, with
  ``u_k`` the bilinearly upsampled ``f_{k−1}`` and ``u_0 = head(pad(z_0))`` (ConSinGAN's stage 0
  is not residual); so every stage has one form and :meth:`ConSinGAN.inject` works at any stage.
  Feature noise ``z_k`` (k ≥ 1) has ``channels`` channels; stage 0's noise is the RGB input.
- Convolutions are unpadded and every input is zero-padded just enough that each stage outputs
  exactly its pyramid shape; weights start as N(0, 0.02), biases 0 (as in SinGAN/ConSinGAN).
- The head is trained with block 0 (same lr, frozen with it); the tail always gets ``lr``.
- One noise draw per iteration serves its ``steps_d`` critic and ``steps_g`` generator steps;
  each step regenerates its fake from it, so no graph is reused across an optimiser update.
- The official option ``scale_factor`` is overwritten in generation mode: the factor ``r`` is
  derived from ``min_size`` and ``n_stages`` (see :func:`stage_exponents`), so there is no such
  field here; ``schedule="geometric"`` gives the plain SinGAN-like pyramid instead.
- The short profiles (``smoke``, ``cpu``) train with Adam lr 2e-3, not 5e-4: the generator has
  no normalisation layer (ConSinGAN's default) and fits far more slowly than SinGAN's BatchNorm
  nets; the official lr is sized for 2000 iterations × 3 G steps per stage, and at the cpu
  profile's 400 × 1 it left the reconstruction near 7e-3 (:meth:`ConSinGANConfig.from_profile`).
- Random streams: weights and z* come from ``stream_seed(seed)``, the training draws from
  ``stream_seed(seed + 1)`` (:func:`~mil_core.models.blocks.stream_seed`), so sampling with
  ``torch.Generator().manual_seed(seed)`` never replays z*.
- Checkpoints as SinGAN's: with ``checkpoint_dir`` the model, the critic and the RNG state are
  written atomically to ``checkpoint_dir/consingan.safetensors`` after every finished stage
  (:mod:`mil_core.checkpoint`, never pickled), and ``resume=True`` continues exactly.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import validation as check
from ..checkpoint import (load_checkpoint, prepare_checkpoint_path, resume_single_image,
                          restore_run_log, save_checkpoint)
from ..data.pyramid import PyramidConfig, plan_pyramid, resize_to
from ..errors import CheckpointError, ConfigError, DataError
from ..levers import make_adam
from ..losses import critic_loss, generator_adv_loss, noise_amplitude, reconstruction_loss
from ..runtime import get_device, progress
from .blocks import check_gan_image, init_weights, stream_seed

__all__ = ["ConSinGANConfig", "ConSinGAN", "GrowingGenerator", "PatchCritic", "stage_exponents",
           "stage_shapes", "generator_param_groups", "prepare_consingan", "train_stage",
           "train_consingan", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "consingan.safetensors"   # file written in ``checkpoint_dir`` after every stage
_KIND = "consingan"
_STATE_VERSION = 1                  # 0: files of ``save`` before states had kind and version

_N_STAGES = {"smoke": 3, "cpu": 5}   # fewer stages for the small profiles (paper: 6)
# Adam lr of the short profiles (paper: 5e-4). ConSinGAN's generator has no normalisation, and
# at lr 5e-4 it needs of the order of the paper's 2000 iterations × 3 G steps per stage to fit
# the image; with the cpu profile's 400 × 1 its reconstruction stalls near 7e-3 (SinGAN, with
# BatchNorm: 1e-4) and its samples stay blurry. 2e-3 fits 5–10× better; 3e-3 and more diverge.
# Measured by benchmarks/bench_consingan_vs_singan.py.
_SHORT_BUDGET_LR = {"smoke": 2e-3, "cpu": 2e-3}
_CRITIC_FIELD = 11                    # receptive field of the 5-layer unpadded 3×3 critic, px


@dataclass
class ConSinGANConfig:
    """Hyper-parameters; defaults are the official ConSinGAN ones (REFERENCE §3)."""
    n_stages: int = 6                 # stages (pyramid levels) N, `train_stages`
    train_depth: int = 3              # stages trained concurrently, `train_depth`
    lr_scale: float = 0.1             # lr factor per stage below the newest, `lr_scale`
    lr: float = 5e-4                  # Adam lr of G's newest block, of tail and of D (smoke/cpu
    #                                   profiles: 2e-3, see from_profile)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas
    lr_decay_at: float = 0.8          # lrs ×lr_decay after this fraction of a stage's iterations
    lr_decay: float = 0.1             # ConSinGAN's scheduler gamma
    iters_per_stage: int = 2000       # iterations per stage, `niter`
    steps_d: int = 3                  # critic steps per iteration, `Dsteps`
    steps_g: int = 3                  # generator steps per iteration, `Gsteps`
    lambda_grad: float = 0.1          # WGAN-GP weight
    alpha: float = 10.0               # reconstruction-loss weight
    channels: int = 64                # feature channels of G and D, `nfc`
    leaky_slope: float = 0.05         # LeakyReLU slope, `lrelu_alpha` (no BatchNorm)
    noise_amp: float = 0.1            # noise amplitude factor × RMSE(real_n, up(rec_{n−1}))
    max_size: int = 250               # long side of the finest stage, px
    min_size: int = 25                # short side of the coarsest stage, px
    schedule: str = "consingan"       # "consingan" (§3.2) or "geometric" (SinGAN-like)
    inject_cg_iters: int = 50         # CG iterations fitting features to an injected image

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]  (lists after a JSON trip)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        ints = {"n_stages": 2, "train_depth": 1, "iters_per_stage": 1, "steps_d": 1,
                "steps_g": 1, "channels": 1, "max_size": 1, "min_size": _CRITIC_FIELD,
                "inject_cg_iters": 0}
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"ConSinGANConfig.{name} must be an integer >= {low}, got {v!r}"
                                  + (" (the critic sees 11×11 patches)" if name == "min_size"
                                     else ""))
        positive = ("lr", "lr_scale", "lr_decay", "alpha", "noise_amp", "lambda_grad")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
                    v == 0 and name in ("lr", "lr_scale", "lr_decay")):
                raise ConfigError(f"ConSinGANConfig.{name} must be a positive number, got {v!r}")
        if not 0.0 < self.lr_decay_at <= 1.0:
            raise ConfigError(f"ConSinGANConfig.lr_decay_at must be in (0, 1], got "
                              f"{self.lr_decay_at!r}")
        if not 0.0 <= self.leaky_slope < 1.0:
            raise ConfigError(f"ConSinGANConfig.leaky_slope must be in [0, 1), got "
                              f"{self.leaky_slope!r}")
        if self.min_size > self.max_size:
            raise ConfigError(f"ConSinGANConfig.min_size ({self.min_size}) exceeds max_size "
                              f"({self.max_size})")
        if self.schedule not in ("consingan", "geometric"):
            raise ConfigError(f"ConSinGANConfig.schedule must be 'consingan' or 'geometric', "
                              f"got {self.schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: ``ConSinGANConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_profile(cls, profile: Any, **overrides: Any) -> "ConSinGANConfig":
        """The config of a :class:`~mil_core.profiles.Profile`; keyword ``overrides`` replace
        fields afterwards (unknown names raise ConfigError).

        ``paper``: the official defaults (6 stages, 64 channels; the profile's ``gan.channels`` is
        SinGAN's 32 and is not used). ``smoke`` / ``cpu``: the profile's image sizes, iterations,
        steps and channels, with 3 / 5 stages and Adam lr 2e-3 instead of 5e-4: the official lr
        is sized for 2000 iterations × 3 G steps per stage, and this generator, which has no
        BatchNorm, does not fit the image in the cpu profile's 400 × 1 at 5e-4 (REFERENCE §3).
        """
        from ..profiles import get_profile
        prof = get_profile(profile)
        gan, image = prof.gan, prof.image
        values: dict[str, Any] = dict(iters_per_stage=gan.iters_per_scale, steps_d=gan.steps_d,
                                      steps_g=gan.steps_g, max_size=image.max_size,
                                      min_size=image.min_size)
        if prof.name != "paper":
            values.update(n_stages=_N_STAGES.get(prof.name, 6), channels=gan.channels)
            if prof.name in _SHORT_BUDGET_LR:
                values["lr"] = _SHORT_BUDGET_LR[prof.name]
        return check.with_overrides(cls, values, overrides)


# ---------------------------------------------------------------------------------------------
# the rescaling schedule (ConSinGAN §3.2)
# ---------------------------------------------------------------------------------------------
def stage_exponents(n_stages: int, schedule: str = "consingan") -> list[float]:
    """Exponents ``e_n`` with stage ``n`` of size ``finest · r^e_n`` (coarse → fine).

    With ``S = n_stages − 1`` and ``r = (min_size / short side)^(1/S)``, ConSinGAN §3.2 uses
    ``e_n = (S−1)/ln(S) · ln(S−n) + 1`` for ``n < S`` and ``e_S = 0``. Hence ``e_0 = S``
    (the coarsest short side is ``min_size``) and ``e_{S−1} = 1``, and since ln is concave
    ``e_n ≥ S − n`` (the geometric exponent): the intermediate stages are smaller than a
    geometric pyramid's, i.e. more stages sit at low resolution. For 250×188 and 6 stages the short
    sides are 25, 32, 42, 63, 126, 188 (geometric: 25, 37, 56, 84, 126, 188).
    """
    s = n_stages - 1
    if schedule == "geometric" or s == 1:
        return [float(s - n) for n in range(n_stages)]
    return [(s - 1) / math.log(s) * math.log(s - n) + 1 for n in range(s)] + [0.0]


def stage_shapes(h: int, w: int, cfg: ConSinGANConfig) -> list[tuple[int, int]]:
    """(H, W) of every stage, coarse → fine, for an ``h``×``w`` image.

    The finest stage is the image resized so its long side is at most ``max_size`` (never
    enlarged) — the same rule and errors as :func:`mil_core.data.pyramid.plan_pyramid`.
    """
    plan = plan_pyramid(h, w, PyramidConfig(min_size=cfg.min_size, max_size=cfg.max_size,
                                            n_scales=cfg.n_stages))
    fh, fw = plan.finest
    r = plan.scale_factor
    shapes = [(max(1, math.ceil(fh * r ** e - 1e-6)), max(1, math.ceil(fw * r ** e - 1e-6)))
              for e in stage_exponents(cfg.n_stages, cfg.schedule)]
    for a, b in zip(shapes, shapes[1:]):
        if not (a[0] < b[0] and a[1] < b[1]):
            raise ConfigError(f"ConSinGAN stages {a} and {b} are not strictly increasing for a "
                              f"{fh}×{fw} image; use fewer n_stages or a smaller min_size.")
    return shapes


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def _conv_stack(c_in: int, c_out: int, n: int, slope: float) -> nn.Sequential:
    """``n`` unpadded 3×3 convs, each followed by LeakyReLU (shrinks H and W by 2n)."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers)


class GrowingGenerator(nn.Module):
    """Head → one residual body block per stage → shared tail (ConSinGAN §3.1, Fig. 2)."""

    def __init__(self, channels: int, slope: float, generator: torch.Generator) -> None:
        super().__init__()
        self.head = _conv_stack(3, channels, 1, slope)
        self.body = nn.ModuleList([_conv_stack(channels, channels, 3, slope)])
        self.tail = nn.Conv2d(channels, 3, 3)
        init_weights(self, generator)

    def grow(self) -> None:
        """Add the next stage's body block as a copy of the current last block (§3.1)."""
        new = _conv_stack(self.tail.in_channels, self.tail.in_channels, 3,
                          self.head[1].negative_slope)
        new.load_state_dict(self.body[-1].state_dict())
        self.body.append(new.to(self.tail.weight.device))

    def encode(self, z0: torch.Tensor) -> torch.Tensor:
        """Stage-0 input features ``u_0 = head(z_0)``: (B, 3, H, W) → (B, C, H, W)."""
        return self.head(F.pad(z0, (1, 1, 1, 1)))

    def stage(self, k: int, u: torch.Tensor, noise: torch.Tensor | None, amp: float
              ) -> torch.Tensor:
        """``f_k = u + body_k(u + amp·noise)``; (B, C, H, W) → (B, C, H, W)."""
        v = u if noise is None else u + amp * noise
        return u + self.body[k](F.pad(v, (3, 3, 3, 3)))

    def to_rgb(self, f: torch.Tensor) -> torch.Tensor:
        """The shared tail: (B, C, H, W) → (B, 3, H, W) in [-1, 1]."""
        return torch.tanh(self.tail(F.pad(f, (1, 1, 1, 1))))

    def run(self, u: torch.Tensor, start: int, noises: list[torch.Tensor | None],
            amps: list[float], shapes: list[tuple[int, int]]) -> torch.Tensor:
        """Stages ``start … len(shapes)−1`` from the input features ``u`` of stage ``start``.

        ``noises[k]`` (B, C, H_k, W_k) or None (zero noise) for each stage k >= start.
        Returns the image (B, 3, H, W) of the last stage.
        """
        f = u
        for k in range(start, len(shapes)):
            if k > start:
                u = F.interpolate(f, size=shapes[k], mode="bilinear", align_corners=False)
            f = self.stage(k, u, noises[k], amps[k])
        return self.to_rgb(f)

    def stage_input(self, z0: torch.Tensor, stop: int, noises: list[torch.Tensor | None],
                    amps: list[float], shapes: list[tuple[int, int]]) -> torch.Tensor:
        """The input features ``u_stop`` (B, C, H_stop, W_stop) after stages ``0 … stop−1``."""
        u = self.encode(z0)
        for k in range(stop):
            u = F.interpolate(self.stage(k, u, noises[k], amps[k]), size=shapes[k + 1],
                              mode="bilinear", align_corners=False)
        return u

    def forward(self, z0: torch.Tensor, noises: list[torch.Tensor | None], amps: list[float],
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        """Full generation: z0 (B, 3, H_0, W_0) → image (B, 3, H, W) of stage len(shapes)−1."""
        return self.run(self.encode(z0), 0, noises, amps, shapes)


class PatchCritic(nn.Module):
    """5 unpadded 3×3 conv layers (head, 3 body, tail), LeakyReLU; a score per 11×11 patch."""

    def __init__(self, channels: int, slope: float, generator: torch.Generator) -> None:
        super().__init__()
        self.features = _conv_stack(3, channels, 4, slope)
        self.tail = nn.Conv2d(channels, 1, 3)
        init_weights(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.features(x))        # (B, 1, H − 10, W − 10)


def generator_param_groups(netG: GrowingGenerator, stage: int, cfg: ConSinGANConfig
                           ) -> list[dict[str, Any]]:
    """Adam parameter groups at ``stage`` and freeze everything else (ConSinGAN §3.1).

    Block ``k`` of the last ``train_depth`` stages gets ``lr · lr_scale^(stage−k)``. The head is
    trained together with block 0 (same lr) and frozen with it; the shared tail always gets ``lr``
    (the official code's choice too). Older blocks get ``requires_grad=False``.
    """
    first = max(0, stage - cfg.train_depth + 1)
    groups: list[dict[str, Any]] = []
    for k, block in enumerate(netG.body):
        train = first <= k <= stage
        block.requires_grad_(train)
        if train:
            groups.append({"params": list(block.parameters()), "name": f"body.{k}",
                           "lr": cfg.lr * cfg.lr_scale ** (stage - k)})
    netG.head.requires_grad_(first == 0)
    if first == 0:
        groups.append({"params": list(netG.head.parameters()), "name": "head",
                       "lr": cfg.lr * cfg.lr_scale ** stage})
    netG.tail.requires_grad_(True)
    groups.append({"params": list(netG.tail.parameters()), "name": "tail", "lr": cfg.lr})
    return groups


# ---------------------------------------------------------------------------------------------
# the trained model
# ---------------------------------------------------------------------------------------------
class ConSinGAN(nn.Module):
    """A trained (or training) ConSinGAN; the same interface as the SinGAN model.

    ``seed`` draws the initial weights and then ``z_star`` from a generator seeded with
    :func:`~mil_core.models.blocks.stream_seed` ``(seed)``, never ``seed`` itself, so sampling
    with ``torch.Generator().manual_seed(seed)`` does not replay z* (or the initial weights).
    """

    def __init__(self, cfg: ConSinGANConfig, reals: list[torch.Tensor], seed: int = 0) -> None:
        super().__init__()
        self.config = cfg
        self.reals = [r.detach().cpu() for r in reals]            # (3, H_n, W_n), coarse → fine
        self.shapes = [tuple(r.shape[-2:]) for r in self.reals]
        g = torch.Generator().manual_seed(stream_seed(seed))   # not Generator(seed): see below
        self.netG = GrowingGenerator(cfg.channels, cfg.leaky_slope, g)
        self.register_buffer("z_star", torch.randn((1, 3, *self.shapes[0]), generator=g))
        self.noise_amps: list[float] = [1.0]                       # stage 0: pure noise input
        self.history: list[dict[str, float]] = []
        self.timings: dict[str, Any] = {"seconds_per_scale": [], "total_seconds": 0.0,
                                        "iters_per_second": 0.0, "device": "cpu"}

    @property
    def device(self) -> torch.device:
        return self.z_star.device

    @property
    def n_active(self) -> int:
        """Stages built so far (the stage being trained included)."""
        return len(self.netG.body)

    @property
    def n_scales(self) -> int:
        """Planned stages (``config.n_stages``), as SinGAN's ``n_scales``."""
        return len(self.shapes)

    @property
    def n_trained(self) -> int:
        """Finished stages."""
        return len(self.timings["seconds_per_scale"])

    # --- noise ------------------------------------------------------------------------------
    def _noises(self, n: int, shapes: list[tuple[int, int]], start: int,
                generator: torch.Generator | None) -> list[torch.Tensor | None]:
        """Feature noise (n, C, H_k, W_k) for stages k >= max(start, 1), drawn on the CPU."""
        c = self.config.channels
        return [torch.randn((n, c, *s), generator=generator).to(self.device)
                if k >= max(start, 1) else None for k, s in enumerate(shapes)]

    def _active_shapes(self, shape: tuple[int, int] | None) -> list[tuple[int, int]]:
        shapes = list(self.shapes[:self.n_active])
        if shape is None:
            return shapes
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape)):
            raise ConfigError(f"shape must be (H, W) of positive integers, got {shape!r}")
        (fh, fw), (h, w) = shapes[-1], shape
        out = [(max(1, round(a * h / fh)), max(1, round(b * w / fw))) for a, b in shapes[:-1]]
        return out + [(h, w)]

    # --- the interface shared with SinGAN --------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int = 1, generator: torch.Generator | None = None,
               shape: tuple[int, int] | None = None) -> torch.Tensor:
        """``n`` random images (n, 3, H, W); ``shape=(H, W)`` rescales every stage's maps by
        the ratio of ``shape`` to the finest stage, so the output is exactly ``shape``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"sample(n=...) must be a positive integer, got {n!r}")
        shapes = self._active_shapes(shape)
        z0 = torch.randn((n, 3, *shapes[0]), generator=generator).to(self.device)
        return self.netG(z0, self._noises(n, shapes, 1, generator), self.noise_amps, shapes)

    @torch.no_grad()
    def reconstruct(self, scale: int | None = None) -> torch.Tensor:
        """The fixed-noise reconstruction (1, 3, H_s, W_s) at stage ``scale`` (default: the
        finest trained one): ``z*`` at stage 0, zero noise above. Earlier stages go through the
        final shared tail, as ConSinGAN's generator always does, so they are not what the stage
        reached when it was trained: the tail and the blocks within ``train_depth`` of later
        stages kept learning for the finest image (cpu profile, 'chelsea': stage 0 ends near
        1e-3 MSE, ``reconstruct(scale=0)`` of the finished model is near 1e-2)."""
        shapes = self._active_shapes(None)
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < len(shapes):
                raise ConfigError(f"reconstruct(scale=...) must be an integer in "
                                  f"[0, {len(shapes) - 1}], got {scale!r}")
            shapes = shapes[:scale + 1]
        return self.netG(self.z_star, [None] * len(shapes), self.noise_amps, shapes)

    def inject(self, image: torch.Tensor, scale: int, n: int = 1,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate from stage ``scale`` on, starting from ``image`` (3, H, W) → (n, 3, H, W).

        How the image enters the feature-space generator: ``image`` is resized to stage
        ``scale``'s shape (``x_s``) and replaces the stage's input features ``u_s`` (the role of
        ``up(x_{s−1})`` in SinGAN's injection): starting from the reconstruction path's own
        ``u_s``, conjugate gradients (CGLS, ``cfg.inject_cg_iters`` steps) find the nearest
        features whose tail output is ``x_s``, i.e. least squares on ``tail_conv(u) = atanh(x_s)``.
        Stages ``scale …`` then run as usual (fresh noise, amplitude of each stage; stage 0 has
        no feature noise), so the coarse structure of ``image`` is kept and finer stages add
        the learned texture — the basis of harmonisation and editing (ConSinGAN §4.2).
        """
        img = check_gan_image(image, "ConSinGAN.inject")
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < self.n_active:
            raise ConfigError(f"inject(scale=...) must be an integer in [0, {self.n_active - 1}],"
                              f" got {scale!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"inject(n=...) must be a positive integer, got {n!r}")
        shapes = self._active_shapes(None)
        target = resize_to(img, shapes[scale]).unsqueeze(0).to(self.device)  # (1, 3, H_s, W_s)
        with torch.no_grad():
            u0 = self.netG.stage_input(self.z_star, scale, [None] * len(shapes),
                                       self.noise_amps, shapes)
            u = self._fit_features(u0, target).expand(n, -1, -1, -1)  # (n, C, H_s, W_s)
            noises = self._noises(n, shapes, scale, generator)
            return self.netG.run(u, scale, noises, self.noise_amps, shapes)

    def _fit_features(self, u0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """CGLS for ``min_u ‖conv(pad(u)) + b − atanh(x)‖²`` from ``u0`` (minimum change)."""
        weight, bias = self.netG.tail.weight, self.netG.tail.bias
        t = torch.atanh(x.clamp(-0.99, 0.99)) - bias.view(1, -1, 1, 1)   # (1, 3, H, W)

        def a(u: torch.Tensor) -> torch.Tensor:                           # (1, C, H, W) → (1, 3, H, W)
            return F.conv2d(F.pad(u, (1, 1, 1, 1)), weight)

        def a_t(v: torch.Tensor) -> torch.Tensor:                         # adjoint: crop ∘ conv_T
            return F.conv_transpose2d(v, weight)[..., 1:-1, 1:-1]

        u, r = u0, t - a(u0)
        s = a_t(r)
        p, gamma = s, float((s * s).sum())
        for _ in range(self.config.inject_cg_iters):
            if gamma < 1e-12:
                break
            q = a(p)
            step = gamma / max(float((q * q).sum()), 1e-30)
            u, r = u + step * p, r - step * q
            s = a_t(r)
            gamma_new = float((s * s).sum())
            p, gamma = s + (gamma_new / gamma) * p, gamma_new
        return u

    # --- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model: tensors as tensors, the rest plain values."""
        return {
            "kind": _KIND, "version": _STATE_VERSION,
            "config": self.config.to_dict(),
            "n_active": self.n_active,
            "netG": self.netG.state_dict(),
            "z_star": self.z_star,
            "noise_amps": [float(a) for a in self.noise_amps],
            "reals": list(self.reals),
            "history": list(self.history),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ConSinGAN":
        """Inverse of :meth:`state` (on the CPU); raises CheckpointError for anything else.

        Also reads the states of files written before states carried ``kind`` and ``version``.
        """
        legacy = isinstance(state, dict) and "kind" not in state and "netG" in state
        if not isinstance(state, dict) or (state.get("kind") != _KIND and not legacy):
            raise CheckpointError("not a ConSinGAN checkpoint (its state has no "
                                  "kind='consingan'); load it with the class that wrote it")
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise CheckpointError("this ConSinGAN checkpoint was written by a newer mil_core; "
                                  "upgrade mil_core to read it")
        try:
            model = cls(ConSinGANConfig(**state["config"]), list(state["reals"]))
            for _ in range(int(state["n_active"]) - 1):
                model.netG.grow()
            model.netG.load_state_dict(state["netG"])
            model.netG.requires_grad_(False)
            model.z_star = state["z_star"].detach().clone()
            restore_run_log(model, state)
        except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"damaged ConSinGAN checkpoint: {exc}") from exc
        if len(model.noise_amps) != model.n_active:
            raise CheckpointError("damaged ConSinGAN checkpoint: noise_amps and stages disagree")
        return model.eval()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the model to ``path`` (safetensors, never pickled; see
        :mod:`mil_core.checkpoint`). ``extra`` (tensors and plain values) is stored beside the
        model, e.g. the critic and the RNG state of an unfinished run."""
        state = self.state()
        if extra:
            state["extra"] = extra
        meta = {"kind": _KIND, "model": "ConSinGAN", "n_scales": self.n_scales,
                "n_trained": self.n_trained, "shapes": [list(s) for s in self.shapes],
                "config": self.config.to_dict()}
        return save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu"
             ) -> "ConSinGAN":
        """Rebuild a model written by :meth:`save` on ``map_location`` (default CPU); never
        unpickles (CheckpointError otherwise)."""
        state = load_checkpoint(path)
        try:
            model = cls.from_state(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        return model.to(map_location or "cpu")


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def prepare_consingan(image: torch.Tensor, cfg: ConSinGANConfig, *, seed: int = 0,
                      device: str | torch.device | None = None
                      ) -> tuple[ConSinGAN, PatchCritic, torch.Generator]:
    """Validate inputs, build the pyramid, an untrained model with one stage and its critic.

    Returns ``(model, critic, generator)``; the CPU ``generator`` drives every later random draw.
    It is seeded with ``stream_seed(seed + 1)`` (the model's own stream is ``stream_seed(seed)``):
    neither is ``torch.Generator().manual_seed(seed)``, which users sample with.
    """
    if not isinstance(cfg, ConSinGANConfig):
        raise ConfigError(f"cfg must be a ConSinGANConfig, got {type(cfg).__name__}")
    cfg.validate()
    img = check_gan_image(image, "train_consingan")
    shapes = stage_shapes(img.shape[-2], img.shape[-1], cfg)
    reals = [resize_to(img, s) for s in shapes]                      # (3, H_n, W_n) each
    dev = torch.device(device) if device is not None else get_device()
    model = ConSinGAN(cfg, reals, seed).to(dev)
    g = torch.Generator().manual_seed(stream_seed(seed + 1))
    critic = PatchCritic(cfg.channels, cfg.leaky_slope, g).to(dev)
    return model, critic, g


def train_stage(model: ConSinGAN, critic: PatchCritic, stage: int, g: torch.Generator, *,
                show_progress: bool = False, log_every: int = 10) -> float:
    """Grow to ``stage`` (if needed) and train it (ConSinGAN §3.1); returns seconds taken.

    The critic continues from the previous stage's weights (ConSinGAN re-initialises each
    stage's critic from the previous one) with fresh Adam states.
    """
    cfg, netG = model.config, model.netG
    if stage != model.n_active - 1 and stage != model.n_active:
        raise ConfigError(f"train_stage: stages are trained in order; next is {model.n_active}")
    start = time.perf_counter()
    if stage == model.n_active:                                      # new stage
        rec_prev = model.reconstruct()                               # (1, 3, H_{n−1}, W_{n−1})
        real = model.reals[stage].unsqueeze(0).to(model.device)
        model.noise_amps.append(noise_amplitude(real, resize_to(rec_prev, model.shapes[stage]),
                                                cfg.noise_amp))
        netG.grow()
    shapes = model.shapes[:stage + 1]
    real = model.reals[stage].unsqueeze(0).to(model.device)         # (1, 3, H, W)
    opt_g = make_adam(generator_param_groups(netG, stage, cfg), cfg.lr, cfg.betas, model.device)
    opt_d = make_adam(critic.parameters(), cfg.lr, cfg.betas, model.device)
    decay_at = int(cfg.lr_decay_at * cfg.iters_per_stage)
    zeros: list[torch.Tensor | None] = [None] * len(shapes)

    iters = range(cfg.iters_per_stage)
    if show_progress:
        iters = progress(iters, total=cfg.iters_per_stage,
                         desc=f"ConSinGAN stage {stage + 1}/{cfg.n_stages} {shapes[-1]}")
    for it in iters:
        if it == decay_at and it > 0:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * cfg.lr_decay
        z0 = torch.randn((1, 3, *shapes[0]), generator=g).to(model.device)
        noises = model._noises(1, shapes, 1, g)
        for _ in range(cfg.steps_d):                                 # critic: WGAN-GP
            with torch.no_grad():
                fake = netG(z0, noises, model.noise_amps, shapes)
            d_loss, parts = critic_loss(critic, real, fake, cfg.lambda_grad, g)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        critic.requires_grad_(False)
        for _ in range(cfg.steps_g):                                 # generator
            fake = netG(z0, noises, model.noise_amps, shapes)
            adv = generator_adv_loss(critic, fake)
            rec = reconstruction_loss(netG(model.z_star, zeros, model.noise_amps, shapes), real)
            g_loss = adv + cfg.alpha * rec
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        critic.requires_grad_(True)
        if it % log_every == 0 or it == cfg.iters_per_stage - 1:
            model.history.append({"scale": stage, "iter": it, "d_loss": d_loss.item(),
                                  "g_loss": g_loss.item(), "g_adv": adv.item(),
                                  "rec_loss": rec.item(), "wasserstein": parts["wasserstein"],
                                  "gp": parts["gp"]})
    netG.requires_grad_(False)
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    return time.perf_counter() - start


def _resume(path: Path, cfg: ConSinGANConfig, reals: list[torch.Tensor], seed: int
            ) -> tuple[ConSinGAN, dict[str, torch.Tensor], torch.Tensor]:
    """Reload finished stages from ``path`` (:func:`mil_core.checkpoint.resume_single_image`)."""
    return resume_single_image(path, ConSinGAN, cfg, reals, seed, unit="stage")


def train_consingan(image: torch.Tensor, cfg: ConSinGANConfig | None = None, *, seed: int = 0,
                    device: str | torch.device | None = None, show_progress: bool = True,
                    log_every: int = 10, checkpoint_dir: str | Path | None = None,
                    resume: bool = False, overwrite: bool = False,
                    callback: Callable[[ConSinGAN, int], None] | None = None) -> ConSinGAN:
    """Train ConSinGAN on one image (3, H, W) in [-1, 1]; deterministic on CPU for a seed.

    ``model.history`` gets one row per ``log_every`` iterations (scale, iter, d_loss,
    g_loss = g_adv + alpha·rec_loss, g_adv, rec_loss, wasserstein, gp); ``model.timings`` holds
    seconds_per_scale, total_seconds, iters_per_second and device (the keys of the SinGAN
    model). ``checkpoint_dir``: the model, the critic and the RNG state are saved atomically to
    ``checkpoint_dir/consingan.safetensors`` after each finished stage; with ``resume=True`` the
    finished stages are reloaded from there (same image, config and seed) and training goes on
    exactly as if uninterrupted. An existing checkpoint there is never replaced silently:
    without ``resume`` it raises CheckpointError unless ``overwrite=True``, which replaces it
    when the first new stage is saved (:func:`mil_core.checkpoint.prepare_checkpoint_path`).
    ``callback(model, n)`` runs after stage ``n`` is finished (after its checkpoint).

    Raises DataError / ConfigError for a bad image or config and CheckpointError for a
    checkpoint of another run, all before any training.
    """
    cfg = ConSinGANConfig() if cfg is None else cfg
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ConfigError(f"log_every must be a positive integer, got {log_every!r}")
    model, critic, gen = prepare_consingan(image, cfg, seed=seed, device=device)
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)
    if ckpt is not None and resume and ckpt.exists():
        dev = model.device
        model, critic_state, rng_state = _resume(ckpt, cfg, model.reals, int(seed))
        model.to(dev)
        critic.load_state_dict(critic_state)
        gen.set_state(rng_state)
    model.timings["device"] = str(model.device)
    for n in range(model.n_trained, cfg.n_stages):
        model.timings["seconds_per_scale"].append(
            train_stage(model, critic, n, gen, show_progress=show_progress, log_every=log_every))
        total = float(sum(model.timings["seconds_per_scale"]))
        model.timings["total_seconds"] = total
        model.timings["iters_per_second"] = cfg.iters_per_stage * (n + 1) / max(total, 1e-9)
        if ckpt is not None:
            model.save(ckpt, extra={"seed": int(seed), "rng": gen.get_state(),
                                    "critic": critic.state_dict()})
        if callback is not None:
            callback(model, n)
    return model.eval()
