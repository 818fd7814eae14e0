"""mil_core.metrics.leakage: whose patches a sample is made of (MIL Prop. 2)."""
import pytest
import torch

from mil_core.errors import DataError
from mil_core.metrics.leakage import leakage, leakage_floor, patch_owners


def _palette_images(n: int = 3, h: int = 20, w: int = 24):
    """n textured images with different palettes: their patches are far apart."""
    g = torch.Generator().manual_seed(0)
    imgs = []
    for k in range(n):
        base = torch.tensor([[-0.8, 0.0, 0.8][(k + c) % 3] for c in range(3)])[:, None, None]
        imgs.append((base + 0.2 * torch.rand(3, h, w, generator=g)).clamp(-1, 1))
    return imgs


def test_copies_of_their_own_image_do_not_leak():
    reals = _palette_images()
    out = leakage([r[None].repeat(2, 1, 1, 1) for r in reals], reals, n_boot=50)
    assert out.mean == 0.0 and out.ci == (0.0, 0.0)
    torch.testing.assert_close(out.matrix, torch.eye(3))
    assert out.chance == pytest.approx(2 / 3)


def test_copies_of_another_image_leak_completely_and_rows_sum_to_one():
    reals = _palette_images()
    swapped = [reals[(i + 1) % 3][None] for i in range(3)]     # image i's "samples" are i+1's
    out = leakage(swapped, reals, n_boot=50)
    assert out.mean == 1.0
    torch.testing.assert_close(out.matrix.sum(dim=1), torch.ones(3))
    assert out.matrix[0, 1] == 1.0 and out.matrix[2, 0] == 1.0


def test_half_mixed_samples_leak_about_half_with_an_interval_around_it():
    reals = _palette_images(2, 24, 24)
    mixed = []
    for i in range(2):
        s = reals[i].clone()
        s[:, :, 12:] = reals[1 - i][:, :, 12:]                    # right half from the other
        mixed.append(s[None])
    out = leakage(mixed, reals, n_boot=200)
    assert 0.3 < out.mean < 0.7
    assert out.ci[0] < out.mean < out.ci[1]


def test_floor_is_low_for_distinct_palettes():
    reals = _palette_images()
    floor = leakage_floor(reals, n_boot=20)
    assert floor.mean < 0.05 and floor.matrix.shape == (3, 3)


def test_owners_and_bad_input():
    reals = _palette_images(2)
    owners = patch_owners(reals[1][None], reals, max_patches=10)
    assert owners.shape == (10,) and (owners == 1).all()
    with pytest.raises(DataError, match="at least 2"):
        leakage([reals[0][None]], reals[:1])
    with pytest.raises(DataError, match="one set of samples per real image"):
        leakage([reals[0][None]], reals)
    with pytest.raises(DataError, match="smaller than the patch size"):
        patch_owners(reals[0][None], [torch.zeros(3, 4, 4), reals[0]])
