"""GAN losses shared by SinGAN, ConSinGAN and the MIL hyper-GAN.

- WGAN-GP (Gulrajani et al. 2017) as SinGAN uses it (Shaham et al. 2019, Eq. 2–3; REFERENCE §2):
  the critic maximises ``D(real) − D(fake)`` with a gradient penalty of weight ``lambda_grad``
  (0.1 in SinGAN and MIL); the generator maximises ``D(fake)``.
- The reconstruction loss ``‖G(z*) − x‖²`` (SinGAN Eq. 4; MIL Eq. 13), mean squared error.
- The noise-amplitude rule: at scale ``n > 0`` noise is scaled by ``factor · RMSE(x_n, up(x̃_{n−1}))``
  where ``x̃`` is the reconstruction (SinGAN: factor 0.1; MIL: factor 1, REFERENCE §4).

All functions work on batches ``(B, C, H, W)`` and never modify their inputs in place (the
official SinGAN code's in-place updates break autograd on torch ≥ 1.5, REFERENCE §2).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["gradient_penalty", "critic_loss", "generator_adv_loss", "reconstruction_loss",
           "noise_amplitude"]

Critic = Callable[[torch.Tensor], torch.Tensor]


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """``E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` on random interpolates ``x̂ = εx + (1−ε)x̃`` (one ε per sample).

    The gradient norm is taken over every pixel and channel of a sample; the critic's output map is
    summed, so a patch critic is penalised on the gradient of its total score. ``eps`` (B,) gives
    the mixing weights explicitly (a process of a distributed run passes its share of the global
    batch's draws); by default they are drawn from ``generator``.
    """
    if eps is None:
        eps = torch.rand(real.shape[0], generator=generator)
    eps = eps.reshape(-1, 1, 1, 1).to(real)                                       # (B, 1, 1, 1)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, lambda_grad: float = 0.1,
                generator: torch.Generator | None = None, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """The WGAN-GP critic loss ``−D(x) + D(x̃) + λ·GP`` and its parts (for training curves).

    ``fake`` is detached here: the critic step never updates the generator.
    """
    d_real = critic(real).mean()
    d_fake = critic(fake.detach()).mean()
    gp = gradient_penalty(critic, real, fake, generator, eps)
    loss = d_fake - d_real + lambda_grad * gp
    return loss, {"d_real": d_real.item(), "d_fake": d_fake.item(), "gp": gp.item(),
                  "wasserstein": (d_real - d_fake).item()}


def generator_adv_loss(critic: Critic, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss ``−E[D(x̃)]``."""
    return -critic(fake).mean()


def reconstruction_loss(reconstruction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the fixed-noise reconstruction and the real image."""
    return F.mse_loss(reconstruction, real)


def noise_amplitude(real: torch.Tensor, upsampled_reconstruction: torch.Tensor,
                    factor: float = 0.1) -> float:
    """``factor · RMSE(real, up(reconstruction of the previous scale))``, as a Python float.

    SinGAN uses ``factor`` 0.1 (its ``noise_amp_init``); MIL uses 1 and updates the amplitude from
    every batch. At the coarsest scale both use amplitude 1 (pure noise input).
    """
    with torch.no_grad():
        rmse = torch.sqrt(F.mse_loss(upsampled_reconstruction, real))
    return float(factor * rmse)
