"""The committed notebooks read like chapters (STYLE.md): a title, one literal `parameters`
cell, exercises at the end, no cell repeated, and outputs from a scripted run that names its
profile; every exercise has a worked solution after the exercises, in a cell tagged
`solution`."""
import ast
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_a_chapter(path):
    nb = nbformat.read(path, 4)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {path.stem[:2]}")
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    src = params[0].source
    assert re.search(r'^PROFILE = "smoke"', src, re.M) and re.search(r"^SEED = 0", src, re.M)
    for line in src.splitlines():
        code = line.split("#")[0].strip()
        if code:   # literal defaults only: NAME = literal
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]* = (\"[^\"]*\"|-?[0-9.e]+|True|False|None|"
                                r"\[[^\]]*\]|\([^)]*\))", code), line
    chapter = [c for c in cells if "solution" not in c.metadata.get("tags", [])]
    assert any(c.cell_type == "markdown" and c.source.startswith("## Exercises")
               for c in chapter[-3:])
    seen = [c.source for c in cells if c.source.strip()]
    repeated = {s[:60] for s in seen if seen.count(s) > 1}
    assert not repeated, f"cells repeated: {repeated}"
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    if any(c.get("outputs") for c in cells if c.cell_type == "code"):
        assert len(injected) == 1 and "PROFILE = " in injected[0].source, \
            "outputs come from a papermill run that injected the profile"


def _exercise_numbers(source: str) -> list[int]:
    return [int(m) for m in re.findall(r"^(\d+)\. ", source, re.M)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_has_one_worked_solution_after_the_exercises(path):
    cells = nbformat.read(path, 4).cells
    at = max(i for i, c in enumerate(cells)
             if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    numbers = _exercise_numbers(cells[at].source)
    assert numbers == list(range(1, len(numbers) + 1)) and numbers, "exercises numbered 1…n"
    solutions = [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert all(i > at for i, c in enumerate(cells) if c in solutions), \
        "solutions come after the exercises"
    found = [int(m) for c in solutions for m in re.findall(r"\*\*Solution (\d+)\.\*\*", c.source)]
    assert found == numbers, f"one solution per exercise, in order: {found} vs {numbers}"
    assert all(len(c.source) > 200 for c in solutions), "a worked solution, not a one-liner"
    for c in solutions:   # the code a solution shows must at least be Python
        for block in re.findall(r"```python\n(.*?)```", c.source, re.S):
            ast.parse(block)
