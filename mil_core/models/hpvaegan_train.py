"""Training of HP-VAE-GAN (Gur, Benaim, Wolf 2020; REFERENCE §3b), coarse to fine.

Scale ``n`` adds body block ``G_n`` (n ≥ 1: a copy of ``G_{n−1}``) and trains, with Adam
(β = (0.5, 0.999)) and G's gradient norm clipped to ``grad_clip``:

- **VAE levels** ``n < vae_levels`` (paper §3.1, Eq. 1–3), no critic, no noise::

      (μ, log σ²) = E(x_0),  z = μ + σ ⊙ ε,  x̂_0 = Dec(z),  x̂_n = G_n(… G_1(x̂_0))
      L = rec_weight · (‖x̂_n − x_n‖² + ‖x̂_0 − x_0‖²) + kl_weight · KL(N(μ, σ²) ‖ N(0, I))

  E and Dec train with lr ``lr_g·lr_scale^n``, the newest ``train_depth`` blocks with
  ``lr_g·lr_scale^(n−k)`` (block k); older blocks are frozen (but the loss flows through them).
- **GAN levels** ``n ≥ vae_levels`` (§3.2, Eq. 4–5): the VAE is frozen; per iteration one critic
  step of WGAN-GP (``lambda_grad``) on prior samples ``z ~ N(0, I)`` pushed through every scale
  with noise ``σ_k n_k``, then one generator step on ``−D(x̃_n) + rec_weight·‖x̃^rec_n − x_n‖²``,
  where the reconstruction path decodes the posterior mean with zero noise. Only the newest
  ``min(train_depth, n − vae_levels + 1)`` blocks train; the critic continues from the previous
  GAN scale's (fresh Adam states every scale, as in the official script).

The three phases of a run are :func:`prepare_hpvaegan`, :func:`train_scale` per scale and the
checkpoint after it; :func:`train_hpvaegan` runs them with exact resume.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..checkpoint import prepare_checkpoint_path, resume_single_image
from ..data.pyramid import build_pyramid, plan_pyramid
from ..errors import CheckpointError, ConfigError, TrainingError
from ..levers import make_adam
from ..losses import critic_loss, generator_adv_loss, noise_amplitude, reconstruction_loss
from ..runtime import get_device, progress
from .blocks import check_gan_image, stream_seed, upsample
from .hpvaegan import (CHECKPOINT_NAME, HPVAEGAN, HPVAEGANConfig, HPVAEGenerator, PatchCritic,
                       kl_divergence)

__all__ = ["train_hpvaegan", "prepare_hpvaegan", "train_scale", "generator_param_groups",
           "CHECKPOINT_NAME"]

_ZERO_ROW = {"d_loss": 0.0, "g_adv": 0.0, "wasserstein": 0.0, "gp": 0.0, "kl": 0.0}


def prepare_hpvaegan(image: torch.Tensor, cfg: HPVAEGANConfig, *, seed: int = 0,
                     device: str | torch.device | None = None
                     ) -> tuple[HPVAEGAN, PatchCritic, torch.Generator]:
    """Validate inputs, build the pyramid, an untrained model (scale 0 only) and the critic.

    The CPU generator returned drives every later draw; it is seeded with
    ``stream_seed(seed + 1)`` (the model's weights come from ``stream_seed(seed)``), so
    sampling with ``torch.Generator().manual_seed(seed)`` replays neither.
    """
    if not isinstance(cfg, HPVAEGANConfig):
        raise ConfigError(f"train_hpvaegan: cfg must be an HPVAEGANConfig, got "
                          f"{type(cfg).__name__}")
    cfg.validate()
    img = check_gan_image(image, "train_hpvaegan")
    plan_pyramid(int(img.shape[-2]), int(img.shape[-1]), cfg.pyramid)   # size errors first
    reals = build_pyramid(img, cfg.pyramid)                              # [(3, H_n, W_n)]
    dev = torch.device(device) if device is not None else get_device()
    model = HPVAEGAN(cfg, reals, seed).to(dev)
    gen = torch.Generator().manual_seed(stream_seed(seed + 1))
    critic = PatchCritic(cfg, gen).to(dev)      # untouched until the first GAN level
    return model, critic, gen


def generator_param_groups(G: HPVAEGenerator, n: int, cfg: HPVAEGANConfig
                           ) -> list[dict[str, Any]]:
    """Adam groups of scale ``n``; freezes everything else (official ``train_image.py``).

    VAE level: encoder and decoder at ``lr_g·lr_scale^n`` plus the newest ``train_depth``
    blocks; GAN level: the newest ``min(train_depth, n − vae_levels + 1)`` blocks only. Block of
    scale ``k`` (``G.body[k−1]``) gets ``lr_g·lr_scale^(n−k)``.
    """
    vae = n < cfg.vae_levels
    depth = cfg.train_depth if vae else min(cfg.train_depth, n - cfg.vae_levels + 1)
    G.requires_grad_(False)
    groups: list[dict[str, Any]] = []
    if vae:
        for name in ("encoder", "decoder"):
            part = getattr(G, name).requires_grad_(True)
            groups.append({"params": list(part.parameters()), "name": name,
                           "lr": cfg.lr_g * cfg.lr_scale ** n})
    for k in range(max(1, n - depth + 1), n + 1):
        block = G.body[k - 1].requires_grad_(True)
        groups.append({"params": list(block.parameters()), "name": f"body.{k - 1}",
                       "lr": cfg.lr_g * cfg.lr_scale ** (n - k)})
    return groups


def _vae_step(model: HPVAEGAN, n: int, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """The VAE loss of level ``n`` (Eq. 3) on ``batch_size`` copies of the image."""
    cfg, G, dev = model.config, model.G, model.device
    real0 = model.real_0.expand(cfg.batch_size, -1, -1, -1)             # (B, 3, H_0, W_0)
    real = model.reals[n].unsqueeze(0).to(dev).expand(cfg.batch_size, -1, -1, -1)  # (B, 3, H_n, W_n)
    mu, logvar = G.encoder(real0)                                        # (B, latent, H_0, W_0)
    eps = torch.randn(mu.shape, generator=gen).to(dev)
    vae_out = G.decode(mu + torch.exp(0.5 * logvar) * eps)               # (B, 3, H_0, W_0)
    final = G.refine(vae_out, 1, n + 1, model.shapes)                    # (B, 3, H_n, W_n)
    rec, rec_vae, kl = F.mse_loss(final, real), F.mse_loss(vae_out, real0), kl_divergence(mu, logvar)
    loss = cfg.rec_weight * (rec + rec_vae) + cfg.kl_weight * kl
    return loss, {**_ZERO_ROW, "rec_loss": rec.item(), "rec_vae": rec_vae.item(),
                  "kl": kl.item()}


def _gan_step(model: HPVAEGAN, critic: PatchCritic, n: int, first: int, gen: torch.Generator,
              opt_d: torch.optim.Optimizer, rec_prev: torch.Tensor
              ) -> tuple[torch.Tensor, dict]:
    """One critic update and the generator loss of GAN level ``n``; scales below ``first`` are
    frozen and run without gradients (``rec_prev``: their reconstruction, x̃_{first−1})."""
    cfg, G, dev, shapes = model.config, model.G, model.device, model.shapes[:n + 1]
    real = model.reals[n].unsqueeze(0).to(dev).expand(cfg.batch_size, -1, -1, -1)
    z = model.prior(cfg.batch_size, shapes[0], gen)                      # (B, latent, H_0, W_0)
    noise = model.noises(cfg.batch_size, shapes, 1, gen)
    with torch.no_grad():
        x = G.refine(G.decode(z), 1, first, shapes, noise, model.noise_amps)
    fake = G.refine(x, first, n + 1, shapes, noise, model.noise_amps)    # (B, 3, H_n, W_n)
    d_loss, parts = critic_loss(critic, real, fake, cfg.lambda_grad, gen)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    critic.requires_grad_(False)
    adv = generator_adv_loss(critic, fake)
    critic.requires_grad_(True)
    rec = reconstruction_loss(G.refine(rec_prev, first, n + 1, shapes), real[:1])
    loss = adv + cfg.rec_weight * rec
    return loss, {**_ZERO_ROW, "d_loss": d_loss.item(), "g_adv": adv.item(),
                  "rec_loss": rec.item(), "rec_vae": 0.0, "wasserstein": parts["wasserstein"],
                  "gp": parts["gp"]}


def train_scale(model: HPVAEGAN, critic: PatchCritic, n: int, gen: torch.Generator, *,
                show_progress: bool = False, log_every: int = 10,
                last_good: Path | None = None) -> float:
    """Grow to scale ``n`` and train it; returns the seconds taken. TrainingError (naming
    ``last_good``) as soon as a loss is NaN or infinite."""
    cfg, G, dev = model.config, model.G, model.device
    if n != model.n_trained or n >= model.n_scales:
        raise ConfigError(f"train_scale: scales are trained in order; next is {model.n_trained}")
    start = time.perf_counter()
    if n > 0 and model.n_active == n:                                   # grow
        prev = upsample(model.reconstruct(), model.shapes[n])           # (1, 3, H_n, W_n)
        real = model.reals[n].unsqueeze(0).to(dev)
        model.noise_amps.append(noise_amplitude(real, prev, cfg.noise_amp_factor))
        G.grow(gen)
    vae = n < cfg.vae_levels
    groups = generator_param_groups(G, n, cfg)
    params = [p for g in groups for p in g["params"]]
    opt_g = make_adam(groups, cfg.lr_g, cfg.betas, dev)
    if not vae:
        first = int(groups[0]["name"].split(".")[1]) + 1                 # first trained scale
        opt_d = make_adam(critic.parameters(), cfg.lr_d, cfg.betas, dev)
        with torch.no_grad():
            rec_prev = G.refine(G.decode(model.posterior_mean()), 1, first, model.shapes)

    iters = range(cfg.iters_per_scale)
    bar = progress(iters, total=cfg.iters_per_scale, desc=f"HP-VAE-GAN {'VAE' if vae else 'GAN'}"
                   f" scale {n}/{model.n_scales - 1} {model.shapes[n]}") if show_progress else iters
    for it in bar:
        loss, row = (_vae_step(model, n, gen) if vae else
                     _gan_step(model, critic, n, first, gen, opt_d, rec_prev))
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt_g.step()
        row = {"scale": n, "iter": it, "g_loss": loss.item(), **row}
        if not all(math.isfinite(v) for v in row.values()):
            where = (f"the last good checkpoint is {last_good}" if last_good is not None
                     else "no checkpoint was written (pass checkpoint_dir to keep one)")
            raise TrainingError(f"HP-VAE-GAN training diverged at scale {n}, iteration {it}: "
                                f"losses {row}; {where}. Lower lr_g / lr_d or grad_clip, or "
                                "check the image.")
        if it % log_every == 0 or it == cfg.iters_per_scale - 1:
            model.history.append(row)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(rec=f"{row['rec_loss']:.4f}", kl=f"{row['kl']:.3f}",
                                w=f"{row['wasserstein']:.3f}", refresh=False)
    G.requires_grad_(False)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - start


def _resume(path: Path, cfg: HPVAEGANConfig, reals: list[torch.Tensor], seed: int
            ) -> tuple[HPVAEGAN, dict[str, torch.Tensor], torch.Tensor]:
    """Reload finished scales from ``path`` (:func:`mil_core.checkpoint.resume_single_image`)."""
    return resume_single_image(path, HPVAEGAN, cfg, reals, seed, unit="scale")


def train_hpvaegan(image: torch.Tensor, cfg: HPVAEGANConfig | None = None, *, seed: int = 0,
                   device: str | torch.device | None = None, show_progress: bool = True,
                   log_every: int = 10, checkpoint_dir: str | Path | None = None,
                   resume: bool = False, overwrite: bool = False,
                   callback: Callable[[HPVAEGAN, int], None] | None = None) -> HPVAEGAN:
    """Train HP-VAE-GAN on one image (3, H, W) in [-1, 1]; deterministic on CPU for a seed.

    ``model.history`` gets one row per ``log_every`` iterations (scale, iter, g_loss, d_loss,
    g_adv, rec_loss = MSE of the finest output, rec_vae = MSE of the decoder output, kl,
    wasserstein, gp; the terms a level does not have are 0). ``model.timings``: the SinGAN keys.
    ``checkpoint_dir``: model, critic and RNG state are saved atomically to
    ``checkpoint_dir/hpvaegan.safetensors`` after each finished scale; ``resume=True`` reloads
    the finished scales (same image, config and seed) and goes on exactly as if uninterrupted.
    An existing checkpoint is never replaced silently: without ``resume`` it raises
    CheckpointError unless ``overwrite=True`` (:func:`mil_core.checkpoint.prepare_checkpoint_path`).
    ``callback(model, n)`` runs after scale ``n`` (after its checkpoint).

    Raises DataError / ConfigError for a bad image or config and CheckpointError for another
    run's checkpoint, all before any training; TrainingError when a loss becomes NaN or infinite.
    """
    cfg = HPVAEGANConfig() if cfg is None else cfg
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ConfigError(f"log_every must be a positive integer, got {log_every!r}")
    model, critic, gen = prepare_hpvaegan(image, cfg, seed=seed, device=device)
    ckpt = prepare_checkpoint_path(checkpoint_dir, CHECKPOINT_NAME, resume=resume,
                                   overwrite=overwrite)
    last_good = None
    if ckpt is not None and resume and ckpt.exists():
        dev = model.device
        model, critic_state, rng_state = _resume(ckpt, cfg, model.reals, int(seed))
        model.to(dev)
        critic.load_state_dict(critic_state)
        gen.set_state(rng_state)
        last_good = ckpt
    model.timings["device"] = str(model.device)
    for n in range(model.n_trained, model.n_scales):
        model.timings["seconds_per_scale"].append(
            train_scale(model, critic, n, gen, show_progress=show_progress, log_every=log_every,
                        last_good=last_good))
        total = float(sum(model.timings["seconds_per_scale"]))
        model.timings["total_seconds"] = total
        model.timings["iters_per_second"] = cfg.iters_per_scale * (n + 1) / max(total, 1e-9)
        if ckpt is not None:
            model.save(ckpt, extra={"seed": int(seed), "rng": gen.get_state(),
                                    "critic": critic.state_dict()})
            last_good = ckpt
        if callback is not None:
            callback(model, n)
    return model.eval()
