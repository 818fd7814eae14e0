"""Speed levers of the GAN training steps, chosen per device (issue 11, "a step near the limit").

A lever changes how a step is computed, never what: every lever gives the same result to float
tolerance on and off (``tests/test_levers.py``), and the choice is made per device from
measurements (``benchmarks/bench_roofline.py --levers``), never by a profile. An environment
variable forces a lever either way on every device, for measuring and for debugging:

=========================  ==========================================  ============================
lever                      on                                          default
=========================  ==========================================  ============================
``MIL_ADAM``               ``fused`` (one kernel for every parameter),  ``fused`` where torch has it
                           ``foreach`` (batched), ``loop`` (per tensor) (CPU, CUDA), else foreach
``MIL_CHANNELS_LAST``      ``1``: the primary nets' grouped             ``1`` on a CPU, ``0``
                           convolutions in channels-last memory         elsewhere (not measured)
``MIL_PRIMARY_CONV``       see :func:`mil_core.models.hypernet.conv_mode`
=========================  ==========================================  ============================

Measured on this project's 2-core x86_64 CPU, 1 thread (RESULTS.md, "Roofline"): Adam over
MIL-like heads 9.1 ms (loop) → 4.2 (foreach) → 1.5 (fused); a grouped 3×3 convolution forward +
backward 1.2–1.6× faster in channels-last memory (16–64 channels, batch 4–16).
"""
from __future__ import annotations

import os
from typing import Iterable

import torch

from .errors import ConfigError

__all__ = ["ADAM_ENV", "ADAM_IMPLS", "CHANNELS_LAST_ENV", "adam_impl", "make_adam",
           "channels_last"]

ADAM_ENV = "MIL_ADAM"
ADAM_IMPLS = ("fused", "foreach", "loop")
CHANNELS_LAST_ENV = "MIL_CHANNELS_LAST"


def _device_type(device: torch.device | str) -> str:
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} (use cuda, mps or cpu)") from exc


def adam_impl(device: torch.device | str) -> str:
    """``$MIL_ADAM`` when set, else ``fused`` on a CPU or a CUDA device, ``foreach`` elsewhere."""
    forced = os.environ.get(ADAM_ENV, "").strip().lower()
    kind = _device_type(device)
    if forced:
        if forced not in ADAM_IMPLS:
            raise ConfigError(f"{ADAM_ENV}={forced!r}: use one of {', '.join(ADAM_IMPLS)} "
                              "(or unset it for the per-device choice)")
        return forced
    return "fused" if kind in ("cpu", "cuda") else "foreach"


def make_adam(params: Iterable, lr: float, betas: tuple[float, float],
              device: torch.device | str) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the implementation of :func:`adam_impl` for ``device``.
    ``params``: tensors or parameter groups, as for Adam itself."""
    impl = adam_impl(device)
    options = {"fused": {"fused": True}, "foreach": {"foreach": True},
               "loop": {"foreach": False}}[impl]
    return torch.optim.Adam(params, lr=lr, betas=betas, **options)


def channels_last(device: torch.device | str) -> bool:
    """Whether the primary nets run in channels-last memory on ``device``: ``$MIL_CHANNELS_LAST``
    (``1`` / ``0``) when set, else on a CPU only (the only device measured)."""
    forced = os.environ.get(CHANNELS_LAST_ENV, "").strip()
    kind = _device_type(device)
    if forced:
        if forced not in ("0", "1"):
            raise ConfigError(f"{CHANNELS_LAST_ENV}={forced!r}: use 1 or 0 (or unset it for the "
                              "per-device choice)")
        return forced == "1"
    return kind == "cpu"
