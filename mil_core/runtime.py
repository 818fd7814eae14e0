"""Runtime helpers: seeding, device and thread choice, progress bars, environment report.

Conventions (DEVELOPERS.md): the device is ``cuda`` when present, else ``mps``, else ``cpu``;
torch's thread count is always set explicitly (REFERENCE §7: on 2 cores, two processes with two
threads each run 2–10× slower than one thread each).
"""
from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar

import numpy as np
import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .profiles import Profile

__all__ = ["seed_everything", "get_rng_state", "set_rng_state", "get_device", "set_threads",
           "progress", "environment_report", "repo_root", "NotebookSetup", "notebook_setup",
           "machine_line", "eval_mode"]

T = TypeVar("T")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and CUDA).

    Returns a fresh CPU ``torch.Generator`` seeded with ``seed``: pass it explicitly to the
    samplers in ``mil_core`` so results do not depend on what else drew from the global RNG.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def get_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG state a training run depends on, for exact resume (see ``mil_core.checkpoint``)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`get_rng_state` returned (after a checkpoint round trip too)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None:
        if "generator" not in state:
            raise ConfigError("set_rng_state: a generator was passed but the state holds none")
        generator.set_state(state["generator"])


def get_device(prefer: str | None = None) -> torch.device:
    """``cuda`` when present, else ``mps``, else ``cpu``; ``prefer`` or ``MIL_DEVICE`` override."""
    choice = prefer or os.environ.get("MIL_DEVICE")
    if choice:
        choice = choice.strip().lower()
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {choice!r} requested but CUDA is not available here; "
                              "unset MIL_DEVICE or choose 'cpu'")
        if choice == "mps" and not _mps_available():
            raise ConfigError("device 'mps' requested but MPS is not available here")
        try:
            return torch.device(choice)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {choice!r} (use cuda, mps or cpu)") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count and return it.

    ``n`` defaults to ``MIL_THREADS`` (the runner sets 1 per parallel notebook), else all cores.
    Also turns on flushing of denormals, which avoids a ~5× CPU slowdown in GAN training.
    """
    if n is None:
        env = os.environ.get("MIL_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    if n < 1:
        raise ConfigError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    torch.set_flush_denormal(True)
    return n


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             **kwargs: Any) -> Iterator[T]:
    """A progress bar for every loop longer than a few seconds.

    In JupyterLab it is a widget; in a terminal a text bar that updates at most every 10 seconds.
    Under the runner (``MIL_BATCH=1``: papermill) it prints ONE line when the loop ends (items,
    seconds, rate and the last postfix), so an executed notebook keeps a line per stage rather
    than hundreds of bar updates. ``MIL_PROGRESS=0`` turns it off.
    """
    disable = os.environ.get("MIL_PROGRESS", "1") == "0"
    if os.environ.get("MIL_BATCH") == "1":
        return _OneLine(iterable, total=total, desc=desc, disable=disable)
    if not _in_interactive_notebook():
        from tqdm.std import tqdm as bar
        kwargs.setdefault("mininterval", 10.0)
    else:
        from tqdm.notebook import tqdm as bar
    return bar(iterable, total=total, desc=desc, disable=disable, **kwargs)


class _OneLine:
    """The batch-mode progress "bar": iterates, and prints one summary line at the end."""

    def __init__(self, iterable: Iterable[T] | None, *, total: int | None, desc: str,
                 disable: bool) -> None:
        self.iterable, self.total, self.desc, self.disable = iterable, total, desc, disable
        self.postfix = ""

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def __iter__(self) -> Iterator[T]:
        import time

        start, n = time.perf_counter(), 0
        for item in self.iterable if self.iterable is not None else ():
            yield item
            n += 1
        if not self.disable:
            sec = time.perf_counter() - start
            rate = ("" if sec <= 0 or n == 0 else
                    f", {n / sec:.1f} it/s" if n >= sec else f", {sec / n:.1f} s/it")
            extra = f" [{self.postfix}]" if self.postfix else ""
            done = f"{n}/{self.total}" if self.total and self.total != n else f"{n}"
            print(f"{self.desc + ': ' if self.desc else ''}{done} it in {sec:.1f} s{rate}{extra}",
                  flush=True)


def _in_interactive_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The checkout's root, or None (e.g. a site-packages install used outside the project).

    The first folder holding ``mil_core/`` and ``notebooks/`` (or ``pyproject.toml``), searched
    upwards from ``start`` (default: the working directory) and then from this file.
    """
    candidates = [Path(start) if start else Path.cwd(), Path(__file__).resolve().parent]
    for base in candidates:
        for folder in [base.resolve(), *base.resolve().parents]:
            if (folder / "mil_core").is_dir() and ((folder / "notebooks").is_dir()
                                                   or (folder / "pyproject.toml").is_file()):
                return folder
    return None


def environment_report(device: torch.device | None = None) -> dict[str, str]:
    """Versions, device and threads: the first cell of every results table."""
    import importlib.metadata as md

    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    dev = device or get_device()
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "device": str(dev),
    }
    if dev.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(dev)
    for pkg in ("numpy", "pillow", "scikit-image", "scikit-learn", "matplotlib", "papermill",
                "safetensors", "animal-mnist"):
        report[pkg] = version(pkg)
    return report


# ---------------------------------------------------------------------------------------------
# the setup cell of every notebook
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotebookSetup:
    """What a notebook's setup cell derives from its ``PROFILE`` and ``SEED`` parameters."""
    profile: "Profile"           # the resolved profile (sizes and step counts)
    device: torch.device         # cuda, else mps, else cpu
    threads: int                 # torch intra-op threads (MIL_THREADS under the runner)
    gen: torch.Generator         # a CPU generator seeded with the notebook's seed
    seed: int


def machine_line(device: torch.device, threads: int) -> str:
    """``machine: 2-core x86_64 CPU, no GPU; 2 torch thread(s); device cpu`` for this process."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return (f"machine: {os.cpu_count()}-core {platform.machine()} CPU, {gpu}; "
            f"{threads} torch thread(s); device {device}")


def notebook_setup(profile: str, seed: int = 0) -> NotebookSetup:
    """Profile, threads, device and seed in one call, and one printed line each for profile and
    machine (the runner adds the wall time to that output when it publishes the notebook)."""
    from .profiles import get_profile

    prof = get_profile(profile)
    threads = set_threads()
    device = get_device()
    gen = seed_everything(seed)
    print(f"profile: {prof.name} — {prof.description}")
    print(f"{machine_line(device, threads)}; seed {seed}")
    return NotebookSetup(prof, device, threads, gen, int(seed))


class eval_mode:
    """Context manager: ``module.eval()`` inside, the module's previous mode restored after
    (inference methods of the models use it so that a call never leaves a model switched)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.was = module, module.training

    def __enter__(self) -> torch.nn.Module:
        self.module.eval()
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was)
