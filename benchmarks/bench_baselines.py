"""Cost of the single-image baselines: SinGAN and ConSinGAN on one image.

    .venv/bin/python benchmarks/bench_baselines.py [--threads 2] [--iters 60] [--size 48]

Trains each baseline once on the bundled photo "chelsea" at a fixed small configuration and
prints iterations per second, seconds per scale and minutes per image, plus an extrapolation to
the paper's 2000 iterations per scale at the same image size. This is the figure later compared
with the MIL hyper-network's cost per image (REFERENCE §4: SinGAN ~60 min/image on a GPU,
ConSinGAN ~20).
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from mil_core import data as D
from mil_core.models import ConSinGANConfig, SinGANConfig, train_consingan, train_singan
from mil_core.profiles import get_profile
from mil_core.runtime import get_device, set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=60, help="iterations per scale")
    ap.add_argument("--size", type=int, default=48, help="long side of the finest scale")
    args = ap.parse_args()
    set_threads(args.threads)
    device = get_device()
    prof = get_profile("cpu", **{"image.max_size": args.size, "image.min_size": 16,
                                 "gan.iters_per_scale": args.iters})
    image = D.load_bundled("chelsea")
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s); "
          f"{args.size}-px image, {args.iters} iterations per scale, channels {prof.gan.channels}, "
          f"{prof.gan.steps_d} D + {prof.gan.steps_g} G steps per iteration\n")
    rows = []
    for name, make_cfg, train in [("SinGAN", SinGANConfig.from_profile, train_singan),
                                  ("ConSinGAN", ConSinGANConfig.from_profile, train_consingan)]:
        cfg = make_cfg(prof)
        model = train(image, cfg, seed=0, device=device, show_progress=False)
        t = model.timings
        per_scale = t["seconds_per_scale"]
        total_iters = args.iters * len(per_scale)
        rows.append((name, len(per_scale), total_iters / t["total_seconds"],
                     sum(per_scale) / len(per_scale), t["total_seconds"] / 60,
                     t["total_seconds"] / 60 * 2000 / args.iters))
        print(f"{name}: seconds per scale " + ", ".join(f"{s:.1f}" for s in per_scale))
    print(f"\n{'method':<11}{'scales':>7}{'it/s':>8}{'s/scale':>9}{'min/image':>11}"
          f"{'min/image @2000 it':>20}")
    for name, n, ips, sps, mins, extrap in rows:
        print(f"{name:<11}{n:>7}{ips:>8.1f}{sps:>9.1f}{mins:>11.2f}{extrap:>20.1f}")
    print(f"\nConSinGAN / SinGAN time ratio: {rows[1][4] / rows[0][4]:.2f}")


if __name__ == "__main__":
    main()
