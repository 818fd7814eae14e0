"""The GIT sweep helper: splits, the tidy table, and the trend summary."""
import numpy as np
import pandas as pd
import pytest
import torch

from mil_core.classify.sweep import ORACLE, make_split, run_sweep, trend_table
from mil_core.errors import ConfigError


def test_make_split_transforms_stored_images_and_keeps_labels():
    split = make_split("digits", "bg", instance=1, seed=0)
    assert torch.equal(split.train.labels, split.train_clean.labels)
    assert not torch.equal(split.train.images, split.train_clean.images)   # BG fills the 0s
    assert torch.equal(split.test.labels, split.test_clean.labels)
    # balanced test split, long-tailed train split with the preset's sizes
    assert split.test_clean.class_counts().tolist() == [30] * 10
    assert sorted(split.sizes, reverse=True) == [140, 49, 26, 17, 12, 9, 7, 6, 5, 5]
    assert split.train.class_counts().tolist() == split.sizes
    # rank 1 is the largest class
    head = split.ranks.index(1)
    assert split.sizes[head] == max(split.sizes)
    # another instance permutes which class is the head, the test split stays
    other = make_split("digits", "bg", instance=2, seed=0)
    assert other.sizes != split.sizes
    assert torch.equal(other.test_clean.images, split.test_clean.images)


def test_run_sweep_gives_one_row_per_class_and_run():
    table = run_sweep("smoke", datasets=["digits"], transforms=["rot"], rules=["erm"],
                      oracle=True, show_progress=False)
    assert len(table) == 10 * 2                               # 10 classes × (erm + oracle)
    assert set(table["rule"]) == {"erm", ORACLE}
    for col in ("dataset", "transform", "instance", "class_size", "class_rank", "ekld",
                "consistency", "ci_low", "ci_high", "class_acc", "acc", "balanced_acc"):
        assert col in table.columns
    erm = table[table.rule == "erm"].sort_values("class_index")
    assert erm["class_size"].tolist() == make_split("digits", "rot", 0, 0).sizes
    assert (table["ekld"] >= 0).all() and (table["ci_low"] <= table["ekld"] + 1e-12).all()
    assert table["consistency"].between(0, 1).all()


def test_trend_table_detects_falling_ekld():
    sizes = np.array([100, 50, 20, 10, 5])
    rows = []
    for inst in range(2):
        for rule, ekld in (("erm", 1.0 / sizes), ("oracle", np.full(5, 0.01))):
            for c, (n, e) in enumerate(zip(sizes, ekld)):
                rows.append({"dataset": "d", "transform": "rot", "rule": rule, "instance": inst,
                             "class_size": n, "ekld": e, "acc": 0.5, "balanced_acc": 0.4})
    trend = trend_table(pd.DataFrame(rows)).set_index("rule")
    assert trend.loc["erm", "spearman(log size, eKLD)"] == pytest.approx(-1.0)
    assert trend.loc["erm", "smallest / largest"] == pytest.approx(20.0)
    assert np.isnan(trend.loc["oracle", "spearman(log size, eKLD)"])   # flat: no ranking
    assert trend.loc["oracle", "smallest / largest"] == pytest.approx(1.0)


def test_bad_sweep_arguments_fail_early():
    with pytest.raises(ConfigError, match="unknown rule"):
        run_sweep("smoke", datasets=["digits"], rules=["balanced"], show_progress=False)
    with pytest.raises(ConfigError, match="transform"):
        run_sweep("smoke", datasets=["digits"], transforms=["blur"], show_progress=False)
    with pytest.raises(ConfigError, match="instances"):
        run_sweep("smoke", datasets=["digits"], instances=0, show_progress=False)
