"""Figures a reader can read (mil_core.plots): a figure title never overprints the axes' titles."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mil_core import plots  # noqa: E402


@pytest.mark.parametrize("nrows", [1, 3])
def test_suptitle_sits_above_every_axis_title(nrows):
    imgs = [torch.zeros(3, 40, 60) for _ in range(4 * nrows)]
    fig = plots.image_grid(imgs, [f"sample {i}" for i in range(len(imgs))], ncols=4, size=1.9,
                           suptitle="SinGAN: random samples")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    tops = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert title.y0 >= max(t.y1 for t in tops)                   # no overlap with any title
    assert title.y1 <= fig.bbox.y1 + 1                           # and inside the figure


def test_transform_grid_title_sits_above_the_images():
    rows = {"clean": torch.zeros(8, 20, 20, dtype=torch.uint8),
            "ROT": torch.zeros(8, 20, 20, dtype=torch.uint8)}
    fig = plots.transform_grid(rows, title="digits: every stored image carries one nuisance")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert title.y0 >= max(ax.get_window_extent(renderer).y1 for ax in fig.axes)


def test_ekld_size_figure_draws_the_fit_and_names_its_slope():
    import numpy as np
    import pandas as pd

    from mil_core.classify.sweep import slope_table
    from mil_core.errors import ConfigError

    rows = [{"dataset": d, "transform": t, "rule": r, "instance": i, "class_size": n,
             "ekld": 0.5 * n ** -0.7}
            for d in ("digits", "animals") for t in ("rot", "bg") for r in ("erm", "drs")
            for i in range(2) for n in (100, 30, 10, 3)]
    table = pd.DataFrame(rows)
    slopes = slope_table(table)
    fig = plots.ekld_size_figure(table, slopes, rule="erm")
    assert len(fig.axes) == 4
    assert all("slope -0.70 [-0.70, -0.70]" in ax.get_title() for ax in fig.axes)
    assert all(ax.get_yscale() == "log" and ax.get_xscale() == "log" for ax in fig.axes)
    line = fig.axes[0].lines[0].get_ydata()
    assert np.allclose(line[[0, -1]], [0.5 * 3 ** -0.7, 0.5 * 100 ** -0.7])
    with pytest.raises(ConfigError, match="'ldam'"):
        plots.ekld_size_figure(table, slopes, rule="ldam")
    fig = plots.slope_summary_figure(slopes)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "digits"


def test_frontier_figure_plots_one_point_per_budget_and_the_published_lines():
    import pandas as pd

    from mil_core.errors import ConfigError

    rows = [{"method": m, "size": 128, "iters/scale": it, "channels": 16, "train images": 1,
             "image": img, "SWD ×1e3": 100.0 / it + k, "layout": 0.01 * k,
             "norm min/image": it / 100, "pub SinGAN SWD": 50.0, "pub SinGAN layout": 0.03,
             "pub ConSinGAN SWD": 40.0, "pub ConSinGAN layout": 0.02}
            for m in ("singan", "mil") for it in (100, 300) for k, img in enumerate("abc")]
    fig = plots.frontier_figure(pd.DataFrame(rows))
    swd_ax = fig.axes[0]
    lines = [ln for ln in swd_ax.lines if ln.get_linestyle() == "-"]
    assert len(lines) == 2                                       # one line per method, 2 budgets
    assert list(lines[0].get_ydata()) == [100.0 / 100 + 1, 100.0 / 300 + 1]   # mean over images
    refs = sorted(ln.get_ydata()[0] for ln in swd_ax.lines if ln.get_linestyle() == ":")
    assert refs == [40.0, 50.0]
    band = [ln.get_ydata()[0] for ln in swd_ax.lines if ln.get_linestyle() == "--"]
    assert band == [pytest.approx(1.25 * 50.0)]                  # target 1's tolerance
    with pytest.raises(ConfigError, match="layout"):
        plots.frontier_figure(pd.DataFrame(rows).drop(columns="layout"))


def test_leakage_heatmaps_show_every_cell_and_the_leakage_of_each_run():
    m = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    fig = plots.leakage_heatmaps({"hyper-critic": m, "shared critic": m.flip(1)}, ["a", "b"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["hyper-critic\nleakage 0.20",
                                                 "shared critic\nleakage 0.80"]
    assert sorted(t.get_text() for t in panels[0].texts) == ["0.10", "0.30", "0.70", "0.90"]


def test_scale_curves_draw_one_line_per_run_and_the_references():
    import pandas as pd
    rows = pd.DataFrame({"variant": ["x"] * 4 + ["y"] * 4, "seed": [0, 0, 1, 1] * 2,
                         "scale": [0, 1] * 4, "leakage": [0.1, 0.2, 0.3, 0.4] * 2,
                         "floor": [0.05] * 8})
    fig = plots.scale_curves(rows, [("leakage", "leakage")], refs={"leakage": [("floor", "f")]})
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["x", "y", "f"]
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.2, 0.3])   # seed means


def test_slope_curves_draw_one_line_per_switch_scale_and_method():
    import pandas as pd
    rows = pd.DataFrame([{"method": m, "pair": "0→1", "seed": s, "switch": n, "alpha": a,
                          "slope": 1.0 + n + s}
                         for m in ("embedding", "weights") for s in (0, 1) for n in (0, 2)
                         for a in (0.25, 0.75)])
    fig = plots.slope_curves(rows)
    assert [ax.get_title() for ax in fig.axes] == ["embedding interpolation",
                                                   "weights interpolation"]
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["scales ≥ 0", "scales ≥ 2"]
    assert list(lines[1].get_ydata()) == pytest.approx([3.5, 3.5])      # mean over seeds


def test_mean_curves_draw_the_mean_per_x_for_each_group():
    import pandas as pd
    rows = pd.DataFrame([{"init": i, "K": k, "image": m, "rec": k + m + (10 if i == "r" else 0)}
                         for i in ("f", "r") for k in (0, 5, 50) for m in (0, 2)])
    fig = plots.mean_curves(rows, "K", [("rec", "reconstruction")], by="init", logx=True)
    ax = fig.axes[0]
    assert ax.get_title() == "reconstruction" and ax.get_xscale() == "symlog"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["f", "r"]
    assert list(lines[1].get_ydata()) == pytest.approx([11, 16, 61])     # mean over images
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "5", "50"]


def test_loss_curves_smooth_each_run_over_its_iterations():
    hist = {"a": [{"iter": i, "loss": float(i % 2)} for i in range(4)]}
    fig = plots.loss_curves(hist, [("loss", "L")], smooth=2)
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [0, 1, 2, 3]
    assert list(line.get_ydata()) == pytest.approx([0.0, 0.5, 0.5, 0.5])
    assert fig.axes[0].get_title() == "L" and line.get_label() == "a"


def test_true_size_grid_draws_each_image_at_its_relative_size_under_the_title():
    rows = {"SinGAN": [torch.zeros(3, 20, 30), torch.zeros(3, 20, 60), torch.zeros(3, 30, 30)],
            "hyper-GAN": [torch.zeros(3, 20, 30), torch.zeros(3, 20, 60), torch.zeros(3, 30, 30)]}
    fig = plots.true_size_grid(rows, ["training size", "1 × 2", "1.5 × 1"], suptitle="retargeting")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert len(boxes) == 6
    assert boxes[1].width == pytest.approx(2 * boxes[0].width, rel=0.02)      # 1 × 2 is twice as wide
    assert boxes[2].height == pytest.approx(1.5 * boxes[0].height, rel=0.02)  # 1.5 × 1 is taller
    assert fig.axes[0].get_ylabel() == "SinGAN" and fig.axes[3].get_ylabel() == "hyper-GAN"
    title = fig._suptitle.get_window_extent(renderer)
    tops = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert title.y0 >= max(t.y1 for t in tops) and title.y1 <= fig.bbox.y1 + 1
    with pytest.raises(Exception, match="no rows"):
        plots.true_size_grid({})


def test_head_size_figure_spreads_the_labels_of_equal_size_heads():
    # four variants share one head size (a cluster) and two points lie close in y: their
    # labels must not overlap, and every variant is named once per panel
    names = ["e2e 1", "e2e 3", "frozen 1", "frozen 3", "rank 30", "rank 1"]
    table = pd.DataFrame({"G head params/scale": [2.0e6, 2.1e6, 2.0e6, 2.1e6, 2.5e5, 1.6e4],
                          "SWD ×1e3": [330.0, 334.0, 264.0, 262.0, 324.0, 718.0],
                          "layout": [0.18, 0.15, 0.15, 0.14, 0.19, 0.16],
                          "diversity": [0.60, 0.54, 0.57, 0.58, 0.61, 0.33],
                          "encoder": ["trained"] * 2 + ["frozen"] * 2 + ["trained"] * 2},
                         index=names)
    fig = plots.head_size_figure(table)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        texts = [t for t in ax.texts if t.get_text() in names]
        assert sorted(t.get_text() for t in texts) == sorted(names)
        boxes = [Text.get_window_extent(t, renderer) for t in texts]   # the words, no arrow
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    plt.close(fig)
