"""eKLD evaluation speed: image pairs (x, x') per second, transform and forward cost separately.

    .venv/bin/python benchmarks/bench_ekld.py [--threads 2] [--quick] [--pairs 8192]

For each classifier (ResNet-20, GIT's K49 model, and the small CNN of the smoke profile; from
``mil_core.models.classifiers.make_classifier``), each nuisance transform (rot, bg, dil) and each batch size, it measures
on the 10,000 animal silhouettes (28×28):

- **transform**: ``NuisanceTransform.apply`` on the gathered pair images alone;
- **forward**: the classifier on already-transformed batches alone (eval mode, no_grad);
- **eKLD**: the whole :func:`mil_core.metrics.ekld` call (choice, transforms, both forwards, KL).

All rates are pairs per second, best of ``--repeat`` runs after a warm-up. It then projects the
time of the official protocol (49 classes × 40 images × 100 transforms, REFERENCE §6) and of each
profile's eKLD settings (``GitConfig.ekld_images_per_class`` × ``ekld_transforms``; 10 classes
for smoke/cpu, 49 for paper) from the eKLD rate at the best batch size.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from mil_core import data as D
from mil_core.metrics import ekld
from mil_core.profiles import get_profile
from mil_core.runtime import get_device, set_threads

N_CLASSES = 49   # K49's head; the output size barely changes the cost


# -----------------------------------------------------------------------------
# classifiers

def make_model(name: str, n_classes: int) -> tuple[nn.Module, str]:
    from mil_core.models.classifiers import make_classifier
    return make_classifier(name, n_classes), "mil_core"


# -----------------------------------------------------------------------------
# timing

def timed(fn: Callable[[], object], device: torch.device, repeat: int, warmup: bool = True
          ) -> float:
    """Best wall-clock seconds of ``repeat`` calls (after one warm-up call when ``warmup``)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    if warmup:
        fn()
        sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


# -----------------------------------------------------------------------------
# main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer pairs and batch sizes")
    ap.add_argument("--pairs", type=int, default=None, help="pairs per measurement (default "
                    "4000, quick 1200)")
    ap.add_argument("--batch-sizes", type=str, default=None, help="comma list (default "
                    "256,1024,4096; quick 256,1024)")
    ap.add_argument("--models", type=str, default="resnet20,smallcnn")
    ap.add_argument("--transforms", type=str, default="rot,bg,dil")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs, best kept (default 1)")
    args = ap.parse_args()
    set_threads(args.threads)
    device = get_device()
    pairs = args.pairs or (1200 if args.quick else 4000)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("256,1024" if args.quick
                                                         else "256,1024,4096")).split(",")]
    repeat = args.repeat
    models = args.models.split(",")
    transforms = args.transforms.split(",")

    animals = D.load_animal_silhouettes()
    n_cls = animals.n_classes
    # eKLD runs: 10 classes × k images × T transforms = pairs (k = 40 as the protocol, T to fit)
    k_img = 40
    T = max(1, pairs // (n_cls * k_img))
    pairs = n_cls * k_img * T
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(animals), generator=gen)[:n_cls * k_img]
    pair_imgs = animals.images[pick].repeat_interleave(T, dim=0).to(device)  # (pairs, 28, 28)

    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"### eKLD throughput — {platform.node() or 'machine'} ({cpu_name()}, "
          f"{os.cpu_count()} cores{gpu}), torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print(f"{pairs} pairs per measurement ({n_cls} animal classes × {k_img} images × {T} "
          f"transforms), best of {repeat}; rates in pairs/s. Classifier timings follow one "
          "small warm-up call per classifier; the machine may be shared, so compare rows of one "
          "run only.\n")

    # transform cost alone: independent of the classifier
    tfm_rate: dict[tuple[str, int], float] = {}
    transformed: dict[str, torch.Tensor] = {}
    for name in transforms:
        tfm = D.get_transform(name)
        params = tfm.sample_params(pairs, torch.Generator().manual_seed(1))
        for bs in batch_sizes:
            def run_tfm() -> list[torch.Tensor]:
                return [tfm.apply(D.to_float(pair_imgs[s:s + bs]),
                                  {k: v[s:s + bs] for k, v in params.items()})
                        for s in range(0, pairs, bs)]
            tfm_rate[name, bs] = pairs / timed(run_tfm, device, repeat)
        transformed[name] = torch.cat(run_tfm())                                  # (pairs, 1, H, W)

    rows, best_rate = [], {}
    for model_name in models:
        model, source = make_model(model_name, N_CLASSES)
        model = model.to(device).eval()
        n_par = sum(p.numel() for p in model.parameters())
        for name in transforms:   # warm-up: allocator, kernels, every transform's code path
            ekld(model, animals, name, images_per_class=2, n_transforms=2, device=device)
        fwd_rate: dict[int, float] = {}
        for bs in batch_sizes:
            xs = transformed[transforms[0]]
            def run_fwd() -> None:
                with torch.no_grad():
                    for s in range(0, pairs, bs):
                        model(xs[s:s + bs])
            fwd_rate[bs] = pairs / timed(run_fwd, device, repeat, warmup=False)
        for name in transforms:
            for bs in batch_sizes:
                def run_ekld() -> None:
                    ekld(model, animals, name, images_per_class=k_img, n_transforms=T,
                         batch_size=bs, device=device, generator=torch.Generator().manual_seed(2))
                rate = pairs / timed(run_ekld, device, repeat, warmup=False)
                best_rate[model_name, name] = max(best_rate.get((model_name, name), 0.0), rate)
                rows.append((f"{model_name} ({n_par / 1e3:.0f} k, {source})", name, bs,
                             tfm_rate[name, bs], fwd_rate[bs], rate))

    print("| classifier | transform | batch | transform only | forward only | eKLD end-to-end |"
          " eKLD ms / 1k pairs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, name, bs, t_rate, f_rate, e_rate in rows:
        print(f"| {label} | {name} | {bs} | {t_rate:,.0f} | {f_rate:,.0f} | {e_rate:,.0f} | "
              f"{1e6 / e_rate:,.0f} |")

    # projections from the best end-to-end rate of each (classifier, transform)
    protocols = [("official (49 × 40 × 100)", 49 * 40 * 100)]
    for prof_name in ("smoke", "cpu", "paper"):
        g = get_profile(prof_name).git
        n_c = 49 if prof_name == "paper" else 10
        n_pairs = n_c * g.ekld_images_per_class * g.ekld_transforms
        protocols.append((f"{prof_name} ({n_c} × {g.ekld_images_per_class} × "
                          f"{g.ekld_transforms})", n_pairs))
    print("\nProjected eKLD time per (classifier, transform) at the best batch size "
          "(pairs / best end-to-end rate):\n")
    keys = list(best_rate)
    print("| protocol | pairs | " + " | ".join(f"{m} {t}" for m, t in keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for label, n in protocols:
        print(f"| {label} | {n:,} | " + " | ".join(fmt_seconds(n / best_rate[k]) for k in keys)
              + " |")


if __name__ == "__main__":
    main()
