"""The quality–cost frontier: patch and layout quality against CPU minutes per image.

    .venv/bin/python benchmarks/bench_frontier.py --method singan --size 128 --iters 300
    .venv/bin/python benchmarks/bench_frontier.py --method consingan --size 128 --iters 300
    .venv/bin/python benchmarks/bench_frontier.py --method hpvaegan --size 128 --iters 1200
    .venv/bin/python benchmarks/bench_frontier.py --method mil --size 128 --iters 600 \\
        --train-images 49
    .venv/bin/python benchmarks/bench_frontier.py --show          # the table so far

One invocation is one *piece*: one method at one budget, trained on the Places-50 images
(``../shared/data/places50``, centre-cropped to MIL's 0.75 aspect so that every method sees the
same real images), measured on the first ``--images`` of them, and appended atomically to
``--out`` (default ``benchmarks/results/frontier.csv``) — run pieces in the background, an hour
or two each at most, and commit the table as each lands.

Each row is one (run, image): the budget (size, iterations per scale, D/G steps, channels,
training images), the training minutes per image, the 3×3 convolution peak measured at the start
of the run (:func:`mil_core.roofline.conv_peak` at the finest size, GFLOP/s) and the minutes
normalised by it (``norm min/image`` = minutes × peak / 100 GFLOP/s: minutes on a machine whose
convolutions run at 100 GFLOP/s), so pieces run while the machine drifts stay comparable. Quality
on two axes, both the mean over ``--samples`` samples of each sample against its real image:

- ``SWD ×1e3`` — patches (:func:`mil_core.metrics.swd_per_sample`, every 7×7 patch);
- ``layout`` — the coarse arrangement (:func:`mil_core.metrics.layout_per_sample`, 6×8
  thumbnails), which patch statistics cannot see;

plus ``diversity``, and the published SinGAN and ConSinGAN samples of the same image measured
the same way at the same size (``pub SinGAN SWD`` …): the papers' models on our rulers.

The MIL hyper-GAN trains once on ``--train-images`` images (cost per image falls as 1/N at fixed
steps) and is measured on the same first ``--images`` images as the baselines.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from mil_core import calibration as C
from mil_core import data as D
from mil_core.frontier import normalised_minutes, save_samples
from mil_core import metrics as M
from mil_core.models import (ConSinGANConfig, HPVAEGANConfig, HyperGANConfig, SinGANConfig,
                             train_consingan, train_hpvaegan, train_singan)
from mil_core.models.hypergan import canonical_shapes
from mil_core.models.hypergan_train import train_hypergan
from mil_core.profiles import get_profile
from mil_core.roofline import conv_peak
from mil_core.runtime import set_threads
from results_table import append_rows, show

OUT = Path(__file__).resolve().parent / "results" / "frontier.csv"


def samples_path(row: dict, folder: Path) -> Path:
    """Where a piece's kept samples go, named after its budget."""
    name = f"{row['method']}_{row['size']}px_{row['iters/scale']}it_{row['train images']}img"
    if row["variant"] != "default":
        name += "_" + row["variant"].replace("=", "-").replace(" ", "_")
    return folder / f"{name}.pt"


