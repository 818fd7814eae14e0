"""How close a training step of SinGAN and of the hyper-GAN runs to this machine's limit.

    .venv/bin/python benchmarks/bench_roofline.py [--profile cpu] [--threads 2] [--iters 10 30]

Prints, all measured in this one run:

1. **Peaks** for the kinds of work a step is made of, at the profile's own sizes: a 3×3
   convolution C→C forward + backward (input and weight gradients) at the finest scale, batch 1
   (SinGAN) and batch B (the hyper-GAN's primary nets, one grouped convolution), and the
   projection heads' matmul ``(B, embed) @ (embed, numel)`` forward + backward — GFLOP/s, the
   median of several timed repeats after warm-up.
2. **Whole steps.** The FLOPs of one step, counted by ``torch.utils.flop_counter`` (convolutions
   and matmuls, forward and backward, the gradient penalty's double backward included; element-
   wise work is not counted), split into convolution and matmul FLOPs; the step's seconds; the
   achieved GFLOP/s; and the ratio to the step's own **roofline**: the time its convolution FLOPs
   would take at the convolution peak plus its matmul FLOPs at the matmul peak, over the measured
   time. 100 % would mean that nothing but peak-rate convolutions and matmuls runs.

A "step" is one iteration of the trainer (``steps_d`` critic and ``steps_g`` generator updates),
averaged over the pyramid: two short runs of ``--iters`` a and b iterations per scale are counted
and timed, and the difference divided by the difference of their iterations, so the set-up
(pyramid, embeddings, noise amplitudes) cancels.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from mil_core import data as D
from mil_core.models import HyperGANConfig, SinGANConfig, train_singan
from mil_core.models.hypergan_train import train_hypergan
from mil_core.models.hypergan import canonical_shapes
from mil_core.profiles import get_profile
from mil_core.runtime import set_threads

CONV_OPS = ("convolution", "convolution_backward")
MM_OPS = ("mm", "addmm", "bmm", "baddbmm")


def median_seconds(fn, repeat: int = 7, warmup: int = 2) -> float:
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


class FlopCount(TorchDispatchMode):
    """Counts FLOPs per op with torch's own formulas (``torch.utils.flop_counter``). Written as
    a bare dispatch mode because ``FlopCounterMode``'s module hooks refuse the gradient
    penalty's ``autograd.grad(create_graph=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.counts[packet.__name__] += flop_registry[packet](*args, **kwargs, out_val=out)
        return out

    def split(self) -> tuple[float, float, float]:
        """(convolution, matmul, other counted) FLOPs."""
        kinds: dict[str, float] = defaultdict(float)
        for name, n in self.counts.items():
            kind = "conv" if name in CONV_OPS else "mm" if name in MM_OPS else "other"
            kinds[kind] += n
        return kinds["conv"], kinds["mm"], kinds["other"]


def per_step(run, iters: tuple[int, int]) -> dict[str, float]:
    """FLOPs and seconds per iteration, from two runs of ``run(iters_per_scale)``."""
    counted, timed = [], []
    for it in iters:
        with FlopCount() as counter:
            steps = run(it)
        counted.append((counter.split(), steps))
        t0 = time.perf_counter()
        run(it)
        timed.append(time.perf_counter() - t0)
    (fa, sa), (fb, sb) = counted
    ds = sb - sa
    conv, mm, other = ((b - a) / ds for a, b in zip(fa, fb))
    return {"conv": conv, "mm": mm, "other": other, "seconds": (timed[1] - timed[0]) / ds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, nargs=2, default=(10, 30),
                    help="iterations per scale of the two short runs")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    prof = get_profile(args.profile)
    img = D.load_bundled("chelsea")
    n_img = prof.gan.batch_size
    imgs = [img for _, img in D.load_collection("bundled", limit=n_img)]
    mil = HyperGANConfig.from_profile(prof, "dataset", log_every=10 ** 6)
    sg = SinGANConfig.from_profile(prof)
    h, w = canonical_shapes(mil.pyramid)[-1]
    C, Cm, B = prof.gan.channels, prof.gan.mil_channels, mil.batch_size
    numel = mil.g_spec.numel()
    print(f"# Roofline of a training step — profile {prof.name}, {threads} thread(s), "
          f"torch {torch.__version__}, {platform.machine()} ({platform.processor() or 'cpu'})\n")

    peaks = {
        f"conv 3×3 {C}→{C} at {h}×{w}, batch 1 (SinGAN)": conv_peak(1, C, h, w),
        f"conv 3×3 {Cm}→{Cm} at {h}×{w}, batch {B}, grouped (hyper-GAN primary)":
            conv_peak(1, Cm, h, w, groups=B),
        f"conv 3×3 {Cm}→{Cm} at {h}×{w}, batch {B}, shared weights": conv_peak(B, Cm, h, w),
        f"matmul ({B}, {mil.embed_dim}) @ ({mil.embed_dim}, {numel}) (G heads)":
            matmul_peak(B, mil.embed_dim, numel),
    }
    print("| kind of work | GFLOP/s |\n|---|---:|")
    for k, v in peaks.items():
        print(f"| {k} | {v:.1f} |")
    conv_single, conv_grouped, _, mm_peak = peaks.values()

    def singan_run(it: int) -> int:
        cfg = dataclasses.replace(sg, iters_per_scale=it)
        m = train_singan(img, cfg, seed=0, show_progress=False)
        return it * len(m.shapes)

    def mil_run(it: int) -> int:
        cfg = dataclasses.replace(mil, iters_per_scale=it)
        m = train_hypergan(imgs, cfg, seed=0, show_progress=False)
        return it * m.n_scales

    print(f"\n| step | conv GFLOP | matmul GFLOP | other GFLOP | ms/step | achieved GFLOP/s | "
          f"roofline ms | of roofline |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, run, cpeak in (("SinGAN, 1 image", singan_run, conv_single),
                             (f"hyper-GAN dataset, batch {B}", mil_run, conv_grouped)):
        s = per_step(run, tuple(args.iters))
        total = s["conv"] + s["mm"] + s["other"]
        ideal = s["conv"] / (cpeak * 1e9) + s["mm"] / (mm_peak * 1e9)
        print(f"| {name} | {s['conv'] / 1e9:.3f} | {s['mm'] / 1e9:.3f} | {s['other'] / 1e9:.3f} "
              f"| {s['seconds'] * 1e3:.1f} | {total / s['seconds'] / 1e9:.1f} | "
              f"{ideal * 1e3:.1f} | {ideal / s['seconds']:.0%} |")
    print("\nroofline = conv FLOPs at the conv peak of the same shape + matmul FLOPs at the "
          "matmul peak; steps averaged over the pyramid's scales (finest-scale peaks: an "
          "optimistic bound for the coarser scales).")


if __name__ == "__main__":
    main()
