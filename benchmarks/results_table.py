"""The benchmarks' result tables: one CSV per benchmark under ``benchmarks/results/``, appended
atomically and printed by ``--show`` (``bench_frontier.py``, ``bench_memory.py``)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pandas as pd


def append_rows(rows: list[dict], out: Path) -> pd.DataFrame:
    """Append ``rows`` to the CSV ``out`` atomically (write a temporary file, then rename),
    under an exclusive lock, so that pieces finishing at once do not drop each other's rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        new = pd.DataFrame(rows)
        table = pd.concat([pd.read_csv(out), new], ignore_index=True) if out.exists() else new
        tmp = out.with_suffix(".tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, out)
    return table


def show(out: Path) -> None:
    """Print the table ``out`` (``--show``), or say that no run has written it yet."""
    print(pd.read_csv(out).to_string(index=False) if out.exists()
          else f"{out} does not exist yet")
