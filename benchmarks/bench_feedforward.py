"""Modelling an unseen image: one feed-forward pass of a hyper-GAN against fitting a SinGAN.

    .venv/bin/python benchmarks/bench_feedforward.py [--profile cpu] [--threads 1]
                                                     [--samples 10] [--singan-iters N]

MIL's feed-forward claim (Sec. 5.2): a trained hyper-GAN models a new image in one pass — embed
it, emit every scale's generator, sample — where a SinGAN has to be trained on it. Both at the
profile's sizes (the MIL pyramid of the ``cpu`` profile: 5 scales up to 48×64; the SinGAN on
the same image with the profile's steps and channels):

- feed-forward: ``model.generate(image, n)`` (embedding + weights + ``n`` samples), median of
  5 calls after 2 warm-up calls, on a hyper-GAN with every head in place. Its weights are as
  initialised: the time of a forward pass does not depend on how well the model was trained;
- SinGAN: one full ``train_singan`` run on the same image, then the same ``n`` samples.

Prints one markdown table with both times and their ratio, measured in this one run.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from mil_core.data import load_bundled
from mil_core.models import HyperGANConfig, SinGANConfig, train_singan
from mil_core.models.hypergan import HyperGAN
from mil_core.roofline import median_seconds
from mil_core.runtime import set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=10, help="samples drawn by both")
    ap.add_argument("--singan-iters", type=int, default=None,
                    help="SinGAN iterations per scale (default: the profile's)")
    args = ap.parse_args()
    threads = set_threads(args.threads)
    image = load_bundled("chelsea")

    torch.manual_seed(0)
    model = HyperGAN(HyperGANConfig.from_profile(args.profile, "dataset"))
    for _ in range(model.n_scales):
        model.G.add_head()
    model.noise_amps = [1.0] * model.n_scales
    model.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    ff = median_seconds(lambda: model.generate([image], args.samples, generator=gen), repeat=5)

    over = {} if args.singan_iters is None else {"iters_per_scale": args.singan_iters}
    cfg = SinGANConfig.from_profile(args.profile, **over)
    t0 = time.perf_counter()
    singan = train_singan(image, cfg, seed=0, show_progress=False)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        singan.sample(args.samples, generator=torch.Generator().manual_seed(0))
    fit += time.perf_counter() - t0

    print(f"{platform.machine()}, {threads} thread(s), torch {torch.__version__}, profile "
          f"{args.profile}; {args.samples} samples of 'chelsea'\n")
    print("| way to model an unseen image | seconds | ratio |")
    print("|---|---:|---:|")
    print(f"| hyper-GAN feed-forward (embed + weights + samples) | {ff:.3f} | 1 |")
    print(f"| SinGAN fit ({cfg.iters_per_scale} it/scale, {singan.n_scales} scales) + samples | "
          f"{fit:.1f} | {fit / ff:,.0f}× |")


if __name__ == "__main__":
    main()