def parse_sets(pairs: list[str], ap: argparse.ArgumentParser) -> dict:
    """``["noise_amp_factor=0.1", ...]`` → ``{"noise_amp_factor": 0.1}`` with the field's type."""
    fields = {f.name: f.type for f in dataclasses.fields(HyperGANConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            ap.error(f"--mil-set {pair!r}: expected FIELD=VALUE with FIELD one of "
                     f"{', '.join(sorted(fields))}")
        kind = fields[key] if isinstance(fields[key], str) else fields[key].__name__
        out[key] = {"int": int, "float": float}.get(kind, str)(value)
    return out


def quality(real: torch.Tensor, samples: torch.Tensor, name: str, seed: int) -> dict:
    """Patch SWD, layout and diversity of ``samples (N, 3, H, W)`` against ``real (3, H, W)``,
    and the published samples of image ``name`` on the same two rulers."""
    gen = torch.Generator().manual_seed(seed)
    row = {"SWD ×1e3": M.swd_per_sample(real, samples, generator=gen)["mean"],
           "layout": M.layout_per_sample(real, samples)["mean"],
           "diversity": M.diversity(samples, real) if len(samples) > 1 else float("nan")}
    for method, img in C.fitted_published(name, real).items():
        gen = torch.Generator().manual_seed(seed)
        row[f"pub {method} SWD"] = M.swd_per_sample(real, img[None], generator=gen)["mean"]
        row[f"pub {method} layout"] = M.layout_per_sample(real, img[None])["mean"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=("singan", "consingan", "hpvaegan", "mil"))
    ap.add_argument("--profile", default="cpu", help="the profile the budget starts from")
    ap.add_argument("--size", type=int, default=128, help="long side of the finest scale, px")
    ap.add_argument("--iters", type=int, default=None, help="iterations (steps) per scale")
    ap.add_argument("--steps", type=int, default=None, help="D and G steps per iteration")
    ap.add_argument("--channels", type=int, default=None, help="primary / SinGAN channels")
    ap.add_argument("--n-scales", type=int, default=None, help="MIL scales")
    ap.add_argument("--images", type=int, default=3, help="images measured (first N)")
    ap.add_argument("--train-images", type=int, default=49, help="MIL: images trained on")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--mil-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="MIL: a HyperGANConfig field for an ablation, e.g. noise_amp_factor=0.1 "
                         "(repeatable; recorded in the 'variant' column)")
    ap.add_argument("--save-samples", type=int, default=0, metavar="K",
                    help="keep K samples per image (uint8) beside the table, in samples/")
    ap.add_argument("--show", action="store_true", help="print the table and exit")
    args = ap.parse_args()
    if args.show:
        show(args.out)
        return
    if args.method is None:
        ap.error("--method is required (or --show)")
    places = D.places50_dir()
    if places is None:
        raise SystemExit("error: Places-50 not found (../shared/data/places50 or $MIL_PLACES50)")
    threads = set_threads(args.threads)
    hpvae = args.method == "hpvaegan"
    changes = {"image.max_size": args.size}
    if hpvae:
        changes["image.hpvae_max_size"] = args.size
    if args.iters is not None:
        changes[{"mil": "gan.dataset_iters_per_scale", "hpvaegan": "gan.hpvae_iters_per_scale"}
                .get(args.method, "gan.iters_per_scale")] = args.iters
    if args.steps is not None:
        changes.update({"gan.steps_d": args.steps, "gan.steps_g": args.steps})
    if args.steps is not None and hpvae:
        ap.error("--steps: HP-VAE-GAN takes one G and one D step per iteration")
    if args.channels is not None:
        changes[{"mil": "gan.mil_channels", "hpvaegan": "gan.hpvae_channels"}
                .get(args.method, "gan.channels")] = args.channels
    if args.n_scales is not None:
        changes["image.n_scales"] = args.n_scales
    prof = get_profile(args.profile, **changes)
    mil_cfg = HyperGANConfig.from_profile(prof, "dataset", **parse_sets(args.mil_set, ap))
    files = D.list_images(places)
    n_train = args.train_images if args.method == "mil" else args.images
    items = [(p.stem, D.pyramid.center_crop_to_aspect(D.load_image(p), mil_cfg.pyramid.aspect))
             for p in files[:max(n_train, args.images)]]
    h, w = canonical_shapes(mil_cfg.pyramid)[-1]
    width = {"mil": prof.gan.mil_channels, "hpvaegan": prof.gan.hpvae_channels}.get(
        args.method, prof.gan.channels)
    peak = conv_peak(1, width, h, w)
    print(f"{args.method} at {args.size} px, {threads} thread(s); conv peak {peak:.1f} GFLOP/s",
          flush=True)
    common = {"method": args.method, "variant": " ".join(args.mil_set) or "default",
              "size": args.size, "profile": prof.name,
              "conv peak GFLOP/s": peak, "threads": threads, "machine": platform.machine(),
              "cpu cores": os.cpu_count(), "date": dt.date.today().isoformat(), "seed": args.seed}
    rows, kept = [], {}
    if args.method == "mil":
        cfg = mil_cfg
        start = time.perf_counter()
        model = train_hypergan([img for _, img in items[:n_train]], cfg, seed=args.seed,
                               show_progress=False)
        minutes = (time.perf_counter() - start) / 60 / n_train
        evaluated = items[:args.images]
        reals = model.pyramid([img for _, img in evaluated])[-1]
        fakes = model.generate([img for _, img in evaluated], args.samples,
                               generator=torch.Generator().manual_seed(args.seed))
        budget = {"iters/scale": cfg.iters_per_scale, "steps D/G": "1/1",
                  "channels": cfg.channels, "scales": cfg.pyramid.n_scales,
                  "train images": n_train, "batch": cfg.batch_size, "embed dim": cfg.embed_dim}
        for k, (name, _) in enumerate(evaluated):
            rows.append({**common, **budget, "image": name, "H×W": f"{h}×{w}",
                         "min/image": minutes, **quality(reals[k], fakes[k], name, args.seed)})
            kept[name] = (reals[k], fakes[k, :args.save_samples])
    else:
        for name, img in items[:args.images]:
            if args.method == "singan":
                cfg = SinGANConfig.from_profile(prof)
                train, iters = train_singan, cfg.iters_per_scale
            elif hpvae:
                cfg = HPVAEGANConfig.from_profile(prof)
                train, iters = train_hpvaegan, cfg.iters_per_scale
            else:
                cfg = ConSinGANConfig.from_profile(prof)
                train, iters = train_consingan, cfg.iters_per_stage
            start = time.perf_counter()
            model = train(img, cfg, seed=args.seed, show_progress=False)
            minutes = (time.perf_counter() - start) / 60
            real = model.reals[-1]
            fakes = model.sample(args.samples, generator=torch.Generator().manual_seed(args.seed))
            steps = "1/1" if hpvae else f"{cfg.steps_d}/{cfg.steps_g}"
            rows.append({**common, "iters/scale": iters, "steps D/G": steps,
                         "channels": cfg.channels, "scales": len(model.shapes),
                         "train images": 1, "batch": 1, "image": name,
                         "H×W": "×".join(map(str, real.shape[-2:])), "min/image": minutes,
                         **quality(real, fakes, name, args.seed)})
            print(f"  {name}: {minutes:.2f} min, SWD {rows[-1]['SWD ×1e3']:.1f}, layout "
                  f"{rows[-1]['layout']:.3f}", flush=True)
            kept[name] = (real, fakes[:args.save_samples])
    for r in rows:
        r["norm min/image"] = normalised_minutes(r["min/image"], r["conv peak GFLOP/s"])
    table = append_rows(rows, args.out)
    if args.save_samples:
        budget = {k: rows[0][k] for k in ("method", "variant", "size", "iters/scale", "channels",
                                          "train images")}
        path = save_samples(kept, budget, samples_path(rows[0], args.out.parent / "samples"))
        print("samples kept in", path)
    print(pd.DataFrame(rows).drop(columns=["machine", "date", "profile"]).to_string(index=False))
    print(f"\n{len(rows)} row(s) appended to {args.out} ({len(table)} in all)")


if __name__ == "__main__":
    main()
