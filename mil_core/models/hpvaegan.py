"""HP-VAE-GAN (Gur, Benaim, Wolf, "Hierarchical Patch VAE-GAN", NeurIPS 2020; REFERENCE §3b).

The third single-image baseline of the MIL paper's Table 1. One growing generator, coarse → fine,
whose first ``vae_levels`` scales form a *patch VAE* (paper §3.1) and whose finer scales are
SinGAN-like patch GANs (§3.2)::

    (μ, log σ²) = E(x_0)                                  spatial latent (B, latent_dim, H_0, W_0)
    z ~ N(μ, σ²) (training, VAE levels)  or  z ~ N(0, I) (sampling: the prior, §3.3)
    x̂_0 = tanh(Dec(z))                                    the decoder is the coarse generator
    x̂_k = tanh(G_k(↑x̂_{k−1} + σ_k·n_k) + ↑x̂_{k−1})         k = 1 … N−1, ↑ bilinear

Training (training lives in :mod:`mil_core.models.hpvaegan_train`): at a VAE level ``n`` the
loss is ``rec_weight·(‖x̂_n − x_n‖² + ‖x̂_0 − x_0‖²) + kl_weight·KL`` (paper Eq. 1–3) without
noise; at a GAN level WGAN-GP on the finest output of prior samples plus ``rec_weight``·MSE of
the reconstruction (§3.2, Eq. 4–5). ``σ_k = noise_amp_factor · RMSE(x_k, ↑x̃_{k−1})``.

Choices made here, where the official code (``shirgur/hp-vae-gan``, image script) differs:

- No BatchNorm in the generator (the official blocks have it): with batch statistics a sample
  depends on the other samples in its batch, and the official frozen blocks stay in train mode,
  so their running statistics keep drifting after they are frozen. No spectral norm in the
  encoder or critic either: WGAN-GP constrains the critic, as in the SinGAN and ConSinGAN
  baselines here, so the three baselines differ only where the papers do.
- ``σ_k`` uses SinGAN's rule on the reconstruction of scale ``k−1`` upsampled
  (:func:`mil_core.losses.noise_amplitude`); the official code measures it after the new (copied,
  untrained) block and divides the RMSE by the batch size as well.
- The reconstruction path (GAN levels and :meth:`HPVAEGAN.reconstruct`) uses the posterior mean
  ``μ`` and zero noise, the analogue of SinGAN's fixed ``z*``; the official one draws from the
  posterior at every step.
- Every random draw comes from an explicit ``torch.Generator`` (on the CPU), weights from
  ``stream_seed(seed)`` (:func:`~mil_core.models.blocks.stream_seed`); checkpoints are
  safetensors (:mod:`mil_core.checkpoint`), never pickles.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .. import validation as check
from ..checkpoint import load_checkpoint, restore_run_log, save_checkpoint
from ..data.pyramid import PyramidConfig, resize_to
from ..errors import CheckpointError, ConfigError
from .blocks import check_gan_image, init_weights, stream_seed, upsample

__all__ = ["HPVAEGANConfig", "HPVAEGAN", "HPVAEGenerator", "PatchVAEEncoder", "PatchCritic",
           "kl_divergence", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "hpvaegan.safetensors"   # file written in ``checkpoint_dir`` after every scale
_KIND = "hpvaegan"
_STATE_VERSION = 1


@dataclass
class HPVAEGANConfig:
    """Everything an HP-VAE-GAN run depends on; defaults: the official image script
    (``train_image.py``, REFERENCE §3b)."""
    pyramid: PyramidConfig = field(default_factory=lambda: PyramidConfig(
        scale_factor=0.75, min_size=32, max_size=256))  # scales: factor 0.75, 32 … 256 px
    vae_levels: int = 3               # coarsest scales trained as a patch VAE, `vae_levels` (§3.1)
    latent_dim: int = 128             # channels of the spatial latent z, `latent_dim`
    enc_blocks: int = 2               # encoder conv blocks before the μ / log σ² heads, `enc_blocks`
    channels: int = 64                # conv channels of every net, `nfc`
    hidden_layers: int = 5            # hidden 3×3 convs between head and tail, `num_layer`
    leaky_slope: float = 0.2          # LeakyReLU slope (official `lrelu` 0.2)
    rec_weight: float = 10.0          # weight of the MSE reconstruction terms, `rec_weight` (Eq. 3)
    kl_weight: float = 1.0            # weight of KL(N(μ, σ²) ‖ N(0, I)), `kl_weight` (Eq. 2)
    lambda_grad: float = 0.1          # WGAN-GP weight at the GAN levels, `lambda_grad`
    noise_amp_factor: float = 0.1     # σ_k = factor · RMSE(x_k, ↑x̃_{k−1}), official `noise_amp`
    lr_g: float = 5e-4                # Adam lr of the newest block (and of E, Dec at scale 0)
    lr_d: float = 5e-4                # Adam lr of the critic
    lr_scale: float = 0.2             # lr factor per scale below the newest, `lr_scale`; E and
    #                                   Dec get lr_g · lr_scale^n at VAE level n
    train_depth: int = 1              # newest body blocks trained together, `train_depth`
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (`beta1` 0.5)
    grad_clip: float = 5.0            # max gradient norm of G's trained parameters, `grad_clip`
    batch_size: int = 2               # copies of the image / prior samples per step, `batch_size`
    iters_per_scale: int = 50_000     # iterations per scale, `niter` (1 G [+ 1 D] update each)

    def __post_init__(self) -> None:
        if isinstance(self.pyramid, dict):
            self.pyramid = PyramidConfig(**self.pyramid)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def from_profile(cls, profile: Any, **overrides: Any) -> "HPVAEGANConfig":
        """The config of a run profile: its ``image.hpvae_*`` sizes (SinGAN's pyramid rule, the
        image's own aspect) and its ``gan.hpvae_*`` iterations and widths. ``paper`` gives the
        official defaults (50,000 iterations per scale); ``cpu`` SinGAN's cpu budget (400
        iterations, 16 channels, 5 convs per net). Keyword ``overrides`` replace fields
        afterwards (unknown names raise ConfigError)."""
        from ..profiles import get_profile
        prof = get_profile(profile)
        gan, image = prof.gan, prof.image
        values: dict[str, Any] = dict(
            pyramid=PyramidConfig(scale_factor=image.scale_factor, min_size=image.hpvae_min_size,
                                  max_size=image.hpvae_max_size),
            iters_per_scale=gan.hpvae_iters_per_scale, channels=gan.hpvae_channels,
            latent_dim=gan.hpvae_latent_dim, hidden_layers=gan.hpvae_hidden_layers)
        return check.with_overrides(cls, values, overrides)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        if not isinstance(self.pyramid, PyramidConfig):
            raise ConfigError(f"HPVAEGANConfig.pyramid must be a PyramidConfig, got "
                              f"{type(self.pyramid).__name__}")
        self.pyramid.validate()
        check.positive_ints(self, ("vae_levels", "latent_dim", "enc_blocks", "channels",
                                   "train_depth", "batch_size", "iters_per_scale"))
        if isinstance(self.hidden_layers, bool) or not isinstance(self.hidden_layers, int) \
                or self.hidden_layers < 0:
            raise ConfigError(f"HPVAEGANConfig.hidden_layers must be an integer >= 0, got "
                              f"{self.hidden_layers!r}")
        check.positive_numbers(self, ("lr_g", "lr_d", "lr_scale", "grad_clip"))
        check.nonnegative_numbers(self, ("rec_weight", "kl_weight", "lambda_grad",
                                         "noise_amp_factor", "leaky_slope"))
        if self.leaky_slope >= 1:
            raise ConfigError(f"HPVAEGANConfig.leaky_slope must be in [0, 1), got "
                              f"{self.leaky_slope!r}")
        check.adam_betas(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: ``HPVAEGANConfig(**d)``)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I))`` in closed form, **averaged** over every element.

    Per element ``−½ (1 + log σ² − μ² − σ²)`` (Kingma & Welling 2014, Appendix B), the KL term of
    HP-VAE-GAN's VAE objective (Gur et al. 2020, §3.1, Eq. 2). The official code averages it over
    batch, latent channels and positions (not a sum), so its weight ``kl_weight`` = 1 balances
    per-pixel MSE terms; so does this function. 0 exactly when μ = 0 and log σ² = 0.
    """
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()


