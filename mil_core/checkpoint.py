"""Checkpoints that load without executing code, written atomically.

Format: one ``safetensors`` file. Every tensor of the (nested) state goes into the tensor table;
everything else — ints, floats, strings, lists, tuples, dicts with str/int keys (optimizer
states, RNG states, step counters, configs) — goes into a JSON *skeleton* stored in the file's
metadata, with placeholders where tensors were. A SHA-256 over the tensor bytes detects a file
that was modified after it was written.

Why not ``torch.save``? It pickles, and unpickling a file can run arbitrary code (the reason
SinGAN's pickled modules are listed among the reference code's problems, REFERENCE §2). Loading
here never unpickles: a pickled file is refused with an explanation.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target, so an interrupted run never leaves a half-written checkpoint under the real name. The
file gets the ordinary mode of a new file, ``0o666 & ~umask`` (0644 under the usual umask 022),
not the 0600 of a bare temporary file.

Trainers call :func:`prepare_checkpoint_path` once, before training, so that a run never
silently replaces another run's checkpoint: an existing file needs ``resume=True`` (continue it)
or ``overwrite=True`` (replace it, at the first new checkpoint).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError, ConfigError

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_metadata", "check_same_run",
           "restore_run_log",
           "prepare_checkpoint_path", "OTHER_RUN_HINT", "FORMAT", "VERSION"]

FORMAT = "mil-companion-checkpoint"
VERSION = 1
_PICKLE_HINT = ("mil_core never unpickles checkpoints, because unpickling can execute code. "
                "Re-save the state with mil_core.checkpoint.save_checkpoint, or, if you trust the "
                "file, open it yourself with torch.load(path, weights_only=True).")
# the way on when resume=True finds a checkpoint of another run (config, seed or data differ)
OTHER_RUN_HINT = ("use another checkpoint_dir, or overwrite=True instead of resume=True "
                  "(--overwrite instead of --resume) to start afresh there")


# ---------------------------------------------------------------------------------------------
# encoding a nested state into (tensors, JSON skeleton)
# ---------------------------------------------------------------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # clone: safetensors refuses tensors that share storage (e.g. tied weights)
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Size):
        return {"__tuple__": list(obj)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, Mapping):
        pairs = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"cannot store key {k!r} of type {type(k).__name__} at "
                                      f"{where}: checkpoint keys must be str or int")
            pairs.append([k, _encode(v, tensors, f"{where}[{k!r}]")])
        return {"__dict__": pairs}
    raise CheckpointError(f"cannot store an object of type {type(obj).__name__} at {where}; "
                          "checkpoints hold tensors, numbers, strings, lists, tuples and dicts. "
                          "Store a module's state_dict(), not the module.")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
        raise CheckpointError(f"unexpected entry in checkpoint skeleton: {sorted(obj)}")
    return obj


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors, key=lambda k: int(k[1:])):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any],
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Atomically write ``state`` (a nested dict of tensors and plain values) to ``path``.

    ``metadata`` is a small JSON-serialisable dict (profile, step, notes) readable without
    loading the tensors, via :func:`checkpoint_metadata`.
    """
    path = Path(path)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"save_checkpoint({path}): state must be a dict, got "
                              f"{type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors, "state")
    try:
        user_meta = json.dumps(dict(metadata or {}))
    except TypeError as exc:
        raise CheckpointError(f"save_checkpoint({path}): metadata must be JSON-serialisable "
                              f"({exc})") from exc
    header = {"format": FORMAT, "version": str(VERSION), "skeleton": json.dumps(skeleton),
              "metadata": user_meta, "sha256": _digest(tensors)}
    blob = st_save(tensors, metadata=header)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _set_new_file_mode(f.fileno(), tmp)
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without a window in which it is 0 where possible.

    Linux reports it in ``/proc/self/status``. Elsewhere it is read by setting a strict umask
    (077) and restoring the old one at once, under a lock: a file that another thread creates in
    that instant can only get a narrower mode, never a wider one.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o077)
        os.umask(old)
    return old


def _set_new_file_mode(fd: int, tmp: str) -> None:
    """Give the temporary file (0600 from mkstemp) the mode ``open()`` would: 0o666 & ~umask."""
    mode = 0o666 & ~_current_umask()
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # pragma: no cover - Windows has no fchmod; chmod only toggles read-only there
        os.chmod(tmp, mode)


def _read_header(path: Path, data: bytes) -> dict[str, str]:
    """Validate the raw bytes and return the safetensors metadata, with clear errors."""
    looks_safetensors = data[8:9] == b"{"  # 8-byte length, then the JSON header
    if not looks_safetensors and (data[:4] == b"PK\x03\x04" or data[:1] == b"\x80"):
        raise CheckpointError(f"{path} is a pickle / torch.save file, not a mil-companion "
                              f"checkpoint. {_PICKLE_HINT}")
    if len(data) < 8:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes): not a complete "
                              "checkpoint. Resume from an earlier checkpoint or start afresh.")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{path} is truncated or not a checkpoint: its header claims "
                              f"{n} bytes but the file has {len(data) - 8} after the length "
                              "field. Resume from an earlier checkpoint or start afresh.")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a mil-companion checkpoint (its header is not "
                              f"safetensors JSON). {_PICKLE_HINT}") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a mil-companion checkpoint "
                              "(no 'format' entry in its metadata). Load plain tensors with "
                              "safetensors.torch.load_file instead.")
    if int(meta.get("version", "0")) > VERSION:
        raise CheckpointError(f"{path} was written by a newer mil_core (format version "
                              f"{meta['version']} > {VERSION}); upgrade mil_core to read it.")
    return meta


def checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The user metadata stored with :func:`save_checkpoint`, without loading the tensors."""
    path = Path(path)
    data = _read_bytes(path)
    return json.loads(_read_header(path, data)["metadata"])


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: check the path (or start the run without "
                              "resuming)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file inside it")
    return path.read_bytes()


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; never executes code.

    Raises :class:`CheckpointError` for a missing, truncated, tampered-with, pickled or foreign
    file, naming the file and what to do.
    """
    path = Path(path)
    data = _read_bytes(path)
    meta = _read_header(path, data)
    try:
        tensors = st_load(data)
    except (SafetensorError, Exception) as exc:  # safetensors raises several types on bad data
        raise CheckpointError(f"{path} is truncated or corrupted ({exc}). Resume from an earlier "
                              "checkpoint or start afresh.") from exc
    if _digest(tensors) != meta.get("sha256"):
        raise CheckpointError(f"{path} failed its checksum: the tensors were modified or "
                              "corrupted after the file was written. Do not trust it.")
    if map_location is not None:
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    try:
        skeleton = json.loads(meta["skeleton"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has a damaged skeleton entry; it cannot be restored") from exc
    return _decode(skeleton, tensors)


def check_same_run(path: str | os.PathLike, what: str, saved_config: Mapping[str, Any],
                   config: Mapping[str, Any], saved_seed: Any, seed: int) -> None:
    """Refuse to resume a run from ``path`` written with another config or seed.

    ``what`` names the config class in the message (e.g. ``"SinGANConfig"``).
    """
    if dict(saved_config) != dict(config):
        raise CheckpointError(f"{path} was written with another {what}; {OTHER_RUN_HINT}")
    if saved_seed != seed:
        raise CheckpointError(f"{path} was written with seed {saved_seed}, not {seed}; "
                              f"{OTHER_RUN_HINT}")


def resume_single_image(path: str | os.PathLike, model_cls: Any, config: Any,
                        reals: Sequence[Any], seed: int, unit: str = "scale"
                        ) -> tuple[Any, dict[str, Any], Any]:
    """Reload a single-image GAN's finished scales or stages from ``path`` and
    check they belong to this image, config and seed; shared by ConSinGAN and HP-VAE-GAN.

    ``model_cls`` has ``from_state``, ``config.to_dict()``, ``reals``, ``n_scales``, ``n_active``
    and ``n_trained``; the checkpoint's ``extra`` holds the trainer's seed, RNG and critic state.
    Returns ``(model, critic_state, rng_state)``.
    """
    state = load_checkpoint(path)
    try:
        model = model_cls.from_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    name = model_cls.__name__
    extra = state.get("extra") or {}
    if not {"seed", "rng", "critic"} <= set(extra):
        raise CheckpointError(f"{path} holds no seed, RNG or critic state (it was written by "
                              f"{name}.save, not by train_{name.lower()}), so training cannot "
                              f"resume exactly; {OTHER_RUN_HINT}")
    check_same_run(path, type(config).__name__, model.config.to_dict(), config.to_dict(),
                   extra["seed"], seed)
    same = len(reals) == model.n_scales and all(
        a.shape == b.shape and torch.allclose(a, b, atol=1e-6) for a, b in zip(reals, model.reals))
    if not same:
        raise CheckpointError(f"{path} was trained on another image; {OTHER_RUN_HINT}")
    if model.n_active != model.n_trained:
        raise CheckpointError(f"{path} holds a {unit} that was not finished; {OTHER_RUN_HINT}")
    return model, extra["critic"], extra["rng"]


def prepare_checkpoint_path(checkpoint_dir: str | os.PathLike | None, name: str, *,
                            resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint file ``checkpoint_dir/name`` of a training run, checked before training.

    Returns None when ``checkpoint_dir`` is None (no checkpoints). Raises :class:`ConfigError`
    for ``resume=True`` together with ``overwrite=True``, and :class:`CheckpointError` when the
    file already exists and neither is set (another run's checkpoint is never replaced
    silently), or when the path is a folder. With ``overwrite=True`` nothing is deleted here:
    the old file is replaced atomically by the run's first checkpoint, so an interrupt before
    that leaves it intact. With ``resume=True`` and no file yet, the run starts afresh.
    """
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True (--resume and --overwrite) contradict "
                          "each other: pass resume=True to continue the checkpoint in "
                          "checkpoint_dir, or overwrite=True to replace it")
    if checkpoint_dir is None:
        return None
    folder = Path(checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"checkpoint_dir {folder} is a file, not a folder; pass the folder "
                              "that holds (or will hold) the checkpoints")
    path = folder / name
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; remove it or use "
                              "another checkpoint_dir")
    if path.exists() and not resume and not overwrite:
        raise CheckpointError(f"{path} already holds a checkpoint; pass resume=True (--resume "
                              "on the command line) to continue that run, or overwrite=True "
                              "(--overwrite) to replace it, or use another checkpoint_dir")
    return path


def restore_run_log(model: Any, state: Mapping[str, Any]) -> None:
    """Set a GAN's run log from a loaded checkpoint ``state``: ``noise_amps`` (floats),
    ``history`` (rows) and ``timings`` (with its ``seconds_per_scale`` list), each copied so the
    model owns them. Raises KeyError / TypeError on a damaged state (callers name the model)."""
    model.noise_amps = [float(a) for a in state["noise_amps"]]
    model.history = list(state.get("history", []))
    model.timings = dict(state.get("timings", model.timings))
    model.timings["seconds_per_scale"] = list(model.timings.get("seconds_per_scale", []))
