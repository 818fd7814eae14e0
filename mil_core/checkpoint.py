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
target, so an interrupted run never leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_metadata", "check_same_run", "FORMAT",
           "VERSION"]

FORMAT = "mil-companion-checkpoint"
VERSION = 1
_PICKLE_HINT = ("mil_core never unpickles checkpoints, because unpickling can execute code. "
                "Re-save the state with mil_core.checkpoint.save_checkpoint, or, if you trust the "
                "file, open it yourself with torch.load(path, weights_only=True).")


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
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
        raise CheckpointError(f"{path} was written with another {what}; use another "
                              "checkpoint_dir or resume=False")
    if saved_seed != seed:
        raise CheckpointError(f"{path} was written with seed {saved_seed}, not {seed}; "
                              "use another checkpoint_dir or resume=False")
