"""Student copies of the notebooks (``make student``): every cell tagged ``solution`` removed.

Each chapter's exercises (its last ``## Exercises`` cell) are followed by worked solutions in
cells tagged ``solution``. A student copy is the same notebook without them — the solution
cells and their outputs are gone, every other cell (and its committed ``cpu`` output, which
the exercises refer to) is kept as it is. The copies go to a git-ignored folder; the committed
notebooks are only read.

Run ``python -m mil_core.student [--notebooks notebooks] [--out build/student]
[--clear-outputs]``.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import nbformat

from .errors import DataError

__all__ = ["SOLUTION_TAG", "is_solution", "student_copy", "write_student_copies"]

SOLUTION_TAG = "solution"


def is_solution(cell: nbformat.NotebookNode) -> bool:
    """Whether ``cell`` is tagged ``solution``."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_copy(nb: nbformat.NotebookNode, clear_outputs: bool = False) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solution cells (``nb`` itself is not changed); with
    ``clear_outputs`` every remaining code cell's outputs are cleared as well."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if not is_solution(c)]
    if clear_outputs:
        for c in out.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
    return out


def write_student_copies(notebooks: str | Path = "notebooks", out: str | Path = "build/student",
                         clear_outputs: bool = False) -> list[Path]:
    """Write the student copy of every ``NN_*.ipynb`` under ``notebooks`` into ``out``
    (atomically, same file names); returns the paths written."""
    src, out = Path(notebooks), Path(out)
    paths = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise DataError(f"write_student_copies: no chapter notebooks (NN_*.ipynb) in {src}")
    if out.resolve() == src.resolve():
        raise DataError(f"write_student_copies: the output folder {out} is the notebooks folder;"
                        " choose another (the originals must not be overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(student_copy(nb, clear_outputs), tmp)
        tmp.replace(target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks", help="folder of NN_*.ipynb")
    parser.add_argument("--out", default="build/student", help="output folder (git-ignored)")
    parser.add_argument("--clear-outputs", action="store_true",
                        help="also clear the outputs of the remaining cells")
    args = parser.parse_args(argv)
    written = write_student_copies(args.notebooks, args.out, args.clear_outputs)
    n_removed = sum(sum(map(is_solution, nbformat.read(Path(args.notebooks) / p.name, 4).cells))
                    for p in written)
    print(f"student copies: {len(written)} notebooks in {args.out} ({n_removed} solution cells "
          "removed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