# ---------------------------------------------------------------------------------------------
# networks (all 3×3 convs with padding 1, stride 1: every map keeps its size)
# ---------------------------------------------------------------------------------------------
def _conv_net(c_in: int, c_out: int, channels: int, hidden: int, slope: float) -> nn.Sequential:
    """head conv (c_in → C) + LeakyReLU, ``hidden`` × [conv C → C + LeakyReLU], tail conv."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, channels, 3, padding=1), nn.LeakyReLU(slope)]
    for _ in range(hidden):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(slope)]
    layers.append(nn.Conv2d(channels, c_out, 3, padding=1))
    return nn.Sequential(*layers)


class PatchVAEEncoder(nn.Module):
    """Image (B, 3, H, W) → spatial posterior (μ, log σ²), each (B, latent_dim, H, W) (§3.1).

    ``enc_blocks + 1`` conv + LeakyReLU layers, then two linear 3×3 heads; with 2 blocks each
    latent vector sees a 9×9 patch, so the VAE models patches, not the whole image.
    """

    def __init__(self, cfg: HPVAEGANConfig) -> None:
        super().__init__()
        c, layers = cfg.channels, []
        for i in range(cfg.enc_blocks + 1):
            layers += [nn.Conv2d(3 if i == 0 else c, c, 3, padding=1), nn.LeakyReLU(cfg.leaky_slope)]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Conv2d(c, cfg.latent_dim, 3, padding=1)
        self.logvar = nn.Conv2d(c, cfg.latent_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)                                        # (B, C, H, W)
        return self.mu(f), self.logvar(f)                           # (B, latent, H, W) each


class HPVAEGenerator(nn.Module):
    """Encoder, decoder (the coarse generator) and one residual body block per finer scale."""

    def __init__(self, cfg: HPVAEGANConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = PatchVAEEncoder(cfg)
        self.decoder = _conv_net(cfg.latent_dim, 3, cfg.channels, cfg.hidden_layers,
                                 cfg.leaky_slope)
        self.body = nn.ModuleList()
        init_weights(self, generator)

    def grow(self, generator: torch.Generator) -> None:
        """Add the next scale's block: a copy of the last one (ConSinGAN-like growth), or, for
        the first, a fresh net drawn from ``generator``."""
        cfg = self.cfg
        block = _conv_net(3, 3, cfg.channels, cfg.hidden_layers, cfg.leaky_slope)
        if len(self.body):
            block.load_state_dict(self.body[-1].state_dict())
        else:
            init_weights(block, generator)
        self.body.append(block.to(self.decoder[0].weight.device))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``x̂_0 = tanh(Dec(z))``: (B, latent, H_0, W_0) → (B, 3, H_0, W_0)."""
        return torch.tanh(self.decoder(z))

    def refine(self, x: torch.Tensor, start: int, stop: int, shapes: list[tuple[int, int]],
               noises: list[torch.Tensor | None] | None = None, amps: list[float] | None = None
               ) -> torch.Tensor:
        """Scales ``start … stop−1`` (each ≥ 1) from ``x`` = x̂_{start−1}: ``x̂_k =
        tanh(G_k(↑x̂_{k−1} + σ_k n_k) + ↑x̂_{k−1})``; ``noises[k]`` (B, 3, H_k, W_k) or None
        (zero noise). Returns (B, 3, H_{stop−1}, W_{stop−1})."""
        for k in range(start, stop):
            up = upsample(x, shapes[k])                              # (B, 3, H_k, W_k)
            n = None if noises is None else noises[k]
            v = up if n is None else up + amps[k] * n
            x = torch.tanh(self.body[k - 1](v) + up)
        return x


