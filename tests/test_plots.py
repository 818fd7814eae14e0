"""Figures a reader can read (mil_core.plots): a figure title never overprints the axes' titles."""
import matplotlib

matplotlib.use("Agg")

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
