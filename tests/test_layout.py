"""The layout distance (mil_core.metrics.layout): closed forms, reference points, bad input."""
import pytest
import torch

from mil_core.errors import DataError
from mil_core.metrics import layout_distance, layout_per_sample


def _gradient(h: int = 24, w: int = 32) -> torch.Tensor:
    x = torch.linspace(-1, 1, w).expand(3, h, w)                # dark left, bright right
    return x.clone()


def test_identical_copy_is_zero_and_constants_give_the_squared_difference():
    real = _gradient()
    assert layout_distance(real.clone(), real) == 0.0
    a, b = torch.full((3, 24, 32), 0.25), torch.full((3, 24, 32), -0.5)
    assert layout_distance(a, b) == pytest.approx(0.75 ** 2)


def test_a_mirror_moves_the_layout_but_a_fine_shuffle_does_not():
    real = _gradient()
    mirror = layout_distance(real.flip(-1), real)
    # swap neighbouring columns inside every 4-pixel cell: patches change, the thumbnail does not
    perm = torch.arange(32).view(8, 4).flip(-1).reshape(-1)
    shuffled = layout_distance(real[:, :, perm], real)
    assert shuffled == pytest.approx(0.0, abs=1e-12)
    assert mirror > 0.5                                          # left and right swapped


def test_per_sample_values_and_size_independence():
    real = _gradient()
    samples = torch.stack([real, real.flip(-1), torch.zeros(3, 24, 32)])
    out = layout_per_sample(real, samples)
    assert out["per_sample"][0] == 0.0 and out["grid"] == (6, 8)
    assert out["mean"] == pytest.approx(sum(out["per_sample"]) / 3)
    big = torch.nn.functional.interpolate(real[None], size=(48, 64), mode="bilinear",
                                          align_corners=True)[0]
    assert layout_distance(big, real) < 1e-3                    # compared on the same grid


def test_bad_input_fails_clearly():
    real = _gradient()
    with pytest.raises(DataError, match="grid"):
        layout_distance(real, real, grid=(6,))
    with pytest.raises(DataError, match="smaller than the layout grid"):
        layout_distance(torch.zeros(3, 4, 4), real)
    with pytest.raises(DataError, match=r"real must be one image"):
        layout_per_sample(real[None], real)
    with pytest.raises(DataError, match="samples must be"):
        layout_per_sample(real, torch.zeros(2, 1, 24, 32))
