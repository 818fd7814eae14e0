"""MIL's hyper-GAN: one network that emits a whole SinGAN per image (Bensadoun et al. 2021).

Notation of the paper (Sec. 3–4; REFERENCE §4). For an image ``I`` with pyramid ``x_0 … x_N``:

- the hyper-generator ``f`` embeds a fixed-size copy of ``I`` (:class:`ResNetEncoder`) and a
  projection head per scale emits the weights ``θ_n(I)`` of the primary generator ``G_n``;
- the hyper-discriminator ``h`` — a *separate* encoder and heads — emits the critic ``D(I)``
  (or, in the single-image regime and the shared-discriminator ablation, one ordinary critic
  serves every image);
- generation is SinGAN's residual coarse-to-fine chain with the generated weights::

      x̃_0 = G_0(z_0; θ_0(I))
      x̃_n = G_n(σ_n·z_n + ↑x̃_{n−1}; θ_n(I)) + ↑x̃_{n−1}

  with one noise amplitude ``σ_n`` per scale for the whole data set (``σ_0 = 1``) and the
  reconstruction path using a fixed ``z*`` at scale 0 (shared by all images) and zero noise above.

The primary nets of a batch run as one grouped convolution (:mod:`mil_core.models.hypernet`).
Training lives in :mod:`mil_core.models.hypergan_train`; this module is the model and the
inference API: :meth:`HyperGAN.generate`, :meth:`HyperGAN.reconstruct`, :meth:`HyperGAN.embed`
and :meth:`HyperGAN.generator_weights` (for interpolation and feed-forward modelling).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..checkpoint import (checkpoint_metadata, load_checkpoint, restore_run_log,
                          save_checkpoint)
from ..data.pyramid import PyramidConfig, center_crop_to_aspect, plan_pyramid, resize_to
from .. import validation as check

from ..errors import CheckpointError, ConfigError, DataError, NoveltyWarning
from ..novelty import NOVELTY_WARN, NoveltyReference, fit_novelty, reconstruction_ratio
from ..profiles import Profile, get_profile
from ..runtime import eval_mode
from .blocks import check_gan_image, upsample, zero_pad
from .hypernet import NetWeights, PrimarySpec, ProjectionHeads, SharedWeights, primary_forward
from .resnet import ResNetEncoder, backbone_config, load_torchvision_resnet

__all__ = ["HyperGANConfig", "HyperGAN", "HyperGenerator", "HyperDiscriminator",
           "SharedDiscriminator", "REGIMES", "EXTRACTORS", "canonical_shapes",
           "critic_parameters", "load_encoder_weights"]

REGIMES = ("single", "minibatch", "dataset")   # MIL's three training regimes (paper Sec. 5)
_KIND = "hypergan"
_STATE_VERSION = 1
EXTRACTORS = ("separate", "shared-both", "shared-g")   # the critic's encoder (Props. 3–4)


@dataclass
class HyperGANConfig:
    """Everything a hyper-GAN run depends on (defaults: MIL's code on Places-50, REFERENCE §4)."""
    pyramid: PyramidConfig = field(default_factory=lambda: PyramidConfig(
        min_size=25, max_size=250, n_scales=7, aspect=0.75, upscale=True))  # scales of every image
    embed_size: int = 128               # side of the square copy the encoders read
    embed_dim: int = 512                # embedding size every projection head reads
    backbone: str = "resnet34"          # "resnet34" (paper) or "resnet-small" (cpu / smoke)
    norm: str = "group"                 # encoder normalisation: "group" (per image) or "batch"
    channels: int = 64                  # width of the generated primary G and D
    discriminator: str = "hyper"        # "hyper" (per-image critic) or "shared" (one critic)
    extractor: str = "separate"         # the critic's encoder: "separate" (MIL), or G's own —
    #                                     "shared-both" (Props. 3–4, Case 1: both players update
    #                                     it) or "shared-g" (Case 2: only G does); see below
    iters_per_scale: int = 4000         # optimisation steps per scale
    batch_size: int = 16                # images per step (global batch in a distributed run)
    steps_d: int = 1                    # critic updates per iteration
    steps_g: int = 1                    # generator updates per iteration
    lr_g: float = 5e-5                  # Adam lr of the hyper-generator
    lr_d: float = 5e-5                  # Adam lr of the (hyper-)discriminator
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas
    lr_decay_at: float = 0.8            # lr ×0.1 after this fraction of a scale's iterations
    grad_clip: float = 1.0              # max gradient norm for G and D (0: no clipping)
    lambda_grad: float = 0.1            # WGAN-GP weight (Eq. 12)
    alpha: float = 50.0                 # reconstruction weight (Eq. 13)
    rec_mode: str = "current"           # "current" scale only (code) or "accumulated" (Eq. 15)
    noise_amp_factor: float = 1.0       # σ_n = factor · RMSE(x_n, ↑x̃_{n−1}) (MIL: 1, SinGAN 0.1)
    head_layers: int = 1                # Linear layers per projection head: 1 (MIL), 3 or 5
    #                                     (Appendix C); G's heads and the hyper-critic's
    head_rank: int = 0                  # 0: full heads (MIL); r > 0: compact rank-r heads, each
    #                                     net a per-image mix of r basis nets (ProjectionHeads)
    head_fan_in_scale: bool = True      # rank-r heads: scale c by D/r so that Adam moves the
    #                                     generated weights as fast as MIL's heads do (see
    #                                     ProjectionHeads); False: the plain factorisation
    encoder_frozen: bool = False        # G's encoder fixed through training (Appendix C)
    encoder_weights: str = ""           # G's encoder weights at the start of training: a
    #                                     hyper-GAN checkpoint, or a torchvision-format ResNet
    #                                     state dict (.pth / .safetensors; norm="batch"); "":
    #                                     random initialisation (see load_encoder_weights)
    checkpoint_every: int = 500         # steps between atomic checkpoints (with checkpoint_dir)
    log_every: int = 10                 # steps between rows of ``history``

    def __post_init__(self) -> None:
        if isinstance(self.pyramid, dict):
            self.pyramid = PyramidConfig(**self.pyramid)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def from_profile(cls, profile: str | Profile, regime: str = "dataset",
                     n_images: int = 1, **overrides: Any) -> "HyperGANConfig":
        """The config of a profile and regime (REFERENCE §4, paper Sec. 5).

        ``single``: one image, an ordinary critic, ``gan.iters_per_scale`` steps per scale;
        ``minibatch``: a fixed set of images, all in every step, a hyper-critic, same steps;
        ``dataset``: batches of ``gan.batch_size`` streamed from the data set, a hyper-critic,
        ``gan.dataset_iters_per_scale`` steps. ``n_images``: the batch of the ``single`` and
        ``minibatch`` regimes (every image in every step). Keyword ``overrides`` replace fields.
        """
        if regime not in REGIMES:
            raise ConfigError(f"regime must be one of {', '.join(REGIMES)}, got {regime!r}")
        prof = get_profile(profile)
        g, im = prof.gan, prof.image
        values: dict[str, Any] = dict(
            pyramid=PyramidConfig.from_profile(im, "mil"), embed_size=im.embed_size,
            embed_dim=g.embed_dim, backbone=g.backbone, channels=g.mil_channels,
            discriminator="shared" if regime == "single" else "hyper",
            iters_per_scale=g.dataset_iters_per_scale if regime == "dataset" else g.iters_per_scale,
            batch_size=g.batch_size if regime == "dataset" else int(n_images),
            checkpoint_every=g.checkpoint_every, lr_g=g.mil_lr, lr_d=g.mil_lr)
        return check.with_overrides(cls, values, overrides)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        if not isinstance(self.pyramid, PyramidConfig):
            raise ConfigError("HyperGANConfig.pyramid must be a PyramidConfig")
        self.pyramid.validate()
        if self.pyramid.aspect is None or self.pyramid.n_scales is None:
            raise ConfigError("HyperGANConfig.pyramid needs a forced aspect and a fixed n_scales "
                              "(every image of a data set shares one pyramid), e.g. "
                              "PyramidConfig.from_profile(profile.image, 'mil')")
        check.positive_ints(self, ("embed_size", "embed_dim", "channels", "iters_per_scale",
                                   "batch_size", "steps_d", "steps_g", "checkpoint_every",
                                   "log_every"))
        if self.embed_size < 16:
            raise ConfigError(f"HyperGANConfig.embed_size must be >= 16, got {self.embed_size}")
        backbone_config(self.backbone, "group")            # raises for an unknown name
        choices = {"norm": ("group", "batch"), "discriminator": ("hyper", "shared"),
                   "rec_mode": ("current", "accumulated"), "extractor": EXTRACTORS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"HyperGANConfig.{name} must be one of {allowed}, got "
                                  f"{getattr(self, name)!r}")
        if self.extractor != "separate" and self.discriminator != "hyper":
            raise ConfigError(f"HyperGANConfig.extractor={self.extractor!r} shares the hyper-"
                              "critic's encoder with the generator; it needs discriminator="
                              "'hyper' (a shared critic has no encoder)")
        if isinstance(self.head_layers, bool) or not isinstance(self.head_layers, int) \
                or self.head_layers < 1:
            raise ConfigError(f"HyperGANConfig.head_layers must be an integer >= 1 (1: MIL's "
                              f"linear heads), got {self.head_layers!r}")
        if isinstance(self.head_rank, bool) or not isinstance(self.head_rank, int) \
                or self.head_rank < 0:
            raise ConfigError(f"HyperGANConfig.head_rank must be an integer >= 0 (0: full "
                              f"heads), got {self.head_rank!r}")
        if not isinstance(self.head_fan_in_scale, bool):
            raise ConfigError(f"HyperGANConfig.head_fan_in_scale must be True or False, got "
                              f"{self.head_fan_in_scale!r}")
        if not isinstance(self.encoder_frozen, bool):
            raise ConfigError(f"HyperGANConfig.encoder_frozen must be True or False, got "
                              f"{self.encoder_frozen!r}")
        if not isinstance(self.encoder_weights, str):
            raise ConfigError(f"HyperGANConfig.encoder_weights must be a file path (str) or "
                              f"'', got {type(self.encoder_weights).__name__}")
        if self.encoder_frozen and self.extractor != "separate":
            raise ConfigError(f"HyperGANConfig.encoder_frozen with extractor="
                              f"{self.extractor!r}: the shared-extractor ablation trains the "
                              "one encoder by design; use extractor='separate'")
        check.positive_numbers(self, ("lr_g", "lr_d"))
        check.nonnegative_numbers(self, ("grad_clip", "lambda_grad", "alpha", "noise_amp_factor"))
        check.adam_betas(self)
        check.fraction(self, "lr_decay_at")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: ``HyperGANConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @property
    def head(self) -> str:
        """A short name of the head variant, e.g. ``"linear"``, ``"3-layer"``, ``"rank 16"``."""
        depth = f"{self.head_layers}-layer" if self.head_layers > 1 else ""
        kind = f"rank {self.head_rank}" if self.head_rank else ("linear" if not depth else "")
        return " ".join(k for k in (depth, kind) if k)

    @property
    def g_spec(self) -> PrimarySpec:
        return PrimarySpec(in_ch=3, channels=self.channels, out_ch=3, tail="tanh")

    @property
    def d_spec(self) -> PrimarySpec:
        return PrimarySpec(in_ch=3, channels=self.channels, out_ch=1, tail="none")


def canonical_shapes(pyramid: PyramidConfig) -> list[tuple[int, int]]:
    """The (H, W) of every scale shared by all images of a data set (coarse → fine): the pyramid
    of an image with exactly the forced aspect and ``max_size`` long side."""
    a, m = float(pyramid.aspect), pyramid.max_size       # type: ignore[arg-type]
    h, w = (max(1, round(m * a)), m) if a <= 1 else (m, max(1, round(m / a)))
    return plan_pyramid(h, w, pyramid).shapes


class HyperGenerator(nn.Module):
    """``f``: encoder + one :class:`ProjectionHeads` per scale (heads are added as scales grow).

    ``forward(x_embed, stop)``: x_embed (B, 3, S, S) → (embedding (B, D), [NetWeights of scales
    0 … stop−1]). The embedding is computed once and feeds every head.
    """

    def __init__(self, cfg: HyperGANConfig) -> None:
        super().__init__()
        self.spec = cfg.g_spec
        self.embed_dim = cfg.embed_dim
        self.head_args = (cfg.head_layers, cfg.head_rank, cfg.head_fan_in_scale)
        self.encoder_frozen = cfg.encoder_frozen
        self.encoder = ResNetEncoder(backbone_config(cfg.backbone, cfg.norm), cfg.embed_dim)
        if self.encoder_frozen:
            self.encoder.requires_grad_(False)
        self.heads = nn.ModuleList()

    def train(self, mode: bool = True) -> "HyperGenerator":
        """As ``nn.Module.train``, except that a frozen encoder always stays in evaluation
        mode (its BatchNorm statistics, if any, never move)."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def add_head(self) -> ProjectionHeads:
        """Append the next scale's head: a copy of the previous one (MIL's progressive training),
        or a freshly initialised one for scale 0."""
        head = ProjectionHeads(self.spec, self.embed_dim, *self.head_args)
        if len(self.heads):
            head.load_state_dict(self.heads[-1].state_dict())
        head.to(next(self.encoder.parameters()).device)
        self.heads.append(head)
        return head

    def weights_from_embedding(self, e: torch.Tensor, stop: int | None = None
                               ) -> list[NetWeights]:
        # e: (B, D) -> per scale NetWeights
        stop = len(self.heads) if stop is None else stop
        return [self.heads[s](e) for s in range(stop)]

    def forward(self, x_embed: torch.Tensor, stop: int | None = None
                ) -> tuple[torch.Tensor, list[NetWeights]]:
        if self.encoder_frozen:                 # no graph through a fixed encoder (memory)
            with torch.no_grad():
                e = self.encoder(x_embed)                           # (B, D)
        else:
            e = self.encoder(x_embed)                               # (B, D)
        return e, self.weights_from_embedding(e, stop)


class HyperDiscriminator(nn.Module):
    """``h``: an encoder and one head set emitting each image's critic (REFERENCE §4: one head
    set serves every scale and always sees the scale being trained).

    The encoder is its own (``extractor="separate"``, MIL) or the generator's ``encoder``, passed
    in, for the shared-feature-extractor ablation (MIL Sec. 4.2, Props. 3–4). Which parameters
    each optimiser owns (:func:`critic_parameters`; G's optimiser always owns G's encoder and the
    head being trained):

    - ``separate``: the critic's optimiser owns its own encoder and heads;
    - ``shared-both`` (Case 1): it owns the heads *and* the shared encoder, so the encoder takes
      the critic's descent on the critic loss and G's descent on the generator loss;
    - ``shared-g`` (Case 2): it owns the heads only; the critic reads the shared embedding
      detached, so only G's loss updates the encoder.
    """

    def __init__(self, cfg: HyperGANConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.spec = cfg.d_spec
        self.extractor = cfg.extractor
        if (encoder is None) != (cfg.extractor == "separate"):
            raise ConfigError(f"HyperDiscriminator: extractor={cfg.extractor!r} "
                              f"{'needs' if encoder is None else 'takes no'} shared encoder")
        self.encoder = (ResNetEncoder(backbone_config(cfg.backbone, cfg.norm), cfg.embed_dim)
                        if encoder is None else encoder)
        self.heads = ProjectionHeads(self.spec, cfg.embed_dim, cfg.head_layers, cfg.head_rank,
                                     cfg.head_fan_in_scale)

    def forward(self, x_embed: torch.Tensor) -> NetWeights:
        # x_embed: (B, 3, S, S) -> NetWeights of B critics
        e = self.encoder(x_embed)                                   # (B, D)
        return self.heads(e.detach() if self.extractor == "shared-g" else e)


class SharedDiscriminator(nn.Module):
    """One ordinary critic for every image (single-image regime; shared-D ablation, Prop. 2)."""

    def __init__(self, cfg: HyperGANConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = cfg.d_spec
        self.net = SharedWeights(self.spec, generator)

    def forward(self, x_embed: torch.Tensor) -> NetWeights:
        return self.net(x_embed.shape[0])


def critic_parameters(model: "HyperGAN") -> list[nn.Parameter]:
    """The parameters the critic's optimiser owns (see :class:`HyperDiscriminator`): all of
    ``model.D``'s, except its (shared) encoder's in the ``shared-g`` case."""
    if model.config.extractor == "shared-g":
        return list(model.D.heads.parameters())
    return list(model.D.parameters())


class HyperGAN(nn.Module):
    """A (partly) trained hyper-GAN: ``G`` (:class:`HyperGenerator`), ``D``, ``z_star``,
    per-scale ``noise_amps``, the shared ``shapes``, ``config``, ``history`` and ``timings``.

    Build and train it with :func:`mil_core.models.hypergan_train.train_hypergan`.
    """

    def __init__(self, config: HyperGANConfig, z_star: torch.Tensor | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.shapes: list[tuple[int, int]] = canonical_shapes(config.pyramid)
        self.G = HyperGenerator(config)
        shared = self.G.encoder if config.extractor != "separate" else None
        self.D: nn.Module = (HyperDiscriminator(config, shared) if config.discriminator == "hyper"
                             else SharedDiscriminator(config))
        if z_star is None:
            z_star = torch.randn(1, 3, *self.shapes[0])
        self.register_buffer("z_star", z_star.detach().clone())     # (1, 3, H_0, W_0)
        self.noise_amps: list[float] = []
        self.history: list[dict[str, float]] = []
        self.novelty: NoveltyReference | None = None   # the training embeddings (set by training)
        self.timings: dict[str, Any] = {"seconds_per_scale": [], "total_seconds": 0.0,
                                        "iters_per_second": 0.0, "device": "cpu",
                                        "world_size": 1, "n_images": 0}

    # --- facts -------------------------------------------------------------------------------
    @property
    def n_scales(self) -> int:
        return len(self.shapes)

    @property
    def n_trained(self) -> int:
        """Scales whose noise amplitude is fixed, i.e. finished (== n_scales when done)."""
        return len(self.noise_amps)

    @property
    def device(self) -> torch.device:
        return self.z_star.device

    def head_parameters(self) -> list[int]:
        """Parameters of each scale's generator head (the paper's main cost, REFERENCE §4)."""
        return [sum(p.numel() for p in h.parameters()) for h in self.G.heads]

    # --- preparing images --------------------------------------------------------------------
    def pyramid(self, images: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Crop every image to the forced aspect and resize it to every scale.

        ``images``: a (B, 3, H, W) tensor or a list of (3, H_i, W_i) tensors in [-1, 1] of any
        size. Returns [(B, 3, H_s, W_s) for each scale], coarse → fine, on the CPU.
        """
        imgs = _as_image_list(images)
        out: list[list[torch.Tensor]] = [[] for _ in self.shapes]
        for img in imgs:
            crop = center_crop_to_aspect(img, self.config.pyramid.aspect)
            for s, shape in enumerate(self.shapes):
                out[s].append(resize_to(crop, shape, self.config.pyramid.antialias).clamp(-1, 1))
        return [torch.stack(o) for o in out]

    def embed_input(self, images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The fixed-size copies the encoders read: (B, 3, S, S) (aspect ignored, as in MIL)."""
        imgs = _as_image_list(images)
        s = self.config.embed_size
        return torch.stack([resize_to(center_crop_to_aspect(i, self.config.pyramid.aspect),
                                      (s, s)).clamp(-1, 1) for i in imgs])

    # --- inference ---------------------------------------------------------------------------
    def _require_trained(self) -> None:
        if self.n_trained == 0:
            raise ConfigError("this HyperGAN has no trained scale yet; train it with "
                              "mil_core.models.hypergan_train.train_hypergan")

    def embed(self, images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The hyper-generator's embeddings ``e(I)``: (B, embed_dim), evaluation mode."""
        x = self.embed_input(images).to(self.device)
        with torch.no_grad(), eval_mode(self.G):
            return self.G.encoder(x)

    def novelty_scores(self, images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """``(B,)``: each image's reconstruction ratio over the reference's 95th percentile
        (:mod:`mil_core.novelty`; ≲ 1 when modelled as well as the reference images)."""
        if self.novelty is None:
            raise ConfigError("this HyperGAN has no novelty reference (it was trained on one "
                              "image, or saved by an older mil_core); set one with "
                              "model.calibrate_novelty(held_out_images)")
        return self.novelty.score(self._reconstruction_ratios(images, self.embed(images)))

    def calibrate_novelty(self, images: torch.Tensor | Sequence[torch.Tensor]) -> NoveltyReference:
        """Measure the novelty scale on ``images`` (≥ 2 held-out images like the training
        ones) instead of the training images; returns and keeps the new reference."""
        imgs = _as_image_list(images)
        self.novelty = fit_novelty(self._reconstruction_ratios(imgs, self.embed(imgs)),
                                   source="held-out")
        return self.novelty

    def _reconstruction_ratios(self, images: Any, e: torch.Tensor) -> torch.Tensor:
        reals = self.pyramid(images)[self.n_trained - 1].to(self.device)
        return reconstruction_ratio(self.reconstruct(embeddings=e), reals)

    def _warn_if_novel(self, images: Any, e: torch.Tensor) -> None:
        if self.novelty is None:
            return
        scores = self.novelty.score(self._reconstruction_ratios(images, e))
        far = [(k, float(v)) for k, v in enumerate(scores) if v > NOVELTY_WARN]
        if far:
            listed = ", ".join(f"image {k}: {v:.1f}" for k, v in far)
            warnings.warn(f"the generator emitted for this input reconstructs it worse than "
                          f"{NOVELTY_WARN:g}× the {self.novelty.source} images' 95th percentile "
                          f"(novelty score {listed}): the model is extrapolating and its samples "
                          "may not follow the input; see model.novelty_scores(images)",
                          NoveltyWarning, stacklevel=3)

    def generator_weights(self, embeddings: torch.Tensor, stop: int | None = None
                          ) -> list[NetWeights]:
        """Per-scale generated weights of the images with ``embeddings`` (B, embed_dim):
        ``[[(w, b) per layer] per scale]`` with w (B, out, in, 3, 3) and b (B, out); computed
        without gradients (detached)."""
        self._require_trained()
        e = _check_embeddings(embeddings, self.config.embed_dim).to(self.device)
        with torch.no_grad(), eval_mode(self.G):
            return self.G.weights_from_embedding(e, self.n_trained if stop is None else stop)

    def run_scales(self, weights: list[NetWeights], n_samples: int, *,
                   shapes: list[tuple[int, int]] | None = None, reconstruct: bool = False,
                   noise: list[torch.Tensor] | None = None, start: int = 0,
                   x: torch.Tensor | None = None, amps: list[float] | None = None,
                   keep_all: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """SinGAN's residual chain with generated weights, scales ``start … len(weights)−1``.

        ``weights``: per scale NetWeights of B images; every image gets ``n_samples`` samples
        (image-major, batch B·n_samples). ``noise``: per scale standard-normal maps
        (B·n_samples, 3, H_s, W_s) (None: drawn from torch's global RNG); ``reconstruct``: z* at
        scale 0, zero noise above. ``x``: the previous output to start from (None: zeros).
        ``amps``: noise amplitudes (default ``noise_amps``). Returns the last scale's output
        (un-clamped), or the outputs of every run scale with ``keep_all``.
        """
        shapes = self.shapes if shapes is None else shapes
        amps = self.noise_amps if amps is None else amps
        spec = self.config.g_spec
        n = weights[start][0][0].shape[0] * n_samples
        outs: list[torch.Tensor] = []
        for s in range(start, len(weights)):
            shape = shapes[s]
            prev = (torch.zeros(n, 3, *shape, device=self.device) if x is None
                    else upsample(x, shape))                                   # (n, 3, H, W)
            if reconstruct:
                z = (self.z_star.expand(n, -1, -1, -1) if s == 0 else torch.zeros_like(prev))
            else:
                zs = noise[s] if noise is not None else torch.randn(n, 3, *shape)
                z = amps[s] * zs.to(prev)
            x = primary_forward(zero_pad(z + prev, self.config.g_spec.pad), weights[s], spec) + prev
            outs.append(x)
        return outs if keep_all else outs[-1]

    def generate(self, images: torch.Tensor | Sequence[torch.Tensor] | None = None,
                 n_samples: int = 1, size: tuple[int, int] | None = None, *,
                 embeddings: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Random samples of each image's generated SinGAN: (B, n_samples, 3, H, W) in [-1, 1].

        Give ``images`` (any size; cropped to the aspect and embedded) or their ``embeddings``.
        ``size=(H, W)`` asks for another output size or aspect: every scale's noise map is
        scaled by the same ratio (the primary nets are fully convolutional). Noise is drawn on
        the CPU from ``generator`` (None: torch's global RNG).
        """
        self._require_trained()
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"generate: n_samples must be a positive integer, got {n_samples!r}")
        e = self._embeddings(images, embeddings)
        if images is not None:
            self._warn_if_novel(images, e)
        shapes = self.shapes[:self.n_trained] if size is None else self.scaled_shapes(size)
        weights = self.generator_weights(e)
        b = e.shape[0]
        noise = [torch.randn(b * n_samples, 3, *s, generator=generator) for s in shapes]
        with torch.no_grad(), eval_mode(self.G):
            out = self.run_scales(weights, n_samples, shapes=shapes, noise=noise)
        return out.clamp(-1, 1).reshape(b, n_samples, 3, *shapes[-1])

    def reconstruct(self, images: torch.Tensor | Sequence[torch.Tensor] | None = None,
                    scale: int | None = None, *, embeddings: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """The fixed-noise reconstructions (B, 3, H_s, W_s) at ``scale`` (default: finest
        trained): z* at scale 0 and zero noise above (MIL Eq. 13)."""
        self._require_trained()
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int)
                                  or not 0 <= scale < self.n_trained):
            raise ConfigError(f"scale must be an integer in [0, {self.n_trained - 1}], "
                              f"got {scale!r}")
        e = self._embeddings(images, embeddings)
        stop = self.n_trained if scale is None else scale + 1
        weights = self.generator_weights(e, stop)
        with torch.no_grad():
            return self.run_scales(weights, 1, reconstruct=True).clamp(-1, 1)

    def scaled_shapes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Per-scale noise shapes for a finest output of ``size`` = (H, W)."""
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
            raise ConfigError(f"size must be (H, W) with positive integers, got {size!r}")
        top_h, top_w = self.shapes[self.n_trained - 1]
        rh, rw = size[0] / top_h, size[1] / top_w
        out = [(max(1, round(h * rh)), max(1, round(w * rw)))
               for h, w in self.shapes[:self.n_trained - 1]]
        return out + [(int(size[0]), int(size[1]))]

    def _embeddings(self, images: Any, embeddings: torch.Tensor | None) -> torch.Tensor:
        if (images is None) == (embeddings is None):
            raise ConfigError("give either images or embeddings (exactly one of them)")
        if embeddings is not None:
            return _check_embeddings(embeddings, self.config.embed_dim).to(self.device)
        return self.embed(images)

    # --- persistence -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model (tensors and plain values only)."""
        return {"kind": _KIND, "version": _STATE_VERSION, "config": self.config.to_dict(),
                "n_heads": len(self.G.heads), "noise_amps": [float(a) for a in self.noise_amps],
                "z_star": self.z_star, "G": self.G.state_dict(), "D": self.D.state_dict(),
                "history": list(self.history), "timings": dict(self.timings),
                **({"novelty_ratios": self.novelty.ratios, "novelty_scale": self.novelty.scale,
                    "novelty_source": self.novelty.source} if self.novelty is not None else {})}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "HyperGAN":
        """Inverse of :meth:`state`; raises CheckpointError for anything else."""
        if not isinstance(state, dict) or state.get("kind") != _KIND:
            raise CheckpointError("not a HyperGAN checkpoint (its state has no kind='hypergan')")
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise CheckpointError("this HyperGAN checkpoint was written by a newer mil_core")
        try:
            model = cls(HyperGANConfig(**state["config"]), state["z_star"])
            for _ in range(int(state["n_heads"])):
                model.G.add_head()
            model.G.load_state_dict(state["G"])
            model.D.load_state_dict(state["D"])
            restore_run_log(model, state)
            if "novelty_ratios" in state:      # (older states kept embeddings: no reference)
                model.novelty = NoveltyReference(state["novelty_ratios"].float().cpu(),
                                                 float(state["novelty_scale"]),
                                                 str(state.get("novelty_source", "training")))
        except (KeyError, TypeError, RuntimeError, ConfigError) as exc:
            raise CheckpointError(f"damaged HyperGAN checkpoint: {exc}") from exc
        return model.eval()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the model to ``path`` (safetensors + JSON; never a pickle)."""
        state = self.state()
        if extra:
            state["extra"] = extra
        meta = {"kind": _KIND, "n_scales": self.n_scales, "n_trained": self.n_trained,
                "shapes": [list(s) for s in self.shapes], "config": self.config.to_dict()}
        return save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu"
             ) -> "HyperGAN":
        """Load a model written by :meth:`save` (or a training checkpoint) onto
        ``map_location``."""
        model = cls.from_state(load_checkpoint(path, map_location="cpu"))
        return model.to(map_location) if map_location is not None else model



def load_encoder_weights(encoder: ResNetEncoder, path: str | Path) -> str:
    """Fill ``encoder`` (a hyper-generator's) from the file ``path``; returns what it was.

    Appendix C freezes an ImageNet-pretrained ResNet-34. Pretrained weights cannot be fetched
    here, so two sources are accepted:

    - a hyper-GAN checkpoint (:meth:`HyperGAN.save` or a training checkpoint): its generator's
      encoder, e.g. one trained on another image collection — same ``backbone``, ``norm`` and
      ``embed_dim`` required;
    - a torchvision-format ResNet state dict (``.pth`` / ``.pt`` read with
      ``torch.load(weights_only=True)``, which runs no code, or ``.safetensors``), e.g.
      ``resnet34-b627a593.pth`` for users who have it: :func:`load_torchvision_resnet` (the
      trunk; ``encoder.fc`` keeps its initialisation).

    Raises ConfigError naming the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"encoder_weights: no file at {path}; give a hyper-GAN checkpoint or "
                          "a torchvision-format ResNet state dict (.pth or .safetensors)")
    try:
        meta = checkpoint_metadata(path)
    except CheckpointError:
        meta = None
    if meta is not None:
        if meta.get("kind") != _KIND:
            raise ConfigError(f"encoder_weights: {path} is a {meta.get('kind')!r} checkpoint; "
                              "only a hyper-GAN checkpoint carries an image encoder")
        g = load_checkpoint(path)["G"]
        state = {k[len("encoder."):]: v for k, v in g.items() if k.startswith("encoder.")}
        try:
            encoder.load_state_dict(state)
        except RuntimeError as exc:
            cfg = meta.get("config", {})
            raise ConfigError(f"encoder_weights: the encoder in {path} (backbone "
                              f"{cfg.get('backbone')!r}, norm {cfg.get('norm')!r}, embed_dim "
                              f"{cfg.get('embed_dim')}) does not fit this config's; use the "
                              "same three") from exc
        return f"the encoder of the hyper-GAN {path.name}"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            raw: Any = load_file(str(path))
        except Exception as exc:    # safetensors raises several types on a bad file
            raise ConfigError(f"encoder_weights: {path} is not a readable safetensors file "
                              f"({exc})") from exc
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:    # a pickle with code, a truncated file, not a torch file
            raise ConfigError(f"encoder_weights: {path} cannot be read as plain tensors "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                              "give a state dict saved with torch.save(model.state_dict())"
                              ) from exc
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ConfigError(f"encoder_weights: {path} holds no state dict of tensors")
    load_torchvision_resnet(encoder, raw, source=f"encoder_weights {path}")
    return f"the torchvision-format ResNet {path.name}"


def _as_image_list(images: Any) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = [images]
        elif images.dim() == 4:
            images = list(images)
        else:
            raise DataError(f"HyperGAN expects images (B, 3, H, W) or a list of (3, H, W), got "
                            f"{tuple(images.shape)}")
    if not isinstance(images, (list, tuple)) or not images:
        raise DataError("HyperGAN expects a non-empty list of (3, H, W) images in [-1, 1]; load "
                        "them with mil_core.data.load_image")
    return [check_gan_image(img, f"HyperGAN (image {i})") for i, img in enumerate(images)]


def _check_embeddings(e: Any, dim: int) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[1] != dim:
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ConfigError(f"embeddings must be a (B, {dim}) tensor, got {got}")
    if not bool(torch.isfinite(e).all()):
        raise ConfigError("embeddings contain NaN or infinite values")
    return e
