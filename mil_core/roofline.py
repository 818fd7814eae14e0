"""The machine's measured peaks for the kinds of work a GAN training step is made of.

A step of SinGAN or of the hyper-GAN is mostly 3×3 convolutions (the primary nets, the critic,
the encoder) and matmuls (the projection heads), forward and backward, plus the gradient
penalty's double backward. :func:`conv_peak` and :func:`matmul_peak` time one such op of a given
shape (median of repeats after warm-up) and return GFLOP/s; :class:`FlopCount` counts the FLOPs a
piece of code performs, with torch's own per-op formulas. ``benchmarks/bench_roofline.py``
combines them into the step's roofline; ``benchmarks/bench_frontier.py`` records
:func:`conv_peak` at the start of every run, so that minutes measured while the machine drifts
can be compared after normalising by it.
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

__all__ = ["CONV_OPS", "MM_OPS", "median_seconds", "conv_peak", "matmul_peak", "FlopCount",
           "replay_seconds"]

CONV_OPS = ("convolution", "convolution_backward")
MM_OPS = ("mm", "addmm", "bmm", "baddbmm")


def median_seconds(fn: Callable[[], object], repeat: int = 7, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_peak(batch: int, channels: int, h: int, w: int, groups: int = 1) -> float:
    """GFLOP/s of a 3×3 conv forward + backward (input and weight grads), zero padding 1."""
    x = torch.randn(batch, channels * groups, h, w, requires_grad=True)
    wt = torch.randn(channels * groups, channels, 3, 3, requires_grad=True)

    def step():
        y = F.conv2d(x, wt, padding=1, groups=groups)
        y.sum().backward()

    flops = 3 * 2 * batch * channels * groups * channels * 9 * h * w   # fwd + 2 backward
    return flops / median_seconds(step) / 1e9


def matmul_peak(batch: int, k: int, n: int) -> float:
    """GFLOP/s of ``(batch, k) @ (k, n)`` forward + backward (both gradients)."""
    a = torch.randn(batch, k, requires_grad=True)
    b = torch.randn(k, n, requires_grad=True)

    def step():
        (a @ b).sum().backward()

    return 3 * 2 * batch * k * n / median_seconds(step) / 1e9


def _kind(op_name: str) -> str:
    """``conv``, ``mm`` or ``other``: the kind of work an aten op is counted as."""
    return "conv" if op_name in CONV_OPS else "mm" if op_name in MM_OPS else "other"


class FlopCount(TorchDispatchMode):
    """Counts FLOPs per op with torch's own formulas (``torch.utils.flop_counter``). Written as
    a bare dispatch mode because ``FlopCounterMode``'s module hooks refuse the gradient
    penalty's ``autograd.grad(create_graph=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, float] = defaultdict(float)
        # every counted call by signature: (op, its arguments with each tensor replaced by its
        # (shape, stride, dtype)) -> number of calls; :func:`replay_seconds` re-runs them
        self.calls: dict[tuple, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.counts[packet.__name__] += flop_registry[packet](*args, **kwargs, out_val=out)
            self.calls[(func, _signature(args), _signature(tuple(kwargs.items())))] += 1
        return out

    def split(self) -> tuple[float, float, float]:
        """(convolution, matmul, other counted) FLOPs."""
        kinds: dict[str, float] = defaultdict(float)
        for name, n in self.counts.items():
            kinds[_kind(name)] += n
        return kinds["conv"], kinds["mm"], kinds["other"]


class _Meta(tuple):
    """A tensor argument of a recorded call: (shape, stride, dtype)."""


def _signature(args: tuple) -> tuple:
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(_Meta((tuple(a.shape), tuple(a.stride()), a.dtype)))
        elif isinstance(a, (list, tuple)) and not isinstance(a, _Meta):
            out.append(_signature(tuple(a)))
        else:
            out.append(a)
    return tuple(out)


def _materialise(sig: tuple, gen: torch.Generator) -> list:
    out = []
    for a in sig:
        if isinstance(a, _Meta):
            shape, stride, dtype = a
            storage = 1 + sum((n - 1) * st for n, st in zip(shape, stride)) if all(shape) else 0
            base = torch.randn(max(storage, 1), generator=gen).to(dtype)
            out.append(base.as_strided(shape, stride))
        elif isinstance(a, tuple):
            out.append(list(_materialise(a, gen)))
        else:
            out.append(a)
    return out


def replay_seconds(counter: FlopCount, repeat: int = 5) -> dict[str, float]:
    """Seconds the counted calls take when each is re-run alone on fresh tensors of the same
    shapes and strides (the median of ``repeat`` runs per signature, times its number of calls),
    by kind (``conv``, ``mm``, ``other``): the time of a step made of nothing but its own FLOP
    work, each op at the speed it reaches in isolation — a per-shape roofline, where
    :func:`conv_peak` gives one shape's."""
    gen = torch.Generator().manual_seed(0)
    kinds: dict[str, float] = defaultdict(float)
    with torch.no_grad():
        for (func, sig, kw), calls in counter.calls.items():
            args, kwargs = _materialise(sig, gen), dict(_materialise(kw, gen))
            kinds[_kind(func._overloadpacket.__name__)] += calls * median_seconds(lambda: func(*args, **kwargs), repeat=repeat,
                                                  warmup=1)
    return {k: kinds[k] for k in ("conv", "mm", "other")}
