"""Cost of MIL's hyper-GAN: grouped convolutions, cost per image against SinGAN, head sizes.

    .venv/bin/python benchmarks/bench_hypergan.py [--only grouped|cost|heads] [--quick]
                                                  [--threads 2] [--profile cpu]

Three sections, each printing a markdown table (all ratios are measured in this one run):

``grouped`` — every image of a batch has its own generated primary net (5 convs 3×3, 64
channels, MIL's). :func:`primary_forward` runs a batch as one grouped convolution
(``groups=B``), :func:`primary_forward_loop` one image at a time. Forward + backward (loss =
output sum, gradients into the weights), batch 1–16, at the finest-scale sizes of the ``cpu``
pyramid (48×64) and of a 2× larger one (96×128), inputs padded by 5 px; median of several
repeats after warm-up calls. REFERENCE §4: on a 2-core CPU grouped and loop are about even; on a
GPU the grouped form wins.

``cost`` — minutes per image of dataset training (one hyper-GAN on N images, batch B) against N
independent SinGANs with the same scales (the MIL pyramid), the same primary width (no channel
doubling) and the same iterations per image: each SinGAN trains T iterations per scale (3 D +
3 G steps, the official code; also 1 + 1), the hyper-GAN T·N/B steps per scale, so every image
is in T batches. Nothing is trained to the end: one SinGAN's seconds per iteration and the
hyper-GAN's seconds per step (median within a scale) are measured on short runs and the totals
are *extrapolated*. The paper's rule (REFERENCE §4) is priced the same way: Places-50 = 4000
steps/scale at batch 16 for 50 images vs 50 SinGANs × 2000 iterations/scale (paper: 60 vs 5
min/image, 12×), and 5000 images at 150k steps/scale (paper: 10 GPU-days vs ~200, 20×).

``heads`` — the projection heads, the paper's stated main limitation (REFERENCE §4): one
``Linear(embed, numel)`` per generated tensor, 114,307 numbers × 513 = 58.6 M parameters per
scale of G at 64 channels and embedding 512. Counts for G per scale, the critic's one head set,
all scales, and fp32 bytes for parameters + gradients + Adam's two states; then the measured
peak memory of one forward + backward (then one Adam step) of one scale's G head at batch 16,
each in a fresh process (CPU: increase of the peak RSS, ``VmHWM`` — ``ru_maxrss`` where there
is no /proc, as Linux carries the parent's ``ru_maxrss`` into a child; CUDA:
``torch.cuda.max_memory_allocated``). Also for
the ``cpu`` (16 channels, embed 64) and ``smoke`` (8, 16) profiles.

Images: the bundled photos (at most 11); more are made from them with flips and a centre crop
(original, left-right, up-down, both, central 80 %), so up to 55 distinct images.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from mil_core.data import load_collection
from mil_core.models import HyperGANConfig, SinGANConfig, train_singan
from mil_core.models.hypergan import canonical_shapes
from mil_core.models.hypergan_train import train_hypergan
from mil_core.models.hypernet import (PrimarySpec, ProjectionHeads, primary_forward,
                                      primary_forward_loop)
from mil_core.profiles import get_profile
from mil_core.runtime import set_threads

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
MB = 2 ** 20


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeat: int, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_images(n: int) -> list[torch.Tensor]:
    """``n`` distinct (3, H, W) images: the bundled photos, then flipped / cropped copies."""
    base = [img for _, img in load_collection("bundled", limit=min(n, 11))]
    variants = [lambda x: x, lambda x: torch.flip(x, [-1]), lambda x: torch.flip(x, [-2]),
                lambda x: torch.flip(x, [-2, -1]),
                lambda x: x[:, x.shape[1] // 10: x.shape[1] * 9 // 10,
                            x.shape[2] // 10: x.shape[2] * 9 // 10]]
    out = [v(img).contiguous() for v in variants for img in base][:n]
    if len(out) < n:
        raise SystemExit(f"at most {len(variants) * len(base)} distinct images, asked for {n}")
    return out


# --- 1. grouped convolution vs per-image loop -----------------------------------------------
def bench_grouped(quick: bool) -> None:
    spec = PrimarySpec()                                             # 64 channels, 5 convs
    sizes = [(48, 64)] if quick else [(48, 64), (96, 128)]
    batches = [1, 4, 16] if quick else [1, 2, 4, 8, 16]
    repeat = 2 if quick else 5
    print("\n## 1. Primary nets: grouped convolution vs per-image loop (forward + backward)\n")
    print(f"MIL generator primary net ({spec.channels} channels, {spec.n_layers} convs "
          f"{spec.kernel}×{spec.kernel}, {spec.numel():,} weights per image); median of {repeat} "
          "after 2 warm-ups.\n")
    print("| output H×W | input H×W | batch | grouped ms | loop ms | loop / grouped |")
    print("|---|---|---:|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    for h, w in sizes:
        hi, wi = h + 2 * spec.pad, w + 2 * spec.pad
        for b in batches:
            x = torch.randn(b, spec.in_ch, hi, wi, generator=gen).to(DEV)
            weights = []
            for layer, (o, i) in enumerate(spec.layer_shapes):
                scale = spec.gain(layer) / (i * spec.kernel ** 2) ** 0.5
                wt = torch.randn(b, o, i, spec.kernel, spec.kernel, generator=gen) * scale
                weights.append((wt.to(DEV).requires_grad_(), torch.zeros(b, o, device=DEV,
                                                                          requires_grad=True)))

            def step(fn):
                for wt, bs in weights:
                    wt.grad = bs.grad = None
                fn(x, weights, spec).sum().backward()

            t_g = median_seconds(lambda: step(primary_forward), repeat)
            t_l = median_seconds(lambda: step(primary_forward_loop), repeat)
            print(f"| {h}×{w} | {hi}×{wi} | {b} | {t_g * 1e3:.1f} | {t_l * 1e3:.1f} | "
                  f"{t_l / t_g:.2f} |", flush=True)


# --- 2. cost per image: dataset training vs N SinGANs --------------------------------------
def mil_step_times(images, cfg: HyperGANConfig) -> tuple[list[float], list[float]]:
    """Median seconds per step of each scale, and each scale's one-off cost (σ_n over the data
    set, first-step warm-up), from a short ``train_hypergan`` run."""
    stamps: list[tuple[int, float]] = []
    model = train_hypergan(images, cfg, seed=0, device=DEV, show_progress=False,
                           step_callback=lambda m, s: stamps.append((m.n_trained,
                                                                     time.perf_counter())))
    steps, extra = [], []
    for n, total in enumerate(model.timings["seconds_per_scale"]):
        ts = [t for s, t in stamps if s == n]
        step = statistics.median(b - a for a, b in zip(ts, ts[1:]))
        steps.append(step)
        extra.append(max(0.0, total - cfg.iters_per_scale * step))
    return steps, extra


def singan_iter_times(image, cfg: HyperGANConfig, iters: int, steps: int) -> list[float]:
    """Seconds per iteration of each scale of one SinGAN on the MIL pyramid and width."""
    scfg = SinGANConfig(pyramid=cfg.pyramid, channels=cfg.channels, max_channels=cfg.channels,
                        iters_per_scale=iters, steps_d=steps, steps_g=steps)
    model = train_singan(image, scfg, seed=0, device=DEV, show_progress=False)
    return [s / iters for s in model.timings["seconds_per_scale"]]


def bench_cost(quick: bool, profile: str) -> None:
    prof = get_profile(profile)
    batch, T = prof.gan.batch_size, prof.gan.iters_per_scale
    ns = [4, 16, 50]
    n_meas, i_meas, t_meas = (4, 3, 3) if quick else (max(ns), 25, 30)
    cfg = HyperGANConfig.from_profile(profile, "dataset", batch_size=batch, iters_per_scale=i_meas)
    cfg16 = HyperGANConfig.from_profile(profile, "dataset", batch_size=16, iters_per_scale=i_meas)
    images = make_images(max(n_meas, 16))
    t0 = time.perf_counter()
    mil, mil_extra = mil_step_times(images[:n_meas], cfg)
    mil16, mil16_extra = mil_step_times(images[:16], cfg16)
    sg3 = singan_iter_times(images[0], cfg, t_meas, 3)
    sg1 = singan_iter_times(images[0], cfg, t_meas, 1)
    shapes = canonical_shapes(cfg.pyramid)
    print(f"\n## 2. Cost per image: dataset training vs N independent SinGANs "
          f"(profile {profile})\n")
    print(f"{len(shapes)} scales {shapes[0][0]}×{shapes[0][1]} … {shapes[-1][0]}×{shapes[-1][1]},"
          f" {cfg.channels} channels, encoder {cfg.backbone} (embed {cfg.embed_dim}, input "
          f"{cfg.embed_size}²). Measured on short runs ({i_meas} hyper-GAN steps/scale on "
          f"{n_meas} images; SinGAN {t_meas} iterations/scale on one image) in "
          f"{time.perf_counter() - t0:.0f} s.\n")
    print(f"| scale | H×W | MIL s/step (batch {batch}) | MIL s/step (batch 16) | "
          "SinGAN s/iter (3+3) | SinGAN s/iter (1+1) |")
    print("|---:|---|---:|---:|---:|---:|")
    for s, (h, w) in enumerate(shapes):
        print(f"| {s} | {h}×{w} | {mil[s]:.3f} | {mil16[s]:.3f} | {sg3[s]:.3f} | {sg1[s]:.3f} |")

    def mil_total(step, extra, steps_per_scale, n, n_measured):   # seconds
        return steps_per_scale * sum(step) + sum(extra) * n / n_measured

    print(f"\nExtrapolated from the measured per-step times: SinGAN T = {T} iterations/scale "
          f"per image; dataset training T·N/B steps/scale at batch B = {batch}, so every image "
          f"is in {T} batches per scale.\n")
    print("| N | MIL steps/scale | MIL min total | MIL min/image | SinGAN 3+3 min/image | "
          "SinGAN/MIL (3+3) | SinGAN 1+1 min/image | SinGAN/MIL (1+1) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        m = mil_total(mil, mil_extra, T * n / batch, n, n_meas)
        s3, s1 = n * T * sum(sg3), n * T * sum(sg1)
        print(f"| {n} | {T * n / batch:,.0f} | {m / 60:.2f} | {m / 60 / n:.3f} | "
              f"{s3 / 60 / n:.3f} | {s3 / m:.1f}× | {s1 / 60 / n:.3f} | {s1 / m:.1f}× |")

    print("\nThe paper's rule (REFERENCE §4), priced with the per-step times above (batch 16, "
          "SinGAN 3+3):\n")
    print("| setting | MIL steps/scale | MIL min/image | SinGAN min/image | SinGAN/MIL | "
          "paper |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, steps, claim in [("Places-50", 50, 4000, "12× (60 vs 5 min/image)"),
                                  ("5000 images", 5000, 150_000, "20× (200 vs 10 GPU-days)")]:
        m = mil_total(mil16, mil16_extra, steps, n, 16)
        s3 = n * 2000 * sum(sg3)
        print(f"| {name}: MIL {steps:,} steps × batch 16 vs {n} SinGANs × 2000 it | {steps:,} "
              f"| {m / 60 / n:.3f} | {s3 / 60 / n:.3f} | {s3 / m:.1f}× | {claim} |")


# --- 3. projection heads: parameters and memory ---------------------------------------------
HEAD_CONFIGS = [("paper", 64, 512, 7), ("cpu", 16, 64, 5), ("smoke", 8, 16, 3)]


def head_params(channels: int, embed: int, out_ch: int) -> int:
    """Parameters of one scale's head set: every generated number needs embed + 1 of them."""
    return PrimarySpec(channels=channels, out_ch=out_ch).numel() * (embed + 1)


