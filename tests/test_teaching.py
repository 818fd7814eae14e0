"""The teaching kit: the book (mil_core.book) and the student copies (mil_core.student)."""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mil_core import book, student
from mil_core.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _chapter(tmp: Path, name: str, cells: list, outputs: str | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    if outputs is not None:
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", text=outputs)]
    path = tmp / name
    nbformat.write(nb, path)
    return path


def test_render_math_typesets_tex_and_leaves_code_and_prices_alone():
    out = book.render_math(r"with $n_k = \max(\lfloor n_{max} k^{-\alpha} \rfloor, n_{min})$ "
                           r"images; set `$MIL_PLACES50`; $$x_s = G_s(z_s)$$ costs $5 or $3.")
    assert out.count('class="math"') == 2
    assert "`$MIL_PLACES50`" in out and "costs $5 or $3." in out
    assert 'src="data:image/svg+xml;base64,' in out and "http" not in out.split("base64,")[0]
    assert book.render_math(r"$\notacommand{x}$").startswith("<code>")   # unparsable: the TeX


def test_chapter_info_reads_the_claim_section_and_the_setup_line(tmp_path):
    path = _chapter(tmp_path, "03_demo.ipynb", [
        nbformat.v4.new_markdown_cell("# 03 · Demo\n\n**The claim** (MIL, Sec. 5, Table 1). "
                                      "A hyper-GAN is *fast*."),
        nbformat.v4.new_code_cell("setup = 1")],
        outputs="profile: cpu — laptop\nmachine: 2-core x86_64 CPU, no GPU\n"
                "wall time: 8.5 min for the whole notebook\n")
    c = book.chapter_info(path)
    assert (c.number, c.title, c.profile, c.wall_time) == ("03", "03 · Demo", "cpu", "8.5 min")
    assert c.section == "Sec. 5, Table 1" and c.claim == "A hyper-GAN is fast."
    assert c.machine == "2-core x86_64 CPU, no GPU" and c.page == "03_demo.html"


def test_book_of_the_committed_notebooks_is_offline_linked_and_complete(tmp_path):
    before = {p: p.read_bytes() for p in NOTEBOOKS}
    index = book.build_book(ROOT / "notebooks", tmp_path / "book")
    pages = sorted(index.parent.glob("[0-9][0-9]_*.html"))
    assert [p.stem for p in pages] == [p.stem for p in NOTEBOOKS]
    text = index.read_text()
    for p in pages:
        assert f'href="{p.name}"' in text
    for p in pages:
        page = p.read_text()
        assert not re.search(r'(src|href)="https?://', page), f"{p.name} fetches from the network"
        assert "<script" not in page and 'href="index.html"' in page
        assert "data:image/png;base64," in page, f"{p.name}: figures embedded"
    assert 'class="math"' in (index.parent / "00_setup_and_data.html").read_text()
    assert all(p.read_bytes() == before[p] for p in NOTEBOOKS), "the notebooks are only read"
    with pytest.raises(DataError, match="no chapter notebooks"):
        book.build_book(tmp_path, tmp_path / "empty")


def test_student_copy_removes_every_solution_and_nothing_else(tmp_path):
    written = student.write_student_copies(ROOT / "notebooks", tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for original, copy in zip(NOTEBOOKS, written):
        nb, st = nbformat.read(original, 4), nbformat.read(copy, 4)
        assert any(student.is_solution(c) for c in nb.cells), f"{original.name} has solutions"
        assert not any(student.is_solution(c) for c in st.cells)
        assert not any("**Solution" in c.source for c in st.cells)
        kept = [c for c in nb.cells if not student.is_solution(c)]
        assert [c.source for c in st.cells] == [c.source for c in kept]
        assert [c.get("outputs") for c in st.cells] == [c.get("outputs") for c in kept]
        assert st.cells[-1].source.startswith("## Exercises") or any(
            c.source.startswith("## Exercises") for c in st.cells[-3:])
    with pytest.raises(DataError, match="must not be overwritten"):
        student.write_student_copies(ROOT / "notebooks", ROOT / "notebooks")


@pytest.mark.parametrize("name", ["00_setup_and_data", "06_interpolation"])
def test_student_copy_executes_in_smoke_up_to_its_exercises(tmp_path, name):
    """A student copy runs as it is, top to bottom, in the smoke profile (papermill, as
    ``make reproduce`` runs a chapter). Every other copy's code cells are exactly those of its
    notebook (the test above), which the smoke run of ``make test`` executes."""
    from mil_core.reproduce import run_notebook

    copies = student.write_student_copies(ROOT / "notebooks", tmp_path / "student")
    src = next(p for p in copies if p.stem == name)
    result = run_notebook(src, tmp_path / "run", "smoke", threads=1, timeout_min=10,
                          figures_dir=tmp_path / "figures")
    assert result.status == "ok", f"{name}: {result.error} (log: {result.log})"
    done = nbformat.read(result.output, 4)
    assert not any(student.is_solution(c) for c in done.cells)
    assert any(c.source.startswith("## Exercises") for c in done.cells[-3:])


def test_cli_targets_write_the_book_and_the_copies(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mil_core.student", "--out", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "solution cells removed" in r.stdout
    assert len(list((tmp_path / "s").glob("*.ipynb"))) == len(NOTEBOOKS)
