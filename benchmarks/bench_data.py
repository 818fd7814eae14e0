"""Data-pipeline speed: nuisance transforms, long-tail building, image pyramids.

    .venv/bin/python benchmarks/bench_data.py [--threads 1] [--n 10000]

Prints throughput (images per second) and, for the transforms, the speed-up of the batched torch
implementation over applying the same transform one image at a time — both measured in this run.
"""
from __future__ import annotations

import argparse
import time

import torch

from mil_core import data as D
from mil_core.runtime import set_threads


def timed(fn, repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10_000, help="images for the batched runs")
    ap.add_argument("--loop-n", type=int, default=500, help="images for the per-image loop")
    args = ap.parse_args()
    set_threads(args.threads)
    animals = D.load_git_dataset("animals")
    images = animals.images[: args.n]
    few = images[: args.loop_n]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {len(images)} animal images 28×28\n")
    print(f"{'transform':<10}{'batched img/s':>16}{'per-image img/s':>18}{'speed-up':>10}")
    for name in ("rot", "bg", "dil"):
        gen = torch.Generator().manual_seed(0)
        batched = timed(lambda: D.transform_dataset(images, name, gen))
        looped = timed(lambda: [D.transform_dataset(img[None], name, gen) for img in few], 1)
        b_rate, l_rate = len(images) / batched, len(few) / looped
        print(f"{name:<10}{b_rate:>16,.0f}{l_rate:>18,.0f}{b_rate / l_rate:>9.1f}×")

    sec = timed(lambda: D.make_long_tailed(animals, "animals", instance=1))
    print(f"\nlong-tail instance of animals (10k images): {sec * 1e3:.1f} ms")

    photo = D.load_bundled("chelsea")
    for label, cfg in [("SinGAN 250 px, 10 scales", D.PyramidConfig()),
                       ("MIL 250 px, 7 scales", D.PyramidConfig(n_scales=7, aspect=0.75))]:
        sec = timed(lambda: D.build_pyramid(photo, cfg))
        print(f"pyramid, {label}: {sec * 1e3:.1f} ms per image")


if __name__ == "__main__":
    main()
