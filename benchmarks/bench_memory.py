"""Peak memory of MIL's hyper-GAN at a profile's sizes, per head variant (MIL Appendix B.5).

    .venv/bin/python benchmarks/bench_memory.py --profile paper --regime single
    .venv/bin/python benchmarks/bench_memory.py --profile paper --regime dataset --batch 4
    .venv/bin/python benchmarks/bench_memory.py --show

Appendix B.5 reports 11 GB of GPU memory to train on one image, 22 GB on a data set (batch 16)
and 5 GB at test time, at 256 px. One invocation measures, for each ``--variants`` entry
(``linear`` — MIL's heads; ``rankR`` — compact rank-R heads; ``frozen`` — a frozen encoder with
MIL's heads; ``Nlayer`` — N-layer heads), a short training run (``--iters`` steps per scale, the
peak is at the finest scale) and inference (``--samples`` per image), each in a fresh process
(:func:`mil_core.memory.peak_memory`: on Linux the peak RSS since the imports; on a GPU also
``max_memory_allocated``), the floor of a process holding torch and the images, and the closed
form of parameters + gradients + Adam moments. Rows are appended atomically to ``--out``
(default ``benchmarks/results/memory.csv``).

At the paper's sizes on a CPU a training measurement needs several GB of RAM and a few minutes.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import re
import time
from pathlib import Path

import torch

from mil_core import memory as MEM
from mil_core.models import HyperGANConfig
from mil_core.runtime import get_device
from results_table import append_rows, show

OUT = Path(__file__).resolve().parent / "results" / "memory.csv"


def variant(base: HyperGANConfig, name: str, ap: argparse.ArgumentParser) -> HyperGANConfig:
    """``base`` with the head / encoder named by ``name``."""
    if name == "linear":
        return base
    if name == "frozen":
        return dataclasses.replace(base, encoder_frozen=True)
    m = re.fullmatch(r"rank(\d+)|(\d+)layer", name)
    if not m:
        ap.error(f"--variants: {name!r} is not linear, frozen, rankR or Nlayer")
    if m.group(1):
        return dataclasses.replace(base, head_rank=int(m.group(1)))
    return dataclasses.replace(base, head_layers=int(m.group(2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--regime", choices=("single", "dataset"), default="single",
                    help="single: one image, an ordinary critic (B.5: 11 GB); dataset: "
                         "hyper-critic, --batch images per step (B.5: 22 GB at 16)")
    ap.add_argument("--batch", type=int, default=None, help="dataset regime: images per step")
    ap.add_argument("--variants", default="linear,rank62,frozen")
    ap.add_argument("--phases", default="train,infer")
    ap.add_argument("--iters", type=int, default=1, help="training steps per scale")
    ap.add_argument("--samples", type=int, default=1, help="inference samples per image")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="default: cuda, else mps, else cpu")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--show", action="store_true", help="print the table and exit")
    args = ap.parse_args()
    if args.show:
        show(args.out)
        return
    device = str(args.device or get_device())
    n = 1 if args.regime == "single" else (args.batch or 16)
    base = HyperGANConfig.from_profile(args.profile, args.regime, n_images=1)
    base = dataclasses.replace(base, batch_size=n)
    phases = args.phases.split(",")
    floor = MEM.peak_memory(base, "baseline", device=device, n_images=n, threads=args.threads)
    print(f"{args.profile} profile, {args.regime} regime, batch {n}, {device}; floor "
          f"{floor['process peak MB']:.0f} MB", flush=True)
    rows = []
    for name in args.variants.split(","):
        cfg = variant(base, name, ap)
        counts = MEM.head_parameter_counts(cfg)
        state = MEM.training_state_bytes(cfg)
        for phase in phases:
            start = time.perf_counter()
            got = MEM.peak_memory(cfg, phase, device=device, iters=args.iters,
                                  n_samples=args.samples, n_images=n, threads=args.threads)
            row = {"profile": args.profile, "regime": args.regime, "batch": n,
                   "variant": name, "phase": phase,
                   "G head params/scale": counts["G head per scale"],
                   "peak MB": round(got["process peak MB"], 1),
                   "floor MB": round(floor["process peak MB"], 1),
                   "above floor MB": round(got["process peak MB"] - floor["process peak MB"], 1),
                   "GPU peak MB": round(got.get("GPU peak MB", float("nan")), 1),
                   "closed form params MB": round(state["parameters MB"], 1),
                   "closed form grad+Adam MB": round(state["grad + Adam MB"], 1),
                   "seconds": round(time.perf_counter() - start, 1), "device": device,
                   "machine": platform.machine(), "cpu cores": os.cpu_count(),
                   "torch": torch.__version__, "date": dt.date.today().isoformat()}
            rows.append(row)
            print(f"  {name:>8} {phase:>5}: peak {row['peak MB']:8.1f} MB "
                  f"({row['above floor MB']:8.1f} above floor), closed form params "
                  f"{row['closed form params MB']:.0f} MB, {row['seconds']:.0f} s", flush=True)
    append_rows(rows, args.out)
    print(f"{len(rows)} row(s) appended to {args.out}")


if __name__ == "__main__":
    main()
