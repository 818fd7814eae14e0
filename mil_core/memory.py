"""Peak memory of a hyper-GAN: per training step and at inference (MIL Appendix B.5, Sec. 6).

MIL reports 11 GB of GPU memory to train on one image, 22 GB on a data set and 5 GB at test time
(256 px, REFERENCE §4), and names the projection heads — 58.6 M parameters per scale — as the
cause. :func:`peak_memory` measures the same three numbers for any :class:`HyperGANConfig`:

- on a CPU, the *process* peak RSS of a fresh Python process that builds the model and runs the
  phase, so that nothing measured before leaks in. On Linux the peak is reset after the imports
  (``/proc/self/clear_refs``) and read from ``VmHWM``, so the transient peak of importing torch
  does not hide a smaller phase; elsewhere it is the lifetime ``ru_maxrss``. A ``"baseline"``
  phase (torch and the images only) is the floor to subtract;
- on a GPU, ``torch.cuda.max_memory_allocated`` around the phase, in the same kind of process.

Phases: ``"train"`` runs :func:`train_hypergan` for ``iters`` steps per scale at the config's
batch (the peak is at the finest scale: every head exists and the newest has Adam state);
``"infer"`` builds the finished generator (with a small shared critic in place of the
hyper-critic, which test time does not need) and draws ``n_samples`` per image for
``cfg.batch_size`` images without gradients. Random images of the pyramid's size are used: memory does not depend
on their content.

:func:`training_state_bytes` is the closed-form part: parameters, gradients and Adam's two moments
of what one training step holds, 4 bytes each.

    .venv/bin/python -m mil_core.memory --profile cpu --phase train     # one measurement
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .models.hypergan import HyperGAN, HyperGANConfig, canonical_shapes
from .models.hypernet import ProjectionHeads
from .runtime import set_threads

__all__ = ["PHASES", "peak_memory", "training_state_bytes", "head_parameter_counts"]

PHASES = ("baseline", "train", "infer")
_MB = 1024.0 ** 2


def head_parameter_counts(cfg: HyperGANConfig) -> dict[str, int]:
    """Closed-form parameter counts of ``cfg``'s model: one generator head (per scale), all
    generator heads, the hyper-critic's heads, and one encoder."""
    n = len(canonical_shapes(cfg.pyramid))
    g = ProjectionHeads.count(cfg.g_spec, cfg.embed_dim, cfg.head_layers, cfg.head_rank)
    d = (ProjectionHeads.count(cfg.d_spec, cfg.embed_dim, cfg.head_layers, cfg.head_rank)
         if cfg.discriminator == "hyper" else 0)
    with torch.device("meta"):
        enc = sum(p.numel() for p in HyperGAN(cfg, torch.zeros(1, 3, 1, 1)).G.encoder.parameters())
    return {"G head per scale": g, "G heads": g * n, "D heads": d, "encoder": enc}


def training_state_bytes(cfg: HyperGANConfig) -> dict[str, float]:
    """MB held by the parameters of the finished model, plus the gradients and Adam moments of
    what the finest scale's step trains (the newest G head, G's encoder unless frozen, the
    critic); activations are not included."""
    c = head_parameter_counts(cfg)
    critic_encoder = c["encoder"] if cfg.discriminator == "hyper" else 0
    params = c["G heads"] + c["encoder"] + c["D heads"] + critic_encoder
    trained = (c["G head per scale"] + (0 if cfg.encoder_frozen else c["encoder"])
               + c["D heads"] + critic_encoder)
    return {"parameters MB": 4 * params / _MB, "grad + Adam MB": 12 * trained / _MB}


def _images(cfg: HyperGANConfig, n: int) -> list[torch.Tensor]:
    h, w = canonical_shapes(cfg.pyramid)[-1]
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, h, w, generator=g) * 2 - 1 for _ in range(n)]


def _status_mb(field: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of this process from /proc (Linux), in MB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0                 # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0: ``5 > /proc/self/clear_refs``), so that the
    transient peak of importing torch does not hide a smaller phase; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _run_phase(cfg: HyperGANConfig, phase: str, device: str, iters: int, n_samples: int,
               n_images: int) -> dict[str, Any]:
    """The body of the measuring process; returns its peak."""
    from .models.hypergan_train import train_hypergan
    dev = torch.device(device)
    imgs = _images(cfg, max(n_images, cfg.batch_size))
    reset = _reset_peak()                       # after imports and images: the phase's own peak
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if phase == "train":
        run = HyperGANConfig(**{**cfg.to_dict(), "iters_per_scale": iters,
                                "checkpoint_every": 10 ** 9})
        train_hypergan(imgs, run, device=dev, show_progress=False)
    elif phase == "infer":                   # the generator only: no critic at test time
        model = HyperGAN(HyperGANConfig(**{**cfg.to_dict(), "discriminator": "shared",
                                           "extractor": "separate"}))
        for _ in range(model.n_scales):
            model.G.add_head()
        model.noise_amps = [1.0] * model.n_scales       # finished (weights do not matter here)
        model.to(dev).eval()
        out = model.generate(imgs[:cfg.batch_size], n_samples)
        assert out.shape[:2] == (cfg.batch_size, n_samples)
    hwm = _status_mb("VmHWM") if reset else None
    if hwm is None:                             # no /proc: the lifetime peak, imports included
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm = peak / _MB if sys.platform == "darwin" else peak / 1024.0   # bytes vs KiB
    row: dict[str, Any] = {"phase": phase, "device": dev.type, "process peak MB": hwm,
                           "peak since imports": reset}
    if dev.type == "cuda":
        row["GPU peak MB"] = torch.cuda.max_memory_allocated(dev) / _MB
    return row


def peak_memory(cfg: HyperGANConfig, phase: str, *, device: str | torch.device = "cpu",
                iters: int = 2, n_samples: int = 4, n_images: int = 0, threads: int = 1,
                timeout: float = 1800.0) -> dict[str, Any]:
    """Peak memory of ``phase`` (``"baseline"``, ``"train"`` or ``"infer"``) for ``cfg``,
    measured in a fresh process (module docstring). Returns ``{"phase", "device",
    "process peak MB"[, "GPU peak MB"]}``; raises ConfigError for a bad phase and RuntimeError
    with the child's last output if the measurement fails."""
    if phase not in PHASES:
        raise ConfigError(f"peak_memory: phase must be one of {', '.join(PHASES)}, got {phase!r}")
    if not isinstance(cfg, HyperGANConfig):
        raise ConfigError(f"peak_memory: cfg must be a HyperGANConfig, got {type(cfg).__name__}")
    spec = {"config": cfg.to_dict(), "phase": phase, "device": str(torch.device(device)),
            "iters": int(iters), "n_samples": int(n_samples), "n_images": int(n_images)}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MIL_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "mil_core.memory", "--spec", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"peak_memory({phase!r}) failed (exit {proc.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", help="(internal) JSON of one measurement")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--phase", choices=PHASES, default="train")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    set_threads()                                   # MIL_THREADS, set by peak_memory
    if args.spec:
        s = json.loads(args.spec)
        print(json.dumps(_run_phase(HyperGANConfig(**s["config"]), s["phase"], s["device"],
                                    s["iters"], s["n_samples"], s["n_images"])))
        return 0
    cfg = HyperGANConfig.from_profile(args.profile, "dataset")
    print(json.dumps(peak_memory(cfg, args.phase, device=args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
