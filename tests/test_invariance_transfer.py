"""What GIT's generative model holds (mil_core.invariance_transfer), with stand-in models."""
import pytest
import torch

from mil_core.classify import ClassifierConfig, train_classifier
from mil_core.classify.sweep import make_split
from mil_core.errors import ConfigError, DataError
from mil_core.invariance_transfer import content_kept, style_readout, transform_targets


class MedianStyle:
    """A style encoder that reads BG's level exactly: the median pixel (the background covers
    more than half of every digit) and 7 columns of noise."""

    def encode(self, x):
        g = torch.Generator().manual_seed(0)
        med = ((x + 1) / 2).flatten(1).median(dim=1).values[:, None]          # (B, 1)
        return None, torch.cat([med, torch.randn(x.shape[0], 7, generator=g)], 1)


class NoiseStyle:
    def encode(self, x):
        return None, torch.randn(x.shape[0], 8, generator=torch.Generator().manual_seed(1))


class Swap:
    """translate: the identity, or a black image (every class destroyed)."""

    def __init__(self, black: bool) -> None:
        self.black = black

    def translate(self, x, generator=None):
        return -torch.ones_like(x) if self.black else x


@pytest.fixture(scope="module")
def digits():
    return make_split("digits", "bg", instance=0, seed=0)


def test_transform_targets():
    assert transform_targets("bg", {"value": torch.tensor([3, 99])}).tolist() == [[3.0], [99.0]]
    t = transform_targets("dil", {"dilate": torch.tensor([True, False]),
                                  "size": torch.tensor([4, 2])})
    assert t.tolist() == [[4.0], [-2.0]]
    r = transform_targets("rot", {"angle": torch.tensor([90.0])})
    assert r[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    with pytest.raises(ConfigError, match="no parameter targets"):
        transform_targets("identity", {})


def test_style_readout_recovers_a_parameter_the_style_holds(digits):
    held = style_readout(MedianStyle(), digits.test_clean, "bg", seed=0)
    assert held["param R²"] > 0.99 and held["n"] == len(digits.test_clean)
    none = style_readout(NoiseStyle(), digits.test_clean, "bg", seed=0)
    assert none["param R²"] < 0.1
    assert none["class accuracy"] < none["chance"] + 0.15                 # noise holds no class
    with pytest.raises(DataError, match="at least 4"):
        style_readout(NoiseStyle(), digits.test_clean.subset(torch.arange(2)), "bg")


def test_content_kept_sees_a_swap_that_destroys_the_class(digits):
    cfg = ClassifierConfig(model="smallcnn", epochs=4, batch_size=32, warmup_epochs=1,
                           lr_steps=(0.75, 1.0), eval_every=0, seed=0)
    clf = train_classifier(digits.test_clean, None, cfg, device="cpu").model
    same = content_kept(Swap(False), clf, digits.test_clean)
    assert same["acc translated"] == pytest.approx(same["acc real"])
    assert same["acc real"] > 0.5
    black = content_kept(Swap(True), clf, digits.test_clean)
    assert black["acc translated"] <= 0.2 < black["acc real"]             # one class at most
    assert len(black["per class translated"]) == 10
