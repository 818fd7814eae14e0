"""How close a training step of SinGAN and of the hyper-GAN runs to this machine's limit.

    .venv/bin/python benchmarks/bench_roofline.py [--profile cpu] [--threads 2] [--iters 10 30]
                                                  [--levers]

Prints, all measured in this one run:

1. **Peaks** for the kinds of work a step is made of, at the profile's own sizes: a 3×3
   convolution C→C forward + backward (input and weight gradients) at the finest scale, batch 1
   (SinGAN) and batch B (the hyper-GAN's primary nets, one grouped convolution), and the
   projection heads' matmul ``(B, embed) @ (embed, numel)`` forward + backward — GFLOP/s, the
   median of several timed repeats after warm-up.
2. **Whole steps.** The FLOPs of one step, counted by ``torch.utils.flop_counter`` (convolutions
   and matmuls, forward and backward, the gradient penalty's double backward included; element-
   wise work is not counted), split into convolution and matmul FLOPs; the step's seconds; the
   achieved GFLOP/s; and the ratio to the step's own **roofline**, two ways: *finest-shape* — the
   time its convolution FLOPs would take at the finest scale's convolution peak plus its matmul
   FLOPs at the heads' matmul peak (optimistic: the coarse scales and the encoder have smaller,
   slower shapes); *per-shape* — every convolution and matmul call the step made, re-run alone
   on fresh tensors of its own shapes and strides (:func:`mil_core.roofline.replay_seconds`).
   100 % would mean that nothing but those calls, each at its isolated speed, runs.

3. With ``--levers``: the step with each lever of :mod:`mil_core.levers` off and on, in this
   one run (median of ``--repeats`` alternating measurements) — fused Adam (``MIL_ADAM``),
   channels-last grouped convolutions (``MIL_CHANNELS_LAST``), the primary nets as a per-image
   loop (``MIL_PRIMARY_CONV``, not kept), then the kept levers together — and the ratio.

A "step" is one iteration of the trainer (``steps_d`` critic and ``steps_g`` generator updates),
averaged over the pyramid: two short runs of ``--iters`` a and b iterations per scale are counted
and timed, and the difference divided by the difference of their iterations, so the set-up
(pyramid, embeddings, noise amplitudes) cancels.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import torch

from mil_core import data as D
from mil_core.models import HyperGANConfig, SinGANConfig, train_singan
from mil_core.models.hypergan_train import train_hypergan
from mil_core.models.hypergan import canonical_shapes
from mil_core.profiles import get_profile
from mil_core.roofline import FlopCount, conv_peak, matmul_peak, replay_seconds
from mil_core.runtime import set_threads

def levers_to_measure(singan_run, mil_run) -> list[tuple]:
    """(label, run, environment variables, off values, on values): each lever of
    :mod:`mil_core.levers` and ``MIL_PRIMARY_CONV``, alone, then the kept ones together."""
    return [
        ("hyper-GAN: primary nets as a per-image loop (not kept)", mil_run,
         ("MIL_PRIMARY_CONV",), "grouped", "loop"),
        ("hyper-GAN: fused Adam instead of the per-tensor loop", mil_run, ("MIL_ADAM",),
         "loop", "fused"),
        ("hyper-GAN: grouped convs in channels-last memory", mil_run, ("MIL_CHANNELS_LAST",),
         "0", "1"),
        ("hyper-GAN: both kept levers (the CPU default)", mil_run,
         ("MIL_ADAM", "MIL_CHANNELS_LAST"), "loop+0", "fused+1"),
        ("SinGAN: fused Adam (the CPU default)", singan_run, ("MIL_ADAM",), "loop", "fused"),
    ]


def per_step(run, iters: tuple[int, int], count: bool = True) -> dict[str, float]:
    """FLOPs (unless ``count`` is False) and seconds per iteration, from two runs of
    ``run(iters_per_scale)``, which returns the number of iterations it ran."""
    counted, replayed, timed, steps = [], [], [], []
    run(iters[0])                                     # warm-up: allocator, kernels, thread pool
    for it in iters:
        if count:
            with FlopCount() as counter:
                run(it)
            counted.append(counter.split())
            replayed.append(sum(replay_seconds(counter).values()))
        t0 = time.perf_counter()
        steps.append(run(it))
        timed.append(time.perf_counter() - t0)
    ds = steps[1] - steps[0]
    out = {"seconds": (timed[1] - timed[0]) / ds}
    if count:
        out.update(zip(("conv", "mm", "other"), ((b - a) / ds for a, b in zip(*counted))))
        out["replay"] = (replayed[1] - replayed[0]) / ds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, nargs=2, default=(10, 30),
                    help="iterations per scale of the two short runs")
    ap.add_argument("--levers", action="store_true", help="step time with each lever off / on")
    ap.add_argument("--repeats", type=int, default=3, help="alternating lever measurements")
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
          f"finest-shape roofline ms | of it | per-shape roofline ms | of it |\n"
          f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, run, cpeak in (("SinGAN, 1 image", singan_run, conv_single),
                             (f"hyper-GAN dataset, batch {B}", mil_run, conv_grouped)):
        s = per_step(run, tuple(args.iters))
        total = s["conv"] + s["mm"] + s["other"]
        ideal = s["conv"] / (cpeak * 1e9) + s["mm"] / (mm_peak * 1e9)
        print(f"| {name} | {s['conv'] / 1e9:.3f} | {s['mm'] / 1e9:.3f} | {s['other'] / 1e9:.3f} "
              f"| {s['seconds'] * 1e3:.1f} | {total / s['seconds'] / 1e9:.1f} | "
              f"{ideal * 1e3:.1f} | {ideal / s['seconds']:.0%} | {s['replay'] * 1e3:.1f} | "
              f"{s['replay'] / s['seconds']:.0%} |")
    if args.levers:
        print("\n| lever | off: ms/step | on: ms/step | on / off |\n|---|---:|---:|---:|")
        for label, run, env, off, on in levers_to_measure(singan_run, mil_run):
            runs: dict[str, list[float]] = {off: [], on: []}
            for _ in range(args.repeats):             # alternate, so drift hits both alike
                for value in runs:
                    for name, v in zip(env, value.split("+")):
                        os.environ[name] = v
                    runs[value].append(per_step(run, tuple(args.iters), count=False)["seconds"])
            for name in env:
                os.environ.pop(name)
            t_off, t_on = (statistics.median(runs[v]) for v in (off, on))
            print(f"| {label} | {t_off * 1e3:.1f} | {t_on * 1e3:.1f} | {t_on / t_off:.2f} |",
                  flush=True)
    print("\nfinest-shape roofline = conv FLOPs at the finest scale's conv peak + matmul FLOPs "
          "at the heads' matmul peak (optimistic for the coarser scales and the encoder); "
          "per-shape roofline = every counted conv / matmul call of the step re-run alone on "
          "fresh tensors of its own shape (mil_core.roofline.replay_seconds). Steps averaged "
          "over the pyramid's scales.")


if __name__ == "__main__":
    main()
