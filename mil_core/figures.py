"""The one helper every notebook uses to save a figure: ``figures/<notebook>/<name>.{png,pdf}``.

Where figures land:
- ``MIL_FIGURES_DIR`` when set (the runner sets it; ``make test`` points it into ``build/``),
- else ``<checkout>/figures``, else ``./figures``.

Which notebook: the ``notebook`` argument, else ``MIL_NOTEBOOK`` (set by the runner), else the
notebook JupyterLab reports in ``JPY_SESSION_NAME``, else ``scratch``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError
from .runtime import repo_root

__all__ = ["figures_dir", "save_figure", "save_table"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _notebook_name(notebook: str | None) -> str:
    if notebook:
        return Path(notebook).stem
    for var in ("MIL_NOTEBOOK", "JPY_SESSION_NAME"):
        value = os.environ.get(var)
        if value:
            return Path(value).stem
    return "scratch"


def figures_dir(notebook: str | None = None) -> Path:
    """The folder a notebook's figures go to (created on demand)."""
    root = os.environ.get("MIL_FIGURES_DIR")
    if root:
        base = Path(root)
    else:
        top = repo_root()
        base = (top / "figures") if top else Path.cwd() / "figures"
    return base / _notebook_name(notebook)


def save_figure(fig, name: str, notebook: str | None = None, dpi: int = 150) -> tuple[Path, Path]:
    """Save a matplotlib figure as PNG (for notebooks and slides) and PDF (for papers).

    Returns the two paths. ``name`` must be a plain file stem such as ``"pyramid"``.
    PDFs carry no creation date, so re-running a notebook gives identical files.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".png", ".pdf")):
        raise ConfigError(f"figure name {name!r} must be a plain stem of letters, digits, '_', '-' "
                          "or '.', without extension (e.g. 'pyramid')")
    folder = figures_dir(notebook)
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "Creator": None,
                                                    "Producer": None})
    return png, pdf


def save_table(df, name: str, notebook: str | None = None) -> Path:
    """Save a pandas DataFrame as ``figures/<notebook>/<name>.csv``, next to the figures it
    feeds (tidy tables of sweeps, so a figure can be redrawn without re-running the sweep)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".csv"):
        raise ConfigError(f"table name {name!r} must be a plain stem of letters, digits, '_', '-' "
                          "or '.', without extension (e.g. 'sweep')")
    folder = figures_dir(notebook)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    tmp = path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
