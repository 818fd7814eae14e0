"""GIT's cost: MUNIT iterations per second per config, and a GIT epoch against a plain one.

    .venv/bin/python benchmarks/bench_munit.py [--profiles smoke,cpu,paper] [--threads 2]
                                               [--iters 30]

For each profile's MUNIT (``MUNITConfig.from_profile``: widths, residual blocks, MLP) on the
digits cut to the ``digits`` long tail with ROT (the setting of notebook 09): ``--iters`` training
steps after 3 warm-up steps, timed as one block. Then, with the ``cpu`` profile's classifier, one
epoch of DRS training with and without GIT (half of every batch translated by that profile's
untrained MUNIT — the forward cost does not depend on training), both measured in this one run.
REFERENCE §6 measured ~0.07 s/iter (reduced MUNIT) and ~0.25 s/iter (full) on 2 cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch

from mil_core.classify import ClassifierConfig, train_classifier
from mil_core.classify.sweep import make_split
from mil_core.models import MUNIT, MUNITConfig, train_munit
from mil_core.runtime import get_device, set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="smoke,cpu,paper")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30, help="timed MUNIT steps per profile")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    device = get_device()
    split = make_split("digits", "rot", instance=0, seed=0)
    x = split.train.images.float()[:, None] / 127.5 - 1                      # (N, 1, 28, 28)
    print(f"{platform.machine()}, {threads} thread(s), torch {torch.__version__}, device "
          f"{device}; digits-LT with ROT, {len(split.train)} training images\n")
    print("| profile | dim / res blocks / MLP | G / D parameters | s/iter | iter/s |")
    print("|---|---|---:|---:|---:|")
    for name in args.profiles.split(","):
        cfg = MUNITConfig.from_profile(name, iters=3, checkpoint_every=10**9)
        train_munit(x, split.train.labels, cfg, seed=0, device=device, show_progress=False)
        cfg = dataclasses.replace(cfg, iters=args.iters)
        t0 = time.perf_counter()
        model = train_munit(x, split.train.labels, cfg, seed=0, device=device,
                            show_progress=False)
        s = (time.perf_counter() - t0) / args.iters
        n = model.n_parameters()
        print(f"| {name} | {cfg.dim} / {cfg.n_res} / {cfg.mlp_dim} | {n['G'] / 1e6:.2f} M / "
              f"{n['D'] / 1e6:.2f} M | {s:.3f} | {1 / s:.1f} |")

    munit = MUNIT(MUNITConfig.from_profile("cpu")).to(device)
    base = ClassifierConfig.from_profile("cpu", rule="drs", epochs=2, warmup_epochs=0,
                                         lr_steps=(0.5, 1.0), eval_every=0, seed=0)
    times = {}
    for label, cfg in (("plain DRS", base),
                       ("DRS + GIT (half of each batch)", dataclasses.replace(base,
                                                                            git_fraction=0.5))):
        run = train_classifier(split.train, None, cfg, device=device, augmenter=munit)
        times[label] = run.history[-1]["seconds"]          # epoch 1: after the switch
    print("\n| classifier epoch (cpu profile, after the first lr step) | seconds | ratio |")
    print("|---|---:|---:|")
    plain = times["plain DRS"]
    for label, s in times.items():
        print(f"| {label} | {s:.2f} | {s / plain:.1f}× |")


if __name__ == "__main__":
    main()
