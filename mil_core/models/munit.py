"""Single-domain MUNIT (Huang et al., ECCV 2018) as Generative Invariance Transfer uses it
(Zhou et al., ICLR 2022; REFERENCE §6).

MUNIT splits an image into a *content* code ``c = E^c(x)`` (a spatial map, meant to hold what a
translation keeps) and a *style* code ``s = E^s(x) ∈ R^8`` (a vector, meant to hold what it may
change), and a decoder ``G(c, s)`` maps them back to an image (Huang et al. Sec. 3.1). Its AdaIN
residual blocks take their affine parameters from an MLP of the style code::

    AdaIN(z, γ, β) = γ · (z − μ(z)) / σ(z) + β,      (γ, β) = MLP(s)     (Huang et al. Sec. 3.3)

with μ, σ taken per image and channel. GIT trains MUNIT on one long-tailed training set, both of
MUNIT's "domains" being that same set, and then uses ``x' = G(E^c(x), s)`` with ``s ~ N(0, I)`` as
a random draw from the learned nuisance distribution ``T(· | x)`` of ``x`` (Zhou et al. Sec. 4).
Since the two domains are one, this module holds ONE generator (content encoder, style encoder,
decoder) and ONE discriminator where NVlabs' trainer keeps ``gen_a``/``gen_b`` and
``dis_a``/``dis_b``: with identical domains the two copies learn the same map, and sharing them
halves the parameters (the ~15 M of REFERENCE §6 are one generator plus one discriminator).

Architecture (REFERENCE §6; all convolutions reflect-padded):

- content encoder: Conv7(dim) → ``n_downsample`` × Conv4/stride 2 (doubling) → ``n_res``
  residual blocks, InstanceNorm + ReLU throughout; (B, C, 28, 28) → (B, 4·dim, 7, 7);
- style encoder: Conv7(dim) → 2 × Conv4/stride 2 (doubling) → ``style_n_downsample − 2`` more at
  the same width → global average pool → Conv1×1 to ``style_dim`` 8; no normalisation (IN would
  remove the very statistics that carry style); (B, C, 28, 28) → (B, 8);
- decoder: ``n_res`` AdaIN residual blocks → ``n_downsample`` × (nearest ×2, Conv5 halving,
  LayerNorm, ReLU) → Conv7 → tanh; the MLP is 8 → ``mlp_dim`` → ``mlp_dim`` → 4·(4·dim)·n_res;
- discriminator: LSGAN patch critic, Conv4/stride 2 + LeakyReLU(0.2) × ``dis_n_layer`` then a
  Conv1×1 to one channel, on ``dis_scales`` scales (GIT: 1; NVlabs' default: 3) of the image.

LayerNorm is :class:`torch.nn.GroupNorm` with one group (per image over C, H, W, per-channel
affine); NVlabs' own layer divides by std + eps instead of sqrt(var + eps), a difference far
below training noise. Weight init follows NVlabs' configs: Kaiming-normal for the generator,
N(0, 0.02) for the discriminator, zero biases.

Training lives in :mod:`mil_core.models.munit_train`; this module is the config, the networks,
the inference API (:meth:`MUNIT.encode`, :meth:`MUNIT.decode`, :meth:`MUNIT.swap`,
:meth:`MUNIT.translate`, :meth:`MUNIT.generate`, :meth:`MUNIT.reconstruct`) and persistence.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import validation as check
from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError, ConfigError
from ..profiles import Profile, get_profile
from ..runtime import eval_mode

__all__ = ["MUNITConfig", "MUNIT", "MUNITGenerator", "ContentEncoder", "StyleEncoder",
           "AdaINDecoder", "Discriminator", "adain", "check_images"]

_KIND = "munit"
_STATE_VERSION = 1
@dataclass
class MUNITConfig:
    """One MUNIT run (defaults: GIT's K49 config, REFERENCE §6; NVlabs' names in quotes)."""
    in_channels: int = 1            # image channels: 1 (digits, K49, silhouettes) or 3 (CIFAR)
    image_size: int = 28            # side of the square inputs (K49: 28)
    dim: int = 64                   # width of the first conv of both encoders ("gen.dim")
    n_downsample: int = 2           # stride-2 convs of the content encoder = upsamplings of the
    #                                 decoder; content map side image_size / 2**n_downsample
    n_res: int = 4                  # residual blocks in the content encoder and in the decoder
    style_dim: int = 8              # length of the style code s ~ N(0, I) (MUNIT: 8)
    mlp_dim: int = 256              # hidden width of the MLP s → AdaIN (γ, β)
    style_n_downsample: int = 4     # stride-2 convs of the style encoder (first 2 double width)
    dis_dim: int = 64               # width of the discriminator's first conv ("dis.dim")
    dis_n_layer: int = 4            # stride-2 convs of the discriminator ("dis.n_layer")
    dis_scales: int = 1             # image scales the critic sees (GIT 1; NVlabs 3)
    iters: int = 10_000             # optimisation steps ("max_iter"; K49 10k, CIFAR 140k)
    d_steps: int = 1                # discriminator steps per generator step, each on a fresh
    #                                 batch (MUNIT / GIT: 1; the inner problem's depth, nb 11)
    batch_size: int = 1             # images per side and step (GIT / MUNIT: 1)
    lr: float = 1e-4                # Adam lr of generator and discriminator
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas ("beta1", "beta2")
    weight_decay: float = 1e-4      # Adam's L2 weight decay (added to the gradient, not AdamW)
    lr_step_size: int = 100_000     # lr × lr_gamma every this many steps ("step_size")
    lr_gamma: float = 0.5           # step decay factor ("gamma"); no decay within 10k steps
    gan_w: float = 1.0              # weight of the LSGAN terms L_GAN ("gan_w")
    recon_x_w: float = 10.0         # λ_x, image reconstruction L1 ("recon_x_w")
    recon_s_w: float = 1.0          # λ_s, style reconstruction L1 ("recon_s_w")
    recon_c_w: float = 1.0          # λ_c, content reconstruction L1 ("recon_c_w")
    recon_x_cyc_w: float = 0.0      # explicit cycle x → (c, s_rand) → x ("recon_x_cyc_w"; GIT 0)
    checkpoint_every: int = 500     # steps between atomic checkpoints (with checkpoint_dir)
    log_every: int = 10             # steps between rows of ``history``

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def from_profile(cls, profile: str | Profile, **overrides: Any) -> "MUNITConfig":
        """The config of a profile: ``git.image_size``, ``git.munit_iters`` steps,
        ``gan.checkpoint_every`` and the widths ``git.munit_dim`` (also the critic's),
        ``git.munit_n_res``, ``git.munit_mlp_dim`` (``paper``: REFERENCE §6's 64 / 4 / 256;
        ``cpu`` and ``smoke`` narrower). Keyword ``overrides`` replace fields."""
        prof = get_profile(profile)
        g = prof.git
        values: dict[str, Any] = dict(image_size=g.image_size, iters=g.munit_iters,
                                      checkpoint_every=prof.gan.checkpoint_every,
                                      dim=g.munit_dim, dis_dim=g.munit_dim, n_res=g.munit_n_res,
                                      mlp_dim=g.munit_mlp_dim)
        return check.with_overrides(cls, values, overrides)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        check.positive_ints(self, ("in_channels", "image_size", "dim", "n_downsample", "n_res",
                                   "style_dim", "mlp_dim", "dis_dim", "dis_n_layer",
                                   "dis_scales", "iters", "d_steps", "batch_size", "lr_step_size",
                                   "checkpoint_every", "log_every"))
        if isinstance(self.style_n_downsample, bool) or not isinstance(self.style_n_downsample,
                                                                       int) \
                or self.style_n_downsample < 2:
            raise ConfigError(f"MUNITConfig.style_n_downsample must be an integer >= 2, got "
                              f"{self.style_n_downsample!r}")
        check.positive_numbers(self, ("lr", "lr_gamma"))
        check.nonnegative_numbers(self, ("weight_decay", "gan_w", "recon_x_w", "recon_s_w",
                                         "recon_c_w", "recon_x_cyc_w"))
        check.adam_betas(self)
        if self.image_size % 2 ** self.n_downsample:
            raise ConfigError(f"MUNITConfig.image_size {self.image_size} must be divisible by "
                              f"2**n_downsample = {2 ** self.n_downsample}, so that the decoder "
                              "restores the input size; lower n_downsample")
        # every reflect-padded stride-2 conv needs an input side >= 2
        if self.image_size >> (self.style_n_downsample - 1) < 2:
            raise ConfigError(f"MUNITConfig.style_n_downsample {self.style_n_downsample} is too "
                              f"many stride-2 convs for {self.image_size}-pixel images; lower it")
        side = self.image_size
        for scale in range(self.dis_scales):
            if side >> (self.dis_n_layer - 1) < 2:
                raise ConfigError(f"MUNITConfig: the discriminator's scale {scale} sees "
                                  f"{side}-pixel images, too small for dis_n_layer="
                                  f"{self.dis_n_layer} stride-2 convs; lower dis_scales or "
                                  "dis_n_layer")
            side = (side + 1) // 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: ``MUNITConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @property
    def content_dim(self) -> int:
        """Channels of the content code: ``dim · 2**n_downsample``."""
        return self.dim * 2 ** self.n_downsample

    @property
    def content_size(self) -> int:
        """Side of the content code: ``image_size / 2**n_downsample`` (28 → 7)."""
        return self.image_size // 2 ** self.n_downsample


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
def _conv(in_ch: int, out_ch: int, k: int, stride: int = 1) -> nn.Conv2d:
    """A k×k conv, reflect-padded by (k − 1) // 2 (k = 4, stride 2 halves the side)."""
    return nn.Conv2d(in_ch, out_ch, k, stride, padding=(k - 1) // 2, padding_mode="reflect")


def _block(in_ch: int, out_ch: int, k: int, stride: int = 1, norm: str = "in",
           act: str = "relu") -> nn.Sequential:
    """conv → norm ("in", "ln" or "none") → activation ("relu", "lrelu" or "none")."""
    layers: list[nn.Module] = [_conv(in_ch, out_ch, k, stride)]
    if norm == "in":
        layers.append(nn.InstanceNorm2d(out_ch))        # no affine, no running statistics
    elif norm == "ln":
        layers.append(nn.GroupNorm(1, out_ch))           # MUNIT's LayerNorm (see module doc)
    if act == "relu":
        layers.append(nn.ReLU())
    elif act == "lrelu":
        layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def adain(z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``γ · (z − μ(z)) / σ(z) + β`` with μ, σ per image and channel (Huang et al. Sec. 3.3).

    z: (B, C, H, W); gamma, beta: (B, C) → (B, C, H, W)."""
    return F.instance_norm(z, eps=1e-5) * gamma[:, :, None, None] + beta[:, :, None, None]


class ResBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))``, 3×3 convs at constant width (content encoder)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_block(ch, ch, 3), _block(ch, ch, 3, act="none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)                                               # (B, C, h, w)


class AdaINResBlock(nn.Module):
    """The decoder's residual block: InstanceNorm replaced by :func:`adain` with per-image
    (γ₁, β₁, γ₂, β₂), all (B, C), taken from the style MLP."""
    n_params_per_channel = 4

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(ch, ch, 3), _conv(ch, ch, 3)

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        # x: (B, C, h, w); params: (B, 4C) = [γ₁ | β₁ | γ₂ | β₂]
        g1, b1, g2, b2 = params.chunk(4, dim=1)                               # 4 × (B, C)
        h = F.relu(adain(self.conv1(x), g1, b1))
        return x + adain(self.conv2(h), g2, b2)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
class ContentEncoder(nn.Module):
    """``E^c``: (B, C, H, W) → content code (B, dim·2**n_down, H/2**n_down, W/2**n_down)."""

    def __init__(self, cfg: MUNITConfig) -> None:
        super().__init__()
        layers, ch = [_block(cfg.in_channels, cfg.dim, 7)], cfg.dim
        for _ in range(cfg.n_downsample):
            layers.append(_block(ch, 2 * ch, 4, stride=2))
            ch *= 2
        layers += [ResBlock(ch) for _ in range(cfg.n_res)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                                # (B, 4·dim, 7, 7)


class StyleEncoder(nn.Module):
    """``E^s``: (B, C, H, W) → style code (B, style_dim); no normalisation layers."""

    def __init__(self, cfg: MUNITConfig) -> None:
        super().__init__()
        layers, ch = [_block(cfg.in_channels, cfg.dim, 7, norm="none")], cfg.dim
        for i in range(cfg.style_n_downsample):
            out = 2 * ch if i < 2 else ch
            layers.append(_block(ch, out, 4, stride=2, norm="none"))
            ch = out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1),
                                 nn.Conv2d(ch, cfg.style_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)                    # (B, style_dim, 1, 1) -> (B, style_dim)


class AdaINDecoder(nn.Module):
    """``G``: content (B, 4·dim, h, w) and style (B, style_dim) → image (B, C, H, W) in (−1, 1)."""

    def __init__(self, cfg: MUNITConfig) -> None:
        super().__init__()
        ch = cfg.content_dim
        self.blocks = nn.ModuleList(AdaINResBlock(ch) for _ in range(cfg.n_res))
        self.n_adain = AdaINResBlock.n_params_per_channel * ch * cfg.n_res
        self.mlp = nn.Sequential(nn.Linear(cfg.style_dim, cfg.mlp_dim), nn.ReLU(),
                                 nn.Linear(cfg.mlp_dim, cfg.mlp_dim), nn.ReLU(),
                                 nn.Linear(cfg.mlp_dim, self.n_adain))
        ups: list[nn.Module] = []
        for _ in range(cfg.n_downsample):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), _block(ch, ch // 2, 5, norm="ln")]
            ch //= 2
        self.up = nn.Sequential(*ups, _conv(ch, cfg.in_channels, 7), nn.Tanh())

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        params = self.mlp(style)                                      # (B, 4·C·n_res)
        h = content                                                   # (B, C, h, w)
        for block, p in zip(self.blocks, params.chunk(len(self.blocks), dim=1)):
            h = block(h, p)                                           # p: (B, 4C)
        return self.up(h)                                             # (B, in_ch, H, W)


class MUNITGenerator(nn.Module):
    """MUNIT's auto-encoder: ``encode`` = (E^c, E^s), ``decode`` = G (Huang et al. Sec. 3.1)."""

    def __init__(self, cfg: MUNITConfig) -> None:
        super().__init__()
        self.content = ContentEncoder(cfg)
        self.style = StyleEncoder(cfg)
        self.decoder = AdaINDecoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.content(x), self.style(x)           # (B, 4·dim, 7, 7), (B, style_dim)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decoder(content, style)             # (B, in_ch, H, W)


class Discriminator(nn.Module):
    """LSGAN patch critic on ``dis_scales`` scales; ``forward`` returns one score map per scale,
    [(B, 1, h_k, w_k)]; the next scale is a 3×3/stride-2 average pool of the previous one."""

    def __init__(self, cfg: MUNITConfig) -> None:
        super().__init__()

        def one_scale() -> nn.Sequential:
            layers, ch = [_block(cfg.in_channels, cfg.dis_dim, 4, 2, "none", "lrelu")], cfg.dis_dim
            for _ in range(cfg.dis_n_layer - 1):
                layers.append(_block(ch, 2 * ch, 4, 2, "none", "lrelu"))
                ch *= 2
            return nn.Sequential(*layers, nn.Conv2d(ch, 1, 1))

        self.nets = nn.ModuleList(one_scale() for _ in range(cfg.dis_scales))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, net in enumerate(self.nets):
            if k:
                x = self.down(x)                                      # (B, C, ⌈h/2⌉, ⌈w/2⌉)
            outs.append(net(x))                                       # (B, 1, h_k, w_k)
        return outs


def _init_weights(module: nn.Module, kind: str) -> None:
    """NVlabs' init: ``kaiming`` (generator) or ``gaussian`` N(0, 0.02) (critic); zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)


def check_images(x: Any, cfg: MUNITConfig, what: str) -> torch.Tensor:
    """``x`` as a float tensor (B, in_channels, image_size, image_size) in [−1, 1], or a
    ConfigError naming ``what`` and how to fix the input (a 1e-4 range tolerance, clamped)."""
    want = f"(B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size})"
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{what} expects a float image tensor {want} in [-1, 1], got "
                          f"{type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
        hint = ("; add the channel axis with x.unsqueeze(1)" if x.dim() == 3 else
                "; MUNITConfig.in_channels / image_size say what the model takes")
        raise ConfigError(f"{what} expects images {want}, got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ConfigError(f"{what} got an empty batch {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ConfigError(f"{what} expects float images in [-1, 1], got {x.dtype}; convert uint8 "
                          "images with mil_core.data.nuisance.to_float(x) * 2 - 1")
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{what}: the images contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise ConfigError(f"{what} expects pixel values in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                          "images in [0, 1] become [-1, 1] with x * 2 - 1")
    return x.float().clamp(-1, 1)


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
class MUNIT(nn.Module):
    """A (partly) trained single-domain MUNIT: ``G`` (:class:`MUNITGenerator`), ``D``
    (:class:`Discriminator`), ``config``, ``history`` (loss rows) and ``timings``.

    Train it with :func:`mil_core.models.munit_train.train_munit`. The inference methods check
    their input, run without gradients in evaluation mode, and keep the model's mode.
    """

    def __init__(self, config: MUNITConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.G = MUNITGenerator(config)
        self.D = Discriminator(config)
        _init_weights(self.G, "kaiming")
        _init_weights(self.D, "gaussian")
        self.history: list[dict[str, float]] = []
        self.timings: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def n_parameters(self) -> dict[str, int]:
        """Parameter counts of the generator ``G`` and the critic ``D``."""
        return {name: sum(p.numel() for p in net.parameters())
                for name, net in (("G", self.G), ("D", self.D))}

    # --- inference ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content (B, 4·dim, 7, 7), style (B, style_dim)) of images x (B, C, 28, 28) in
        [−1, 1]: ``(E^c(x), E^s(x))``; differentiable (the model's mode is used)."""
        return self.G.encode(check_images(x, self.config, "MUNIT.encode").to(self.device))

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``G(c, s)``: content (B, 4·dim, 7, 7) and style (B, style_dim) → (B, C, 28, 28)."""
        cfg = self.config
        want = (cfg.content_dim, cfg.content_size, cfg.content_size)
        if not isinstance(content, torch.Tensor) or content.dim() != 4 \
                or tuple(content.shape[1:]) != want:
            got = tuple(content.shape) if isinstance(content, torch.Tensor) else type(content)
            raise ConfigError(f"MUNIT.decode: content must be (B, {want[0]}, {want[1]}, "
                              f"{want[2]}) as MUNIT.encode returns it, got {got}")
        style = self._check_styles(style, content.shape[0], "MUNIT.decode")
        return self.G.decode(content.to(self.device), style.to(self.device))

    def swap(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """``G(E^c(x), s)``: x's content with the given styles (B, style_dim) (or one style
        (style_dim,) / (1, style_dim) for every image); (B, C, 28, 28), no gradients."""
        x = check_images(x, self.config, "MUNIT.swap")
        styles = self._check_styles(styles, x.shape[0], "MUNIT.swap")
        with torch.no_grad(), eval_mode(self):
            return self.G.decode(self.G.content(x.to(self.device)), styles.to(self.device))

    def translate(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
                  chunk_size: int = 256) -> torch.Tensor:
        """GIT's augmentation ``x' = G(E^c(x), s)``, ``s ~ N(0, I)`` one per image (Zhou et al.
        Sec. 4): (B, C, 28, 28) → (B, C, 28, 28) in [−1, 1], no gradients. The styles are drawn
        first, on the CPU, from ``generator`` (None: torch's global RNG), so the result does not
        depend on ``chunk_size`` (images per forward pass) or the device."""
        return self.generate(x, 1, generator=generator, chunk_size=chunk_size)[:, 0]

    def generate(self, images: torch.Tensor, n_samples: int = 1, *,
                 generator: torch.Generator | None = None, chunk_size: int = 256
                 ) -> torch.Tensor:
        """``n_samples`` random translations of every image: (B, n_samples, C, 28, 28)."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"MUNIT.generate: n_samples must be a positive integer, got "
                              f"{n_samples!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"MUNIT.generate: chunk_size must be a positive integer, got "
                              f"{chunk_size!r}")
        x = check_images(images, self.config, "MUNIT.generate")
        b = x.shape[0]
        styles = torch.randn(b, n_samples, self.config.style_dim, generator=generator)
        x = x.repeat_interleave(n_samples, dim=0)                     # (B·n, C, H, W), image-major
        styles = styles.reshape(b * n_samples, -1)                    # (B·n, style_dim)
        outs = [self.swap(x[i:i + chunk_size], styles[i:i + chunk_size])
                for i in range(0, x.shape[0], chunk_size)]
        return torch.cat(outs).reshape(b, n_samples, *x.shape[1:])

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``G(E^c(x), E^s(x))``, x's own content and style (B, C, 28, 28), no gradients."""
        x = check_images(x, self.config, "MUNIT.reconstruct").to(self.device)
        with torch.no_grad(), eval_mode(self):
            return self.G.decode(*self.G.encode(x))

    def _check_styles(self, s: Any, b: int, what: str) -> torch.Tensor:
        d = self.config.style_dim
        if isinstance(s, torch.Tensor) and s.dim() == 1:
            s = s[None]
        if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[1] != d \
                or s.shape[0] not in (1, b) or not s.is_floating_point():
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ConfigError(f"{what}: styles must be a float tensor ({b}, {d}), (1, {d}) or "
                              f"({d},), got {got}")
        if not bool(torch.isfinite(s).all()):
            raise ConfigError(f"{what}: the styles contain NaN or infinite values")
        return s.expand(b, d)

    # --- persistence -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model (tensors and plain values only)."""
        return {"kind": _KIND, "version": _STATE_VERSION, "config": self.config.to_dict(),
                "G": self.G.state_dict(), "D": self.D.state_dict(),
                "history": list(self.history), "timings": dict(self.timings)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "MUNIT":
        """Inverse of :meth:`state`; raises CheckpointError for anything else."""
        if not isinstance(state, dict) or state.get("kind") != _KIND:
            raise CheckpointError("not a MUNIT checkpoint (its state has no kind='munit')")
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise CheckpointError("this MUNIT checkpoint was written by a newer mil_core")
        try:
            model = cls(MUNITConfig(**state["config"]))
            model.G.load_state_dict(state["G"])
            model.D.load_state_dict(state["D"])
            model.history = [dict(row) for row in state.get("history", [])]
            model.timings = dict(state.get("timings", {}))
        except (KeyError, TypeError, RuntimeError, ConfigError) as exc:
            raise CheckpointError(f"damaged MUNIT checkpoint: {exc}") from exc
        return model.eval()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the model to ``path`` (safetensors + JSON; never a pickle)."""
        state = self.state()
        if extra:
            state["extra"] = extra
        meta = {"kind": _KIND, "config": self.config.to_dict()}
        return save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu") -> "MUNIT":
        """Load a model written by :meth:`save` (or a training checkpoint)."""
        model = cls.from_state(load_checkpoint(path, map_location="cpu"))
        return model.to(map_location) if map_location is not None else model
