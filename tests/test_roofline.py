"""mil_core.roofline: FLOP counting that survives a double backward, and the peak timers."""
import torch
import torch.nn.functional as F

from mil_core.losses import gradient_penalty
from mil_core import roofline as R
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


def test_replay_times_each_recorded_call_of_a_conv_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, stride=2), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 7 * 7, 4))
    x = torch.randn(2, 3, 16, 16)
    with R.FlopCount() as counter:
        net(x).sum().backward()
    kinds = {f._overloadpacket.__name__ for f, _, _ in counter.calls}
    assert {"convolution", "convolution_backward", "addmm", "mm"} <= kinds
    assert sum(counter.calls.values()) >= 5        # 2 convs, their backwards, linear fwd + bwd
    t = R.replay_seconds(counter, repeat=2)
    assert set(t) == {"conv", "mm", "other"} and t["conv"] > 0 and t["mm"] > 0


def test_replay_rebuilds_strided_and_broadcast_tensors():
    a = torch.randn(4, 6).t()                       # a transposed view
    b = torch.randn(1, 5).expand(4, 5)              # stride 0
    with R.FlopCount() as counter:
        torch.mm(a, b)
    (func, sig, _), = counter.calls
    rebuilt = R._materialise(sig, torch.Generator().manual_seed(0))
    assert rebuilt[0].shape == (6, 4) and rebuilt[0].stride() == a.stride()
    assert rebuilt[1].stride() == (0, 1)
    assert R.replay_seconds(counter, repeat=1)["mm"] > 0
