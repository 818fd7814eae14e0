"""mil_core.roofline: FLOP counting that survives a double backward, and the peak timers."""
import torch
import torch.nn.functional as F

from mil_core.losses import gradient_penalty
from mil_core.roofline import FlopCount, conv_peak, matmul_peak


def test_flop_count_matches_closed_forms():
    a, b = torch.randn(4, 6), torch.randn(6, 5)
    with FlopCount() as fc:
        a @ b
    assert fc.split() == (0.0, 2 * 4 * 6 * 5, 0.0)
    x, w = torch.randn(2, 3, 8, 10), torch.randn(7, 3, 3, 3)
    with FlopCount() as fc:
        F.conv2d(x, w, padding=1)
    assert fc.split()[0] == 2 * 2 * 7 * 3 * 9 * 8 * 10


def test_flop_count_runs_through_the_gradient_penalty():
    critic = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.LeakyReLU(0.2),
                                 torch.nn.Conv2d(4, 1, 3, padding=1))
    real, fake = torch.randn(1, 3, 12, 12), torch.randn(1, 3, 12, 12)
    with FlopCount() as fc:
        gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
        gp.backward()
    conv, mm, _ = fc.split()
    one_forward = 2 * (4 * 3 * 9 + 1 * 4 * 9) * 144
    assert conv > 3 * one_forward and mm == 0.0              # forward, grad, and double backward


def test_peaks_are_positive_rates():
    assert conv_peak(1, 4, 8, 8) > 0 and conv_peak(1, 4, 8, 8, groups=2) > 0
    assert matmul_peak(2, 8, 16) > 0
