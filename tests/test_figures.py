import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mil_core.errors import ConfigError  # noqa: E402
from mil_core.figures import figures_dir, save_figure  # noqa: E402


def test_save_figure_writes_png_and_pdf_under_notebook_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MIL_FIGURES_DIR", str(tmp_path))
    monkeypatch.setenv("MIL_NOTEBOOK", "07_demo")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, pdf = save_figure(fig, "curve")
    plt.close(fig)
    assert png == tmp_path / "07_demo" / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # PDFs carry no date, so a re-run gives the same bytes
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    first = pdf.read_bytes()
    save_figure(fig, "curve")
    plt.close(fig)
    assert pdf.read_bytes() == first


def test_explicit_notebook_and_jupyter_session(tmp_path, monkeypatch):
    monkeypatch.setenv("MIL_FIGURES_DIR", str(tmp_path))
    monkeypatch.delenv("MIL_NOTEBOOK", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/u/notebooks/03_hypergan_dataset.ipynb")
    assert figures_dir() == tmp_path / "03_hypergan_dataset"
    assert figures_dir("notebooks/01_x.ipynb") == tmp_path / "01_x"


@pytest.mark.parametrize("bad", ["a/b", "x.png", "", "../up"])
def test_bad_names_are_refused(bad, tmp_path, monkeypatch):
    monkeypatch.setenv("MIL_FIGURES_DIR", str(tmp_path))
    fig = plt.figure()
    with pytest.raises(ConfigError, match="figure name"):
        save_figure(fig, bad)
    plt.close(fig)


def test_save_table_writes_csv_next_to_figures(tmp_path, monkeypatch):
    import pandas as pd
    from mil_core.figures import save_table
    monkeypatch.setenv("MIL_FIGURES_DIR", str(tmp_path))
    df = pd.DataFrame({"class": [0, 1], "ekld": [0.5, 0.25]})
    path = save_table(df, "sweep", notebook="09_x.ipynb")
    assert path == tmp_path / "09_x" / "sweep.csv"
    back = pd.read_csv(path)
    assert back["ekld"].tolist() == [0.5, 0.25]
    assert not list((tmp_path / "09_x").glob("*.tmp"))
    with pytest.raises(ConfigError, match="plain stem"):
        save_table(df, "sweep.csv")
