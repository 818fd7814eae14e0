"""Feed-forward modelling of unseen images (mil_core.feedforward)."""
import warnings

import pytest
import torch

from mil_core.errors import ConfigError, NoveltyWarning
from mil_core.feedforward import conditioning_gap, cosine_spread, held_out_split, quality_rows


def test_the_gap_is_others_minus_own_and_leaves_the_model_unchanged(tiny_hypergan):
    model, _, _ = tiny_hypergan
    g = torch.Generator().manual_seed(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unseen = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(3)]
    df = conditioning_gap(model, unseen, n_samples=2)
    assert list(df["image"]) == [0, 1, 2]
    assert (df["gap"] - (df["others"] - df["own"])).abs().max() < 1e-9
    assert (df["own"] > 0).all() and (df["novelty"] >= 0).all()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(not p.requires_grad for p in model.parameters())       # feed-forward: no grads
    with pytest.raises(ConfigError, match="at least 2"):
        conditioning_gap(model, unseen[:1])


def test_held_out_split_keeps_the_test_set_fixed_and_training_sets_nested():
    items = list(range(12))
    test, train = held_out_split(items, 3, [2, 5, 9])
    assert test == [9, 10, 11]
    assert train == {2: [0, 1], 5: [0, 1, 2, 3, 4], 9: list(range(9))}
    assert all(not set(t) & set(test) for t in train.values())
    assert items == list(range(12))                                   # the input is untouched
    with pytest.raises(ConfigError, match="need 13 items, the collection has 12"):
        held_out_split(items, 3, [10])
    with pytest.raises(ConfigError, match="increasing"):
        held_out_split(items, 3, [5, 2])
    with pytest.raises(ConfigError, match="n_test"):
        held_out_split(items, 0, [2])


def test_quality_rows_measure_each_image_and_compare_with_flat_grey(tiny_hypergan):
    model, imgs, unseen = tiny_hypergan
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoveltyWarning)                # the score is a column
        df = quality_rows(model, imgs + [unseen], ["a", "b", "new"], n_samples=2, n_diversity=3)
    assert list(df["image"]) == ["a", "b", "new"]
    real = model.pyramid([unseen])[-1][0]
    rec = model.reconstruct([unseen])[0]
    mse = float(((rec - real) ** 2).mean())
    assert df.loc[2, "rec MSE"] == pytest.approx(mse, rel=1e-6)
    assert df.loc[2, "rec / grey"] == pytest.approx(mse / float(real.pow(2).mean()), rel=1e-6)
    assert (df[["SWD ×1e3", "layout", "diversity", "novelty"]] >= 0).all().all()
    with pytest.raises(ConfigError, match="2 images but 1 names"):
        quality_rows(model, imgs, ["a"], n_samples=2, n_diversity=2)


def test_cosine_spread_is_one_for_parallel_rows_and_zero_for_orthogonal_ones():
    assert cosine_spread(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])) == pytest.approx(1.0)
    assert cosine_spread(torch.eye(4)) == pytest.approx(0.0)
    assert cosine_spread(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    with pytest.raises(ConfigError, match="B >= 2"):
        cosine_spread(torch.ones(1, 3))
