"""The notebook runner: parameters injected, failures reported, the series keeps going."""
import json
import subprocess
import sys

import nbformat
import pytest

from mil_core.errors import ConfigError
from mil_core.reproduce import find_notebooks, main
from mil_core.nbcheck import TAG, build_replay_notebook


def _nb(path, *sources, kernel="some-other-kernel"):
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_code_cell('PROFILE = "smoke"', metadata={"tags": ["parameters"]})]
    for src in sources:
        tags = [TAG] if src.startswith("#check") else []
        cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": tags}))
    nb.cells = cells
    # saved with a kernel name that does not exist here: the runner must still run it
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "X", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def series(tmp_path):
    books = tmp_path / "notebooks"
    books.mkdir()
    _nb(books / "00_good.ipynb",
        "import os\nprint('profile', PROFILE, 'threads', os.environ['MIL_THREADS'])",
        "#check\nprint(2 + 2)",
        "import matplotlib.pyplot as plt\nfrom mil_core.figures import save_figure\n"
        "fig, ax = plt.subplots(); ax.plot([0, 1]); save_figure(fig, 'dot')")
    _nb(books / "01_broken.ipynb", "raise ValueError('deliberate failure in cell 1')")
    _nb(books / "02_after.ipynb", "print('still ran')")
    (books / "notes.ipynb").write_text("{}")  # not numbered: ignored
    return tmp_path


def test_find_notebooks_orders_and_filters(series):
    names = [p.name for p in find_notebooks(series / "notebooks")]
    assert names == ["00_good.ipynb", "01_broken.ipynb", "02_after.ipynb"]
    assert [p.name for p in find_notebooks(series / "notebooks", ["02", "00"])] == [
        "00_good.ipynb", "02_after.ipynb"]
    with pytest.raises(ConfigError, match="--only 07"):
        find_notebooks(series / "notebooks", ["07"])


def test_runner_reports_failure_and_keeps_going(series, capsys):
    out = series / "build"
    rc = main(["--profile", "cpu", "--notebooks", str(series / "notebooks"), "--output-dir",
               str(out), "--figures-dir", str(series / "figs"), "--timeout", "3"])
    printed = capsys.readouterr()
    assert rc == 1
    results = {r["notebook"]: r for r in json.loads((out / "summary.json").read_text())}
    assert results["00_good.ipynb"]["status"] == "ok"
    assert results["01_broken.ipynb"]["status"] == "failed"
    assert "deliberate failure" in results["01_broken.ipynb"]["error"]
    assert results["02_after.ipynb"]["status"] == "ok"  # ran after the failure
    assert results["00_good.ipynb"]["figures"] == 2  # PNG + PDF
    assert (series / "figs" / "00_good" / "dot.png").exists()
    # the profile was injected as a parameter
    executed = nbformat.read(out / "00_good.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "profile cpu threads" in text
    assert "| 01_broken.ipynb | failed |" in printed.out
    assert "1 notebook(s) failed: 01_broken.ipynb" in printed.err


def test_timeout_kills_the_notebook(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _nb(books / "00_slow.ipynb", "import time\ntime.sleep(600)")
    rc = main(["--notebooks", str(books), "--output-dir", str(tmp_path / "o"),
               "--figures-dir", str(tmp_path / "f"), "--timeout", "0.25"])
    res = json.loads((tmp_path / "o" / "summary.json").read_text())[0]
    assert rc == 1 and res["status"] == "timeout" and res["minutes"] < 1.0


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["--profile", "gpu", "--notebooks", str(tmp_path)]) == 2
    assert "unknown profile" in capsys.readouterr().err


def _run_nbval(path):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--nbval-lax", "--nbval-current-env", str(path)],
                          capture_output=True, text=True, cwd=path.parent)


def test_replay_notebooks_let_nbval_compare_without_rerunning(tmp_path):
    cell = nbformat.v4.new_code_cell("#check\nprint(sizes)\nsizes", metadata={"tags": [TAG]})
    committed = nbformat.v4.new_notebook(cells=[cell])
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="[4800, 1200]\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "[4800, 1200]"},
                                           execution_count=1)]
    same = json.loads(json.dumps(committed))
    other = json.loads(json.dumps(committed))
    other["cells"][0]["outputs"][0]["text"] = "[4800, 1201]\n"

    good = build_replay_notebook(committed, same)
    nbformat.write(nbformat.from_dict(good), tmp_path / "good.ipynb")
    res = _run_nbval(tmp_path / "good.ipynb")
    assert res.returncode == 0, res.stdout + res.stderr

    bad = build_replay_notebook(committed, other)
    nbformat.write(nbformat.from_dict(bad), tmp_path / "bad.ipynb")
    res = _run_nbval(tmp_path / "bad.ipynb")
    assert res.returncode == 1 and "4800, 1201" in res.stdout

    missing = build_replay_notebook(committed, None)  # the smoke run never got there
    nbformat.write(nbformat.from_dict(missing), tmp_path / "missing.ipynb")
    assert _run_nbval(tmp_path / "missing.ipynb").returncode == 1
    assert build_replay_notebook(nbformat.v4.new_notebook(), None) is None


def test_publish_copies_only_successful_runs(series):
    books = series / "notebooks"
    broken_before = (books / "01_broken.ipynb").read_bytes()
    rc = main(["--notebooks", str(books), "--only", "00,01", "--output-dir", str(series / "o"),
               "--figures-dir", str(series / "f"), "--publish", "--timeout", "3"])
    assert rc == 1
    published = nbformat.read(books / "00_good.ipynb", as_version=4)
    assert any(c.get("outputs") for c in published.cells)  # outputs now stored in the source
    assert (books / "01_broken.ipynb").read_bytes() == broken_before  # a failure is not published


def test_figures_are_embedded_in_the_executed_notebook(series, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # must not leak into the kernel
    out = series / "o"
    main(["--notebooks", str(series / "notebooks"), "--only", "00", "--output-dir", str(out),
          "--figures-dir", str(series / "f"), "--timeout", "3"])
    executed = nbformat.read(out / "00_good.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in executed.cells for o in c.outputs)


def test_stamp_wall_time_adds_a_line_to_the_machine_output(tmp_path):
    import nbformat

    from mil_core.reproduce import stamp_wall_time

    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("print('hi')")
    first.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    setup = nbformat.v4.new_code_cell("setup")
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                            text="profile: cpu\nmachine: 2-core CPU\n")]
    nb.cells = [first, setup]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert stamp_wall_time(path, 12.345, 2)
    text = nbformat.read(str(path), as_version=4).cells[1].outputs[0]["text"]
    assert text.startswith("profile: cpu\nmachine: 2-core CPU\nwall time: 12.3 min")
    assert "2 torch thread(s)" in text
    nb.cells = [first]
    nbformat.write(nb, str(path))
    before = path.read_bytes()
    assert not stamp_wall_time(path, 1.0, 1) and path.read_bytes() == before
