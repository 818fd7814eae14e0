"""Feed-forward, then adapt: is a hyper-GAN's output a good place to start training? (issue 13)

Beyond the paper. A trained hyper-GAN emits a SinGAN for an unseen image in one pass
(:mod:`mil_core.feedforward`). That generator can then be *fine-tuned* on the image, like a
single-image GAN — only the primary nets' weights, the hyper-network stays fixed. The
meta-learning question asked of MIL itself: does the learned family start closer to a good GAN
than a random initialisation trained the same way? :func:`adapt` runs both with one loop:

- ``init="feedforward"``: the generator's weights are the hyper-generator's for this image and
  the critic's the hyper-critic's (a shared-critic model's own weights);
- ``init="random"``: the same primary nets He-initialised (a SinGAN from scratch with the
  hyper-GAN's architecture and sizes; :class:`mil_core.models.hypernet.SharedWeights`).

Per scale, coarse to fine, ``steps`` iterations of one critic step (WGAN-GP, Eq. 12) and one
generator step (adversarial + ``α``·reconstruction, Eq. 13), Adam, earlier scales frozen, the
hyper-GAN's noise amplitudes and ``z*``. Reported: the reconstruction MSE at every scale before
and after, so quality can be read against ``steps`` for both starts; :func:`adapt_curve` does
that over a grid of ``steps`` and images, with the samples' SWD beside the reconstruction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import ConfigError
from .losses import critic_loss, reconstruction_loss
from .metrics.swd import swd_per_sample
from .models.hypergan import HyperGAN
from .models.hypernet import NetWeights, SharedWeights, primary_forward

__all__ = ["INITS", "Adapted", "adapt", "adapt_curve"]

INITS = ("feedforward", "random")


@dataclass
class Adapted:
    """Primary weights fine-tuned on one image, usable through the hyper-GAN's chain."""
    model: HyperGAN                       # the hyper-GAN whose shapes, z* and noise it uses
    weights: list[NetWeights]             # per scale (w (1, out, in, 3, 3), b (1, out)) layers
    init: str                             # "feedforward" or "random"
    rec_before: list[float] = field(default_factory=list)   # MSE per scale at the start
    rec_after: list[float] = field(default_factory=list)    # MSE per scale after its steps
    seconds: float = 0.0

    def sample(self, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 3, H, W)`` samples of the adapted generator in [-1, 1]."""
        noise = [torch.randn(n, 3, *s, generator=generator) for s in self.model.shapes]
        with torch.no_grad():
            return self.model.run_scales(self.weights, n, noise=noise).clamp(-1, 1)


def _leaves(weights: NetWeights) -> NetWeights:
    return [(w.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True))
            for w, b in weights]


def _rec_mse(model: HyperGAN, weights: list[NetWeights], reals: list[torch.Tensor]) -> list[float]:
    with torch.no_grad():
        recs = model.run_scales(weights, 1, reconstruct=True, keep_all=True)
    return [float(F.mse_loss(r, x)) for r, x in zip(recs, reals)]


def adapt(model: HyperGAN, image: torch.Tensor, steps: int, init: str = "feedforward", *,
          lr: float | None = None, seed: int = 0) -> Adapted:
    """Fine-tune one image's primary nets for ``steps`` iterations per scale (module docstring).

    ``image``: (3, H, W) in [-1, 1] (cropped and resized to the model's pyramid). ``lr``: Adam
    step (default: the model's ``lr_g``). The model itself is left unchanged.
    """
    model._require_trained()
    if model.n_trained != model.n_scales:
        raise ConfigError("adapt needs a fully trained hyper-GAN (every scale)")
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be a non-negative integer, got {steps!r}")
    cfg = model.config
    lr = cfg.lr_g if lr is None else float(lr)
    gen = torch.Generator().manual_seed(int(seed))
    reals = [r.to(model.device) for r in model.pyramid([image])]           # [(1, 3, H_s, W_s)]
    x_embed = model.embed_input([image]).to(model.device)
    if init == "feedforward":
        g_w = model.generator_weights(model.embed([image]))
        with torch.no_grad():
            d_init = model.D(x_embed)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            g_w = [SharedWeights(cfg.g_spec)(1) for _ in range(model.n_scales)]
            d_init = SharedWeights(cfg.d_spec)(1)
    weights = [_leaves(w) for w in g_w]
    out = Adapted(model, weights, init, rec_before=_rec_mse(model, weights, reals))
    t0 = time.perf_counter()
    amps = list(model.noise_amps)
    for n in range(model.n_scales):
        g_params = [t for pair in weights[n] for t in pair]
        d_w = _leaves(d_init)
        opt_g = torch.optim.Adam(g_params, lr=lr, betas=cfg.betas)
        opt_d = torch.optim.Adam([t for pair in d_w for t in pair], lr=lr, betas=cfg.betas)
        for _ in range(steps):
            noise = [torch.randn(1, 3, *s, generator=gen) for s in model.shapes[:n + 1]]
            with torch.no_grad():
                fake = model.run_scales(weights[:n + 1], 1, noise=noise, amps=amps)
            opt_d.zero_grad(set_to_none=True)
            d_loss, _ = critic_loss(lambda x: primary_forward(x, d_w, cfg.d_spec), reals[n],
                                    fake, cfg.lambda_grad, eps=torch.rand(1, generator=gen))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            fake = model.run_scales(weights[:n + 1], 1, noise=noise, amps=amps)
            d_fixed = [(w.detach(), b.detach()) for w, b in d_w]
            rec = model.run_scales(weights[:n + 1], 1, reconstruct=True)
            g_loss = (-primary_forward(fake, d_fixed, cfg.d_spec).mean()
                      + cfg.alpha * reconstruction_loss(rec, reals[n]))
            g_loss.backward()
            opt_g.step()
        for t in g_params:
            t.requires_grad_(False)
    out.seconds = time.perf_counter() - t0
    out.rec_after = _rec_mse(model, weights, reals)
    return out


def adapt_curve(model: HyperGAN, images: Sequence[torch.Tensor], names: Sequence[str],
                steps: Sequence[int], inits: Sequence[str] = INITS, *, n_samples: int = 8,
                seed: int = 0) -> pd.DataFrame:
    """One row per (image, init, K): ``rec MSE`` at the finest scale after K steps per scale,
    ``SWD ×1e3`` of ``n_samples`` samples against the image (fixed noise per image, the same
    for every K and init) and the ``seconds`` the K steps took. Each K is its own run of
    :func:`adapt` from the same start, so the rows of one init differ only in K."""
    if len(images) != len(names):
        raise ConfigError(f"adapt_curve: {len(images)} images but {len(names)} names")
    bad = [i for i in inits if i not in INITS]
    if bad:
        raise ConfigError(f"adapt_curve: unknown init(s) {bad}; choose from {INITS}")
    finest = model.pyramid(list(images))[model.n_scales - 1]               # (B, 3, H, W)
    rows = []
    for k, (image, name) in enumerate(zip(images, names)):
        for init in inits:
            for K in steps:
                a = adapt(model, image, int(K), init, seed=seed)
                fakes = a.sample(n_samples, torch.Generator().manual_seed(seed + k))
                rows.append({"image": name, "init": init, "K": int(K),
                             "rec MSE": a.rec_after[-1],
                             "SWD ×1e3": float(swd_per_sample(finest[k], fakes)["mean"]),
                             "seconds": a.seconds})
    return pd.DataFrame(rows)
