"""The mismatch test of MIL's Prop. 2: can the critic tell *whose* samples it is judging?

With one ordinary critic for every image (``HyperGANConfig(discriminator="shared")``), the
adversarial loss of a sample does not depend on which image it is claimed to be of, so the
generator of image ``i`` is never penalised for producing image ``j``'s patches (Bensadoun et al.
2021, Sec. 4.2, Prop. 2). A hyper-critic is generated from the image's embedding, so it can.

:func:`mismatch_losses` measures it on a trained model: ``L[i, j]`` is the generator's
adversarial loss ``−mean D_i(x)`` (Eq. 13) of image ``j``'s samples judged by image ``i``'s
critic, on the same samples for every ``i``. The diagonal is the matched case. A shared critic
gives equal entries down each column (exactly, not to tolerance: it is one network);
:func:`mismatch_gap` is the mean mismatched loss minus the mean matched one — 0 for a shared
critic, positive for a critic that prefers each image's own samples.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import ConfigError
from .models.hypergan import HyperGAN
from .models.hypernet import primary_forward

__all__ = ["mismatch_losses", "mismatch_gap"]


def mismatch_losses(model: HyperGAN, images: Sequence[torch.Tensor], n_samples: int = 8,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``(N, N)``: row ``i`` = critic of image ``i``, column ``j`` = samples of image ``j``."""
    if len(images) < 2:
        raise ConfigError(f"mismatch_losses needs at least 2 images, got {len(images)}")
    samples = model.generate(images, n_samples, generator=generator)   # (N, k, 3, H, W)
    x_embed = model.embed_input(images).to(model.device)
    spec = model.config.d_spec
    with torch.no_grad():
        critics = model.D(x_embed)                                     # N critics' weights
        n = len(images)
        out = torch.zeros(n, n)
        for i in range(n):
            w_i = [(w[i:i + 1], b[i:i + 1]) for w, b in critics]        # critic i, batch 1
            for j in range(n):
                x = samples[j].to(model.device)                         # (k, 3, H, W)
                out[i, j] = -primary_forward(x, w_i, spec).mean()
    return out


def mismatch_gap(losses: torch.Tensor) -> float:
    """Mean off-diagonal minus mean diagonal of :func:`mismatch_losses`' matrix."""
    n = losses.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    return float(losses[off].mean() - losses.diagonal().mean())
