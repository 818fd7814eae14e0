"""Reconstruction per stage: SinGAN vs ConSinGAN on one image, at equal iterations and minutes.

    .venv/bin/python benchmarks/bench_consingan_vs_singan.py [--image chelsea|PATH] [--seed 0]
        [--threads 1] [--profile cpu] [--no-before] [--no-equal-minutes]

Trains, on one image at the profile's sizes (default ``cpu``):

1. SinGAN (``SinGANConfig.from_profile``);
2. ConSinGAN with the official lr 5e-4 ("before": what the cpu profile used until issue 10);
3. ConSinGAN as the profile configures it (``ConSinGANConfig.from_profile``: lr 2e-3);
4. ConSinGAN with its iterations per stage scaled so that it costs as many CPU minutes as run 1.

For each run it prints the reconstruction MSE at the end of every stage (mean of the last three
logged values, as trained), the MSE of ``reconstruct()`` at the finest scale (what a user gets:
SinGAN's BatchNorm then uses running statistics), minutes (CPU time of this process, which
with one thread is robust to other jobs on the machine, and wall time), SWD ×1e3 of 20 samples
against the image (``mil_core.metrics.swd``; noisy at ±15 %), and the smallest mean
|sample − reconstruction| of those samples, drawn with ``torch.Generator().manual_seed(seed)``:
near 0 means sampling with the training seed replays z* (issue 10 §2A).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from mil_core import data as D
from mil_core import metrics as M
from mil_core.models import ConSinGANConfig, SinGANConfig, train_consingan, train_singan
from mil_core.runtime import set_threads


def _run(name: str, image: torch.Tensor, cfg, train, seed: int) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    model = train(image, cfg, seed=seed, device="cpu", show_progress=False)
    cpu, wall = (time.process_time() - cpu) / 60, (time.perf_counter() - wall) / 60
    per_stage: dict[int, list[float]] = {}
    for row in model.history:
        per_stage.setdefault(row["scale"], []).append(row["rec_loss"])
    rec = model.reconstruct()
    fakes = model.sample(20, generator=torch.Generator().manual_seed(seed))
    return {"name": name, "cpu_min": cpu, "wall_min": wall,
            "stages": [sum(v[-3:]) / len(v[-3:]) for _, v in sorted(per_stage.items())],
            "final": F.mse_loss(rec[0], model.reals[-1]).item(),
            "swd": M.swd([model.reals[-1]], list(fakes),
                         generator=torch.Generator().manual_seed(seed))["mean"],
            "nearest": (fakes - rec).abs().mean(dim=(1, 2, 3)).min().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="chelsea", help="a bundled name or an image file")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-before", action="store_true", help="skip the lr 5e-4 ConSinGAN run")
    ap.add_argument("--no-equal-minutes", action="store_true",
                    help="skip the ConSinGAN run scaled to SinGAN's CPU minutes")
    args = ap.parse_args()
    set_threads(args.threads)
    try:
        image = D.load_bundled(args.image)
    except Exception:                                          # not a bundled name: a file
        image = D.load_image(args.image)
    s_cfg = SinGANConfig.from_profile(args.profile)
    c_cfg = ConSinGANConfig.from_profile(args.profile)
    print(f"torch {torch.__version__}, {args.threads} thread(s), profile {args.profile}, image "
          f"{args.image}, seed {args.seed}; {s_cfg.iters_per_scale} iterations per scale, "
          f"{s_cfg.steps_d} D + {s_cfg.steps_g} G steps\n", flush=True)

    runs = [_run("SinGAN", image, s_cfg, train_singan, args.seed)]
    if not args.no_before:
        before = ConSinGANConfig.from_profile(args.profile, lr=5e-4)
        runs.append(_run("ConSinGAN lr 5e-4", image, before, train_consingan, args.seed))
    runs.append(_run(f"ConSinGAN lr {c_cfg.lr:g}", image, c_cfg, train_consingan, args.seed))
    if not args.no_equal_minutes:
        iters = round(c_cfg.iters_per_stage * runs[0]["cpu_min"] / runs[-1]["cpu_min"])
        cfg = ConSinGANConfig.from_profile(args.profile, iters_per_stage=iters)
        runs.append(_run(f"ConSinGAN {iters} it", image, cfg, train_consingan, args.seed))

    print(f"{'run':<22}{'CPU min':>8}{'wall':>6}{'final rec':>11}{'SWD':>7}{'nearest':>9}   "
          f"rec MSE at the end of each stage (coarse → fine)")
    for r in runs:
        stages = " ".join(f"{v:.1e}" for v in r["stages"])
        print(f"{r['name']:<22}{r['cpu_min']:>8.2f}{r['wall_min']:>6.1f}{r['final']:>11.2e}"
              f"{r['swd']:>7.0f}{r['nearest']:>9.3f}   {stages}")


if __name__ == "__main__":
    main()
