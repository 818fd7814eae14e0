"""One full long-tail classifier training per profile (GIT, REFERENCE §6).

    .venv/bin/python benchmarks/bench_classifier.py [--profiles smoke,cpu,paper] [--threads 2]

For each profile: the profile's classifier, epochs and batch size (``ClassifierConfig.from_profile``)
trained with DRS on animal silhouettes cut to the ``animals`` long tail (1,237 images, imbalance
100) with ROT applied once to every image — the setting of notebook 09 — then evaluated on the
transformed test split and measured with eKLD on the clean test images (the profile's protocol).
Prints seconds, steps per second, accuracy and the mean eKLD. The ``paper`` profile trains
ResNet-20 for 50 epochs; on a 2-core CPU that takes a few minutes on this small data set (K49-LT,
7,822 images, is about 6× more steps per epoch).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from mil_core.classify import ClassifierConfig, train_classifier
from mil_core.classify.sweep import make_split
from mil_core.metrics import ekld
from mil_core.profiles import get_profile
from mil_core.runtime import get_device, set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profiles", default="smoke,cpu,paper")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--transform", default="rot")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    device = get_device()
    print(f"machine: {platform.machine()} / torch {torch.__version__} / device {device} / "
          f"threads {threads}\n")
    split = make_split("animals", args.transform, instance=0, seed=0)
    steps_per_epoch = None
    print("| profile | classifier | epochs | batch | steps | train s | steps/s | test acc | "
          "balanced acc | eKLD pairs | eKLD s | mean eKLD |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.profiles.split(","):
        prof = get_profile(name)
        cfg = ClassifierConfig.from_profile(prof, rule="drs", eval_every=0, seed=0)
        run = train_classifier(split.train, split.test, cfg, device=device)
        steps_per_epoch = -(-len(split.train) // cfg.batch_size)
        steps = steps_per_epoch * cfg.epochs
        t0 = time.perf_counter()
        res = ekld(run.model, split.test_clean, args.transform,
                   images_per_class=prof.git.ekld_images_per_class,
                   n_transforms=prof.git.ekld_transforms, device=device)
        t_ekld = time.perf_counter() - t0
        secs = run.timings["train_seconds"]
        print(f"| {name} | {cfg.model} | {cfg.epochs} | {cfg.batch_size} | {steps} | "
              f"{secs:.1f} | {steps / secs:.1f} | {run.acc:.3f} | {run.balanced_acc:.3f} | "
              f"{int(res.n_pairs.sum()):,} | {t_ekld:.1f} | {res.mean_ekld():.4f} |")


if __name__ == "__main__":
    main()