def child_heads(channels: int, embed: int, batch: int) -> dict[str, float]:
    """Run in a fresh process: peak memory of one forward + backward of one scale's G head."""
    def peak() -> float:
        if DEV.type == "cuda":
            return torch.cuda.max_memory_allocated() / MB
        try:        # VmHWM: ru_maxrss can carry the parent's peak across fork + exec on Linux
            with open("/proc/self/status") as f:
                return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # KiB (Linux)
    e = torch.randn(batch, embed, device=DEV)
    warm = torch.zeros(8, device=DEV, requires_grad=True)       # load Adam's kernels first
    warm.sum().backward()
    torch.optim.Adam([warm]).step()
    sync()
    base = peak()
    heads = ProjectionHeads(PrimarySpec(channels=channels), embed).to(DEV)
    built = peak()
    loss = sum(w.sum() + b.sum() for w, b in heads(e))
    loss.backward()
    sync()
    fwd_bwd = peak()
    torch.optim.Adam(heads.parameters()).step()                  # + Adam's two states
    sync()
    return {"build_mb": built - base, "fwd_bwd_mb": fwd_bwd - base, "adam_mb": peak() - base}


def bench_heads(threads: int) -> None:
    print("\n## 3. Projection heads: parameters and memory\n")
    print("One scale's G head set: (embed + 1) × numbers of one primary net; the critic has one "
          "head set for all scales (REFERENCE §4). Bytes in fp32; training state = parameters "
          "+ gradients + Adam's 2 states = 16 B per parameter.\n")
    print("| profile | channels | embed | scales | G numbers/net | G head params/scale | D head "
          "params | G all scales | G + D | fp32 params | train state, all trainable | "
          "train state as trained* |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, ch, emb, scales in HEAD_CONFIGS:
        g, d = head_params(ch, emb, 3), head_params(ch, emb, 1)
        total = scales * g + d
        as_trained = 4 * total + 12 * (g + d)          # frozen heads: weights only
        print(f"| {name} | {ch} | {emb} | {scales} | {PrimarySpec(channels=ch).numel():,} | "
              f"{g:,} | {d:,} | {scales * g / 1e6:.1f} M | {total / 1e6:.1f} M "
              f"| {4 * total / MB:,.0f} MiB | {16 * total / MB:,.0f} MiB | "
              f"{as_trained / MB:,.0f} MiB |")
    print("\n*at the finest scale: all heads stored, only the current G head and the D heads "
          "with gradients and Adam states (earlier heads are frozen); encoders not counted.\n")
    where = "CUDA max_memory_allocated" if DEV.type == "cuda" else "CPU peak-RSS increase"
    print(f"Measured ({where}, fresh process each): one scale's G head, batch 16.\n")
    print("| profile | G head params | params MiB | expected params + grads MiB | measured "
          "after build MiB | measured peak fwd + bwd MiB | measured peak + Adam step MiB "
          "(expected 16 B/param) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ch, emb, _ in HEAD_CONFIGS:
        arg = json.dumps({"channels": ch, "embed": emb, "batch": 16, "threads": threads})
        out = subprocess.run([sys.executable, __file__, "--_child", arg], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        g = head_params(ch, emb, 3)
        print(f"| {name} | {g:,} | {4 * g / MB:,.1f} | {8 * g / MB:,.1f} | "
              f"{r['build_mb']:,.1f} | {r['fwd_bwd_mb']:,.1f} | {r['adam_mb']:,.1f} "
              f"({16 * g / MB:,.1f}) |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("grouped", "cost", "heads"), default=None)
    ap.add_argument("--quick", action="store_true", help="fewer sizes, repeats and steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", default="cpu", help="profile of the cost section")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child is not None:                          # heads memory, in a fresh process
        spec = json.loads(args._child)
        set_threads(spec["threads"])
        print(json.dumps(child_heads(spec["channels"], spec["embed"], spec["batch"])))
        return
    set_threads(args.threads)
    torch.set_flush_denormal(True)
    gpu = f" ({torch.cuda.get_device_name()})" if DEV.type == "cuda" else ""
    print(f"# bench_hypergan{' --quick' if args.quick else ''}\n\nmachine: "
          f"{platform.processor() or platform.machine()} / torch {torch.__version__} / device "
          f"{DEV}{gpu} / threads {args.threads}")
    t0 = time.perf_counter()
    if args.only in (None, "grouped"):
        bench_grouped(args.quick)
    if args.only in (None, "cost"):
        bench_cost(args.quick, args.profile)
    if args.only in (None, "heads"):
        bench_heads(args.threads)
    print(f"\ntotal time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
