"""GIT's augmentation in the classifier trainer (Zhou et al. Sec. 4; REFERENCE §6)."""
import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from mil_core.checkpoint import checkpoint_metadata
from mil_core.classify import CHECKPOINT_NAME, ClassifierConfig, train_classifier
from mil_core.classify.trainer import git_augment, git_epoch, git_keep_probability
from mil_core.data.longtail import make_long_tailed
from mil_core.data.mnist_like import load_digits
from mil_core.errors import ConfigError

FAST = ClassifierConfig(model="smallcnn", epochs=3, batch_size=64, warmup_epochs=1,
                        lr_steps=(0.34, 0.67), eval_every=0, seed=3)


class Whiten(nn.Module):
    """A stand-in augmenter: every translation is a white image (+1), style drawn and ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.calls = 0

    def translate(self, x, generator=None):
        assert x.min() >= -1 and x.max() <= 1 and not torch.is_grad_enabled()
        self.calls += 1
        torch.randn(x.shape[0], 8, generator=generator)
        return torch.ones_like(x) * self.scale.detach()


@pytest.fixture(scope="module")
def digits_lt():
    train, test, sizes = make_long_tailed(load_digits(), "digits", 0)
    return train, test, sizes


def test_git_augment_replaces_exactly_the_fraction_and_leaves_the_input():
    x = torch.rand(10, 1, 8, 8) * 0.5
    y = torch.arange(10) % 3
    before = x.clone()
    out, n = git_augment(x, y, Whiten(), 0.5, torch.ones(3), torch.Generator().manual_seed(0))
    assert n == 5 and torch.equal(x, before)
    white = (out == 1).flatten(1).all(1)
    assert int(white.sum()) == 5 and torch.equal(out[~white], x[~white])
    out, n = git_augment(x, y, Whiten(), 0.5, torch.tensor([1.0, 0.0, 0.0]),
                         torch.Generator().manual_seed(0))
    white = (out == 1).flatten(1).all(1)
    assert int(white.sum()) == n and (y[white] == 0).all()            # only class 0 may change
    assert git_augment(x, y, Whiten(), 0.0, torch.ones(3), torch.Generator())[1] == 0


def test_keep_probability_closed_form():
    p = git_keep_probability([100, 20, 5], threshold=50)
    assert p.tolist() == pytest.approx([0.0, 30 / 45, 1.0])
    assert git_keep_probability([100, 20, 5], None).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="must exceed the smallest class"):
        git_keep_probability([100, 20, 5], threshold=5)


def test_training_replaces_the_fraction_of_every_batch_from_the_first_lr_step(digits_lt):
    train, test, sizes = digits_lt
    cfg = dataclasses.replace(FAST, git_fraction=0.5)
    assert git_epoch(cfg) == 1 and git_epoch(FAST) is None
    aug = Whiten()
    run = train_classifier(train, None, cfg, device="cpu", augmenter=aug)
    n = len(train)
    per_epoch = sum(int(round(0.5 * min(64, n - s))) for s in range(0, n, 64))
    assert [row["generated"] for row in run.history] == [0, per_epoch, per_epoch]
    assert aug.calls == 2 * math.ceil(n / 64)                          # one batched call per step
    plain = train_classifier(train, None, FAST, device="cpu")
    assert [row["generated"] for row in plain.history] == [0, 0, 0]
    # the first epoch is the same run; from the switch on the batches differ
    assert plain.history[0]["train_loss"] == run.history[0]["train_loss"]
    assert plain.history[1]["train_loss"] != run.history[1]["train_loss"]


def test_git_needs_an_augmenter_and_a_valid_fraction(digits_lt):
    train, _, _ = digits_lt
    with pytest.raises(ConfigError, match="needs a trained augmenter"):
        train_classifier(train, None, dataclasses.replace(FAST, git_fraction=0.5), device="cpu")
    with pytest.raises(ConfigError, match="git_fraction must be in"):
        dataclasses.replace(FAST, git_fraction=1.5)
    with pytest.raises(ConfigError, match="git_threshold"):
        dataclasses.replace(FAST, git_threshold=0)


class _Stop(Exception):
    pass


def test_resume_with_git_equals_uninterrupted(digits_lt, tmp_path):
    train, _, _ = digits_lt
    cfg = dataclasses.replace(FAST, git_fraction=0.5, git_threshold=100)
    full = train_classifier(train, None, cfg, device="cpu", augmenter=Whiten(),
                            checkpoint_dir=tmp_path / "a")

    def stop(row):
        if row["epoch"] == 1:
            raise _Stop
    with pytest.raises(_Stop):
        train_classifier(train, None, cfg, device="cpu", augmenter=Whiten(),
                         checkpoint_dir=tmp_path / "b", callback=stop)
    assert checkpoint_metadata(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 2
    resumed = train_classifier(train, None, cfg, device="cpu", augmenter=Whiten(),
                               checkpoint_dir=tmp_path / "b", resume=True)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["generated"] for r in resumed.history] == [r["generated"] for r in full.history]
    other = Whiten()
    with torch.no_grad():
        other.scale.fill_(0.5)
    with pytest.raises(Exception, match="other data"):
        train_classifier(train, None, cfg, device="cpu", augmenter=other,
                         checkpoint_dir=tmp_path / "b", resume=True)
