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


def test_one_sample_per_image_has_swd_and_no_diversity():
    """A published sample (one per image) stands in the same table: SWD yes, diversity NaN."""
    real = _img(0)
    row = image_metrics(real, real.flip(-1)[None], seed=0)
    assert row["SWD ×1e3"] > 0 and math.isnan(row["diversity"])
    assert image_metrics(real, real[None])["SWD ×1e3"] == 0.0
