"""Opt-in downloads for users with internet.

Nothing in mil_core downloads on its own: every function here is called explicitly by a user (or a
notebook cell that says so). When the network is not reachable, or ``MIL_OFFLINE=1`` is set, the
error says which file was wanted and where to put it by hand.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import OfflineError

__all__ = ["download_file", "offline_requested"]


def offline_requested() -> bool:
    """True when the user asked mil_core never to touch the network (``MIL_OFFLINE=1``)."""
    return os.environ.get("MIL_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                  timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename) and return ``dest``.

    An existing ``dest`` is kept (and checked against ``sha256`` when given). A failed or partial
    download never leaves a file at ``dest``.

    Raises:
        OfflineError: the network is unreachable or ``MIL_OFFLINE=1``; the message names ``url``
            and ``dest`` so the file can be fetched elsewhere and copied in.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 is None or _sha256(dest) == sha256:
            return dest
        raise OfflineError(f"{dest} exists but its SHA-256 does not match the expected {sha256}; "
                           "delete it and download again.")
    hint = (f"Download {url} on a machine with internet and save it as {dest} "
            "(or point mil_core at a folder that already holds it).")
    if offline_requested():
        raise OfflineError(f"MIL_OFFLINE=1 is set, so {url} was not downloaded. {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".tmp-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "mil-companion"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise OfflineError(f"Could not download {url} ({reason}); this machine seems to "
                                   f"be offline. {hint}") from exc
        if sha256 is not None and _sha256(Path(tmp)) != sha256:
            raise OfflineError(f"Downloaded {url} but its SHA-256 is not {sha256}; nothing was "
                               f"saved at {dest}.")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
