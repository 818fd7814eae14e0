"""SWD calibration on the published Places-50 samples, and the every-patch SWD's speed.

    .venv/bin/python benchmarks/bench_calibration.py [--n 25] [--sizes 250 64 32] [--threads 1]
    .venv/bin/python benchmarks/bench_calibration.py --timing      # speed and seed spread only

Prints (1) seconds per SWD of one image pair, every patch and 512 directions, at 250 px and at
the cpu profile's size, next to the earlier 128-random-patch default and its floor; (2) the
spread of the every-patch SWD over direction seeds; (3) the calibration table of
:func:`mil_core.calibration.calibration_table` (one row per image × size) and its summary.
Needs ``../shared/data/published-samples`` (or ``$MIL_PUBLISHED_SAMPLES``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from mil_core import calibration as C
from mil_core.metrics import swd
from mil_core.profiles import get_profile
from mil_core.runtime import set_threads


def timed(fn, repeat: int = 3) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


def timing(sizes: list[int], seeds: int) -> None:
    d = C.load_published(0)
    print("1. Seconds per SWD of one image pair (published index 0 vs its SinGAN sample), "
          "512 directions; best of 3")
    for size in sizes:
        real = C.resize_long_side(d["real"], size)
        fake = C.resize_long_side(d["SinGAN"], size)
        for mode in ("all", 128):
            wall, cpu = timed(lambda: swd(real, fake, patches_per_image=mode))
            n = swd(real, fake, patches_per_image=mode)["set_sizes"]
            print(f"   {tuple(real.shape[-2:])}  patches={mode!s:>4}  descriptors per set "
                  f"{sum(a for a, _ in n):>6}  wall {wall:.3f} s  cpu {cpu:.3f} s")
        copy_all = swd(real, real.clone())["mean"]
        copy_128 = swd(real, real.clone(), patches_per_image=128)["mean"]
        print(f"   identical copy at {size} px: every patch {copy_all:.1f}, 128 random patches "
              f"{copy_128:.1f} (×1e3)")
    print(f"\n2. Spread over {seeds} direction seeds (every patch, 512 directions), index 0")
    for size in sizes:
        real = C.resize_long_side(d["real"], size)
        for name, fake in (("mirror", real.flip(-1)),
                           ("SinGAN", C.resize_long_side(d["SinGAN"], size))):
            v = [swd(real, fake, generator=torch.Generator().manual_seed(s))["mean"]
                 for s in range(seeds)]
            print(f"   {size} px {name:>7}: mean {np.mean(v):.2f}  std {np.std(v, ddof=1):.2f}  "
                  f"({np.std(v, ddof=1) / np.mean(v):.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=25, help="first N mapped images")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="long sides, px (default: every profile's max_size)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the spread")
    ap.add_argument("--timing", action="store_true", help="speed and seed spread only")
    args = ap.parse_args()
    set_threads(args.threads)
    if C.published_samples_dir() is None:
        raise SystemExit("error: the published samples were not found (../shared/data/"
                         f"published-samples or ${C.PUBLISHED_SAMPLES_ENV}).")
    sizes = args.sizes or [get_profile(p).image.max_size for p in ("paper", "cpu", "smoke")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), sizes {sizes}\n")
    timing(sizes, args.seeds)
    if args.timing:
        return
    names = [r["index"] for r in C.published_mapping()][: args.n]
    start = time.perf_counter()
    table = C.calibration_table(names, sizes)
    took = time.perf_counter() - start
    pd.set_option("display.width", 160, "display.max_rows", 500)
    print(f"\n3. Calibration table, SWD ×1e3, every patch ({len(names)} images, {took:.0f} s)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("\nSummary (means over images; ConSinGAN<SinGAN: number of images)")
    print(C.calibration_summary(table).to_string(float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