class PatchCritic(nn.Module):
    """WGAN critic: ``hidden_layers + 2`` 3×3 convs (padding 1), a score per pixel's patch."""

    def __init__(self, cfg: HPVAEGANConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.net = _conv_net(3, 1, cfg.channels, cfg.hidden_layers, cfg.leaky_slope)
        init_weights(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                          # (B, 1, H, W)


# ---------------------------------------------------------------------------------------------
# the trained model
# ---------------------------------------------------------------------------------------------
def _positive(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    return v


class HPVAEGAN(nn.Module):
    """A trained (or training) HP-VAE-GAN; the interface of the SinGAN and ConSinGAN models.

    Attributes: ``G`` (:class:`HPVAEGenerator`), ``noise_amps`` (σ_k per built scale; σ_0 = 1,
    unused: scale 0's randomness is the latent), ``reals`` ((3, H_n, W_n), coarse → fine),
    ``shapes``, ``config``, ``history`` and ``timings`` (the keys of the SinGAN model).
    """

    def __init__(self, cfg: HPVAEGANConfig, reals: list[torch.Tensor], seed: int = 0) -> None:
        super().__init__()
        self.config = cfg
        self.reals = [r.detach().float().cpu() for r in reals]     # (3, H_n, W_n), coarse → fine
        self.shapes = [tuple(int(v) for v in r.shape[-2:]) for r in self.reals]
        gen = torch.Generator().manual_seed(stream_seed(seed))     # not Generator(seed)
        self.G = HPVAEGenerator(cfg, gen)
        self.register_buffer("real_0", self.reals[0].unsqueeze(0).clone())  # (1, 3, H_0, W_0)
        self.noise_amps: list[float] = [1.0]
        self.history: list[dict[str, float]] = []
        self.timings: dict[str, Any] = {"seconds_per_scale": [], "total_seconds": 0.0,
                                        "iters_per_second": 0.0, "device": "cpu"}

    @property
    def device(self) -> torch.device:
        return self.real_0.device

    @property
    def n_scales(self) -> int:
        """Scales of the pyramid (planned)."""
        return len(self.shapes)

    @property
    def n_active(self) -> int:
        """Scales built so far (the one being trained included)."""
        return 1 + len(self.G.body)

    @property
    def n_trained(self) -> int:
        """Finished scales (== n_scales once training finished)."""
        return len(self.timings["seconds_per_scale"])

    # --- helpers ----------------------------------------------------------------------------
    def _require_trained(self) -> None:
        if self.n_trained == 0:
            raise ConfigError("this HP-VAE-GAN has no trained scale yet; train it with "
                              "train_hpvaegan")

    def scaled_shapes(self, size: tuple[int, int] | None) -> list[tuple[int, int]]:
        """Per-scale shapes for a finest output of ``size`` = (H, W) (None: the trained ones):
        every trained scale's shape times (H / H_N, W / W_N), rounded, the finest exactly ``size``."""
        shapes = list(self.shapes[:max(self.n_trained, 1)])
        if size is None:
            return shapes
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
            raise ConfigError(f"size must be (H, W) of positive integers, got {size!r}")
        (fh, fw), (h, w) = shapes[-1], size
        return [(max(1, round(a * h / fh)), max(1, round(b * w / fw)))
                for a, b in shapes[:-1]] + [(int(h), int(w))]

    def noises(self, n: int, shapes: list[tuple[int, int]], start: int,
               generator: torch.Generator | None) -> list[torch.Tensor | None]:
        """Standard-normal maps (n, 3, H_k, W_k) for scales k ≥ max(start, 1), drawn on the CPU."""
        return [torch.randn((n, 3, *s), generator=generator).to(self.device)
                if k >= max(start, 1) else None for k, s in enumerate(shapes)]

    def prior(self, n: int, shape: tuple[int, int], generator: torch.Generator | None
              ) -> torch.Tensor:
        """``z ~ N(0, I)``, (n, latent_dim, H, W), drawn on the CPU (paper §3.3)."""
        return torch.randn((n, self.config.latent_dim, *shape), generator=generator
                           ).to(self.device)

    def posterior_mean(self) -> torch.Tensor:
        """``μ = E(x_0)`` of the coarsest real image, (1, latent_dim, H_0, W_0)."""
        return self.G.encoder(self.real_0)[0]

    # --- the interface shared with SinGAN / ConSinGAN ----------------------------------------
    @torch.no_grad()
    def sample(self, n: int = 1, generator: torch.Generator | None = None,
               size: tuple[int, int] | None = None, *, shape: tuple[int, int] | None = None
               ) -> torch.Tensor:
        """``n`` random images (n, 3, H, W) in [-1, 1] at the finest trained scale.

        The coarse latent comes from the prior N(0, I) (paper §3.3), then every finer scale adds
        its noise. ``size=(H, W)`` (any size or aspect; ``shape=`` is the SinGAN spelling) scales
        the latent and every noise map by the ratio to the finest scale — all nets are fully
        convolutional — and the output is exactly ``size``. Noise from ``generator`` (CPU).
        """
        self._require_trained()
        _positive("sample(n=...)", n)
        if size is not None and shape is not None:
            raise ConfigError("sample: pass size=(H, W) or shape=(H, W), not both")
        shapes = self.scaled_shapes(size if size is not None else shape)
        z = self.prior(n, shapes[0], generator)                     # (n, latent, H_0, W_0)
        noise = self.noises(n, shapes, 1, generator)
        x = self.G.decode(z)
        return self.G.refine(x, 1, len(shapes), shapes, noise, self.noise_amps).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, scale: int | None = None) -> torch.Tensor:
        """The deterministic reconstruction (1, 3, H_s, W_s) at ``scale`` (default: the finest
        trained): the *posterior mean* ``μ = E(x_0)`` decoded at scale 0 and zero noise above
        (the analogue of SinGAN's ``z*``)."""
        self._require_trained()
        stop = self.n_trained if scale is None else _check_scale(scale, self.n_trained) + 1
        x = self.G.decode(self.posterior_mean())
        return self.G.refine(x, 1, stop, self.shapes).clamp(-1, 1)

    @torch.no_grad()
    def inject(self, image: torch.Tensor, scale: int, n: int = 1,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate from ``image`` injected at ``scale``, with SinGAN's semantics
        (:meth:`mil_core.models.singan.SinGAN.inject`): ``image`` resized to scale ``scale − 1``
        stands for ``x̂_{scale−1}``; scales ``scale … N`` then run as in :meth:`sample`. The
        coarse structure comes from ``image``, finer detail from the model (paper §4, editing
        and harmonisation). ``1 <= scale < n_trained``. Returns (n, 3, H_N, W_N) in [-1, 1]."""
        self._require_trained()
        img = check_gan_image(image, "HPVAEGAN.inject")
        if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale < self.n_trained:
            raise ConfigError(f"inject: scale must be an integer in [1, {self.n_trained - 1}], "
                              f"got {scale!r}")
        _positive("inject(n=...)", n)
        shapes = self.shapes[:self.n_trained]
        prev = resize_to(img, shapes[scale - 1]).unsqueeze(0).expand(n, -1, -1, -1)
        noise = self.noises(n, shapes, scale, generator)
        return self.G.refine(prev.to(self.device), scale, len(shapes), shapes, noise,
                             self.noise_amps).clamp(-1, 1)

    # --- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model: tensors as tensors, the rest plain values."""
        return {"kind": _KIND, "version": _STATE_VERSION, "config": self.config.to_dict(),
                "n_active": self.n_active, "G": self.G.state_dict(),
                "noise_amps": [float(a) for a in self.noise_amps], "reals": list(self.reals),
                "history": list(self.history), "timings": dict(self.timings)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "HPVAEGAN":
        """Inverse of :meth:`state` (on the CPU); raises CheckpointError for anything else."""
        if not isinstance(state, dict) or state.get("kind") != _KIND:
            raise CheckpointError("not an HP-VAE-GAN checkpoint (its state has no "
                                  "kind='hpvaegan'); load it with the class that wrote it")
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise CheckpointError("this HP-VAE-GAN checkpoint was written by a newer mil_core; "
                                  "upgrade mil_core to read it")
        try:
            model = cls(HPVAEGANConfig(**state["config"]), list(state["reals"]))
            gen = torch.Generator().manual_seed(0)                   # overwritten just below
            for _ in range(int(state["n_active"]) - 1):
                model.G.grow(gen)
            model.G.load_state_dict(state["G"])
            model.G.requires_grad_(False)
            restore_run_log(model, state)
        except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"damaged HP-VAE-GAN checkpoint: {exc}") from exc
        if len(model.noise_amps) != model.n_active:
            raise CheckpointError("damaged HP-VAE-GAN checkpoint: noise_amps and scales disagree")
        return model.eval()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write the model to ``path`` (safetensors, never pickled). ``extra``
        (tensors and plain values) is stored beside it, e.g. the critic and RNG state of a run."""
        state = self.state()
        if extra:
            state["extra"] = extra
        meta = {"kind": _KIND, "model": "HPVAEGAN", "n_scales": self.n_scales,
                "n_trained": self.n_trained, "shapes": [list(s) for s in self.shapes],
                "config": self.config.to_dict()}
        return save_checkpoint(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu"
             ) -> "HPVAEGAN":
        """Rebuild a model written by :meth:`save` on ``map_location`` (default CPU); never
        unpickles (CheckpointError otherwise)."""
        try:
            model = cls.from_state(load_checkpoint(path))
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        return model.to(map_location or "cpu")


def _check_scale(scale: int, n_trained: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < n_trained:
        raise ConfigError(f"scale must be an integer in [0, {n_trained - 1}], got {scale!r}")
    return scale
