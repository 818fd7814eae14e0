"""One table row per image (mil_core.metrics.report.image_metrics): the mSIFID-style SWD protocol."""
import math

import torch

from mil_core.metrics import image_metrics
from mil_core.metrics.swd import swd_per_sample


def _img(seed: int, h: int = 24, w: int = 32) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_swd_column_is_the_mean_of_per_sample_swds():
    real = _img(0)
    fakes = torch.stack([real, real.flip(-1), _img(1)])             # copy, mirror, other
    row = image_metrics(real, fakes, seed=3)
    each = swd_per_sample(real, fakes, generator=torch.Generator().manual_seed(3))["per_sample"]
    assert each[0] == 0.0 and 0 < each[1] < each[2]
    assert row["SWD ×1e3"] == sum(each) / 3
    assert row["diversity"] > 0 and "SIFID" not in row
    lay = image_metrics(real, fakes[:1], seed=3)["layout"]
    assert lay == 0.0 and row["layout"] > 0                         # a copy keeps the layout


def test_one_sample_per_image_has_swd_and_no_diversity():
    """A published sample (one per image) stands in the same table: SWD yes, diversity NaN."""
    real = _img(0)
    row = image_metrics(real, real.flip(-1)[None], seed=0)
    assert row["SWD ×1e3"] > 0 and math.isnan(row["diversity"])
    assert image_metrics(real, real[None])["SWD ×1e3"] == 0.0


class _Copier:
    """A fake single-image model whose samples are its real image plus seeded noise."""

    def __init__(self, real: torch.Tensor, noise: float) -> None:
        self.reals, self.noise = [real], noise
        self.timings = {"total_seconds": 90.0}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, *self.reals[-1].shape, generator=generator)
        return (self.reals[-1] + self.noise * eps).clamp(-1, 1)


def test_sample_table_rows_per_image_and_method():
    from mil_core.metrics import sample_table

    real = _img(0)
    models = {("a", "good"): _Copier(real, 0.05), ("a", "bad"): _Copier(real, 0.5)}
    table = sample_table(models, n_samples=3, n_diversity=4, seed=2)
    assert list(table["method"]) == ["good", "bad"] and (table["image"] == "a").all()
    good, bad = table.set_index("method")["SWD ×1e3"]
    assert 0 < good < bad
    assert (table["min/image"] == 1.5).all()
    gen = torch.Generator().manual_seed(2)
    fakes = models[("a", "good")].sample(3, generator=gen)
    div = models[("a", "good")].sample(4, generator=gen)
    assert table.loc[0, "SWD ×1e3"] == image_metrics(real, fakes, div, seed=2)["SWD ×1e3"]
    assert table.loc[0, "diversity"] == image_metrics(real, fakes, div, seed=2)["diversity"]
