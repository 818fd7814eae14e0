"""Check committed notebook outputs with nbval, without executing the notebooks a second time.

``make test`` executes every notebook once, through papermill, in the ``smoke`` profile. The
cells tagged ``nbval-check-output`` print things that must not depend on the profile (dataset
facts, formulas, configurations). To compare them with the committed outputs using nbval's own
rules (``--nbval-lax``), this module writes one small *replay* notebook per notebook:

- one code cell per tagged cell, whose stored outputs are the **committed** outputs, and whose
  source re-emits the outputs of the **papermill smoke run** (:func:`replay`);
- nbval then runs these cheap cells and compares "fresh" (smoke) against stored (committed).

    python -m mil_core.nbcheck --executed build/smoke/notebooks --committed notebooks \
        --out build/nbval [--debug]

Exit status: 0 when the replay notebooks were written, 2 for a missing folder or another bad
argument, 1 for an unreadable notebook; the error is one line ``error: …`` on stderr
(``--debug`` or ``MIL_DEBUG=1`` shows the traceback; see :mod:`mil_core.cli`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli import add_debug_argument, run_main
from .errors import ConfigError

__all__ = ["TAG", "replay", "build_replay_notebook", "main"]

TAG = "nbval-check-output"


class _Result:
    """An object whose rich representation is a stored ``execute_result`` bundle."""

    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]):
        self._data, self._metadata = data, metadata

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self._data, self._metadata


def replay(outputs_json: str) -> Any:
    """Re-emit stored notebook outputs: streams, displays, and the cell's result (returned)."""
    from IPython.display import publish_display_data

    result = None
    for out in json.loads(outputs_json):
        kind = out.get("output_type")
        if kind == "stream":
            stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
            stream.write(out.get("text", ""))
            stream.flush()
        elif kind == "display_data":
            publish_display_data(data=out.get("data", {}), metadata=out.get("metadata", {}))
        elif kind == "execute_result":
            result = _Result(out.get("data", {}), out.get("metadata", {}))
        elif kind == "error":
            raise RuntimeError(f"the smoke run of this cell raised {out.get('ename')}: "
                               f"{out.get('evalue')}")
    return result


def _tagged(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
            and TAG in c.get("metadata", {}).get("tags", [])]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def build_replay_notebook(committed: dict, executed: dict | None) -> dict | None:
    """The replay notebook for one notebook, or None when it has no tagged cell."""
    ref_cells = _tagged(committed)
    if not ref_cells:
        return None
    run_cells = _tagged(executed) if executed is not None else []
    by_id = {c.get("id"): c for c in run_cells if c.get("id")}
    cells = []
    for i, ref in enumerate(ref_cells):
        run = by_id.get(ref.get("id"))
        if run is None and i < len(run_cells) and _source(run_cells[i]) == _source(ref):
            run = run_cells[i]
        if run is None:
            source = ("raise RuntimeError('tagged cell %d was not executed by the smoke run "
                      "(see the papermill log)')" % i)
        else:
            payload = json.dumps(run.get("outputs", []))
            source = f"from mil_core.nbcheck import replay\nreplay({payload!r})"
        cells.append({"cell_type": "code", "execution_count": ref.get("execution_count") or i + 1,
                      "id": f"replay-{i}", "metadata": {"tags": [TAG]},
                      "outputs": ref.get("outputs", []), "source": source})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
            "display_name": "Python 3", "language": "python"}}, "nbformat": 4,
            "nbformat_minor": 5}


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m mil_core.nbcheck``: write one replay notebook per committed
    notebook with tagged cells. Returns the exit status (see the module docstring)."""
    return run_main(_main, argv)


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mil_core.nbcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executed", type=Path, required=True, help="papermill outputs (smoke)")
    ap.add_argument("--committed", type=Path, required=True, help="the committed notebooks")
    ap.add_argument("--out", type=Path, required=True, help="where replay notebooks go")
    add_debug_argument(ap)
    args = ap.parse_args(argv)
    for flag, folder, what in (("--committed", args.committed, "the committed notebooks"),
                               ("--executed", args.executed, "the notebooks papermill executed "
                                "(python -m mil_core.reproduce --output-dir)")):
        if not folder.is_dir():
            raise ConfigError(f"{flag} {folder}: no such folder; pass the folder of {what}")
    import nbformat  # reads multi-line strings back as single strings

    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(args.committed.glob("[0-9][0-9]_*.ipynb")):
        committed = nbformat.read(path, as_version=4)
        run_path = args.executed / path.name
        executed = nbformat.read(run_path, as_version=4) if run_path.exists() else None
        nb = build_replay_notebook(committed, executed)
        if nb is not None:
            nbformat.write(nbformat.from_dict(nb), args.out / f"check_{path.name}")
            written += 1
    print(f"[nbcheck] {written} replay notebook(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
