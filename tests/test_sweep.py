"""The GIT sweep helper: splits, the tidy table, and the trend summary."""
import numpy as np
import pandas as pd
import pytest
import torch

import mil_core.classify.sweep as sweep
from mil_core.classify.sweep import (ORACLE, make_split, oracle_name, run_sweep, slope_table,
                                     sweep_runs, trend_table)
from mil_core.errors import ConfigError
from mil_core.metrics.ekld import CONFIDENCE_COLUMNS


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
    assert len(table) == 10 * 2                               # 10 classes × (erm + erm+oracle)
    assert set(table["rule"]) == {"erm", "erm+oracle"} and oracle_name("erm") == "erm+oracle"
    assert ORACLE in oracle_name("drs")
    for col in ("dataset", "transform", "instance", "train_rule", "oracle", "class_size",
                "class_rank", "ekld", "consistency", "ci_low", "ci_high", "class_acc", "acc",
                "balanced_acc", "bn_stats", *CONFIDENCE_COLUMNS):
        assert col in table.columns
    assert (table["train_rule"] == "erm").all()
    assert table.groupby("rule")["oracle"].first().to_dict() == {"erm": False, "erm+oracle": True}
    erm = table[table.rule == "erm"].sort_values("class_index")
    assert erm["class_size"].tolist() == make_split("digits", "rot", 0, 0).sizes
    assert (table["ekld"] >= 0).all() and (table["ci_low"] <= table["ekld"] + 1e-12).all()
    assert table["consistency"].between(0, 1).all()
    for col in ("entropy_clean", "entropy_transformed"):     # nats, between 0 and log 10
        assert table[col].between(0, np.log(10) + 1e-9).all(), col
    for col in ("max_prob_clean", "max_prob_transformed"):
        assert table[col].between(0.1 - 1e-9, 1).all(), col
    for col in ("acc_clean", "acc_transformed"):
        assert table[col].between(0, 1).all(), col


def test_sweep_runs_one_oracle_per_rule():
    assert sweep_runs(["erm", "drs"], True) == [("erm", "erm", False), ("drs", "drs", False),
                                                ("erm+oracle", "erm", True),
                                                ("drs+oracle", "drs", True)]
    assert sweep_runs(["erm", "resample", "drs"], ("drs",)) == [
        ("erm", "erm", False), ("resample", "resample", False), ("drs", "drs", False),
        ("drs+oracle", "drs", True)]
    assert sweep_runs(["erm"], ("drw",))[-1] == ("drw+oracle", "drw", True)   # any rule
    assert sweep_runs(["erm", "drs"], False) == [("erm", "erm", False), ("drs", "drs", False)]
    assert sweep_runs(["erm", "drs"], True, oracle_rule="erm")[-1] == ("erm+oracle", "erm", True)
    with pytest.raises(ConfigError, match="unknown rule"):
        sweep_runs(["erm"], ("balanced",))
    with pytest.raises(ConfigError, match="string"):
        sweep_runs(["erm"], "drs")
    with pytest.raises(ConfigError, match="repeats"):
        sweep_runs(["erm", "erm"], False)


def test_each_oracle_trains_with_its_own_rule_on_clean_images(monkeypatch):
    """drs+oracle is DRS on the clean images with the true transform on every batch; drs is
    DRS on the stored transformed images; both with the same seed."""
    calls = []
    real = sweep.train_classifier

    def spy(train, test, cfg, **kw):
        calls.append((cfg.rule, cfg.oracle, cfg.seed, train.name))
        return real(train, test, cfg, **kw)

    monkeypatch.setattr(sweep, "train_classifier", spy)
    table = run_sweep("smoke", datasets=["digits"], transforms=["bg"], rules=["erm", "drs"],
                      oracle=True, show_progress=False)
    split = make_split("digits", "bg", 0, 0)
    assert calls == [("erm", None, 0, split.train.name), ("drs", None, 0, split.train.name),
                     ("erm", "bg", 0, split.train_clean.name),
                     ("drs", "bg", 0, split.train_clean.name)]
    assert list(table.drop_duplicates("rule")["rule"]) == ["erm", "drs", "erm+oracle",
                                                            "drs+oracle"]
    assert table.drop_duplicates("rule")["train_rule"].tolist() == ["erm", "drs", "erm", "drs"]
    calls.clear()
    run_sweep("smoke", datasets=["digits"], transforms=["bg"], rules=["erm", "drs"],
              oracle=("drs",), show_progress=False)
    assert [c[:2] for c in calls] == [("erm", None), ("drs", None), ("drs", "bg")]


def test_instance_bn_stats_reestimate_and_reevaluate(monkeypatch):
    calls = []
    real = sweep.recompute_bn_stats

    def spy(model, data, **kw):
        calls.append((data.name, kw["balanced"], kw["transform"]))
        return real(model, data, **kw)

    monkeypatch.setattr(sweep, "recompute_bn_stats", spy)
    kw = dict(datasets=["digits"], transforms=["rot"], rules=["erm"], oracle=True,
              show_progress=False)
    running = run_sweep("smoke", **kw)
    assert calls == [] and (running["bn_stats"] == "running").all()
    instance = run_sweep("smoke", bn_stats="instance", **kw)
    split = make_split("digits", "rot", 0, 0)
    assert calls == [(split.train.name, False, None), (split.train_clean.name, False, "rot")]
    assert (instance["bn_stats"] == "instance").all()
    assert not np.allclose(instance["ekld"], running["ekld"])     # the model's BN changed
    # both from the same trained classifiers: the running rows equal the plain sweep's
    calls.clear()
    both = run_sweep("smoke", bn_stats=("running", "instance"), **kw)
    assert len(calls) == 2 and len(both) == 2 * len(running)
    cols = ["rule", "class_index", "ekld", "entropy_clean", "class_acc", "balanced_acc"]
    for bn, ref in (("running", running), ("instance", instance)):
        got = both[both.bn_stats == bn][cols].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref[cols].reset_index(drop=True))
    trend = trend_table(both)
    assert len(trend) == 4 and set(trend["bn_stats"]) == {"running", "instance"}
    for bad in ("test", (), ("running", "running")):
        with pytest.raises(ConfigError, match="bn_stats"):
            run_sweep("smoke", bn_stats=bad, **kw)


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


def test_trend_table_reports_tail_accuracy_and_entropy():
    rows = []
    for c, (n, e, acc, h) in enumerate(zip([100, 10, 5], [0.1, 0.2, 0.05], [0.9, 0.5, 0.0],
                                           [0.2, 1.0, 2.0])):
        rows.append({"dataset": "d", "transform": "rot", "rule": "erm", "instance": 0,
                     "class_size": n, "ekld": e, "class_acc": acc, "entropy_clean": h,
                     "acc": 0.5, "balanced_acc": 0.47})
    trend = trend_table(pd.DataFrame(rows)).iloc[0]
    assert trend["acc smallest class"] == 0.0 and trend["acc largest class"] == 0.9
    assert trend["entropy smallest class"] == 2.0 and trend["entropy largest class"] == 0.2
    assert trend["smallest / largest"] == pytest.approx(0.5)   # low tail eKLD: never predicted


def test_bad_sweep_arguments_fail_early():
    with pytest.raises(ConfigError, match="unknown rule"):
        run_sweep("smoke", datasets=["digits"], rules=["balanced"], show_progress=False)
    with pytest.raises(ConfigError, match="transform"):
        run_sweep("smoke", datasets=["digits"], transforms=["blur"], show_progress=False)
    with pytest.raises(ConfigError, match="instances"):
        run_sweep("smoke", datasets=["digits"], instances=0, show_progress=False)
    with pytest.raises(ConfigError, match="set by the sweep"):
        run_sweep("smoke", datasets=["digits"], rule="drs", show_progress=False)
    with pytest.raises(ConfigError, match="unknown setting"):
        run_sweep("smoke", datasets=["digits"], learning_rate=0.1, show_progress=False)


def _power_law_table(slope: float, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = np.array([200, 80, 30, 12, 5])
    rows = []
    for inst in range(3):
        for n in sizes:
            e = 0.3 * n ** slope * 10 ** (noise * rng.standard_normal())
            rows.append({"dataset": "d", "transform": "rot", "rule": "erm", "instance": inst,
                         "class_size": n, "ekld": e})
    return pd.DataFrame(rows)


def test_slope_table_recovers_a_power_law_and_its_interval():
    exact = slope_table(_power_law_table(-0.5)).iloc[0]
    assert exact["slope"] == pytest.approx(-0.5) and exact["intercept"] == pytest.approx(
        np.log10(0.3))
    assert exact["ci high"] - exact["ci low"] == pytest.approx(0.0, abs=1e-9)
    assert bool(exact["falls"]) and exact["points"] == 15
    # a flat curve with noise: the interval straddles 0, so it does not "fall"
    flat = slope_table(_power_law_table(0.0, noise=0.3)).iloc[0]
    assert flat["ci low"] < 0 < flat["ci high"] and not bool(flat["falls"])
    # a wider level gives a wider interval around the same slope
    narrow = slope_table(_power_law_table(-0.2, noise=0.3), level=0.5).iloc[0]
    wide = slope_table(_power_law_table(-0.2, noise=0.3), level=0.99).iloc[0]
    assert narrow["slope"] == pytest.approx(wide["slope"])
    assert wide["ci high"] - wide["ci low"] > 2 * (narrow["ci high"] - narrow["ci low"])


def test_slope_table_floors_zero_ekld_and_rejects_bad_input():
    t = _power_law_table(-1.0)
    t.loc[0, "ekld"] = 0.0                                      # a class with eKLD exactly 0
    assert np.isfinite(slope_table(t).iloc[0]["slope"])
    with pytest.raises(ConfigError, match="ekld"):
        slope_table(t.drop(columns="ekld"))
    with pytest.raises(ConfigError, match="level"):
        slope_table(t, level=1.5)


def test_git_rows_use_the_split_s_augmenter_and_mark_themselves():
    from mil_core.classify.sweep import GIT, git_name, train_augmenter
    calls = []

    class Recorder:
        """A stand-in MUNIT: returns the images unchanged and counts the images it translated."""
        def translate(self, x, generator=None):
            calls.append(x.shape[0])
            return x

        def state_dict(self):
            return {"w": torch.zeros(1)}

    table = run_sweep("smoke", datasets=["digits"], transforms=["rot"], rules=["drs"],
                      oracle=False, git=["drs"], augmenters={("digits", "rot", 0): Recorder()},
                      show_progress=False, epochs=3, warmup_epochs=1, lr_steps=(0.34, 0.67))
    assert set(table["rule"]) == {"drs", git_name("drs")} and GIT in git_name("erm")
    assert table.groupby("rule")["git"].first().to_dict() == {"drs": False, "drs+git": True}
    assert sum(calls) > 0                                     # epochs 1 and 2 were augmented
    with pytest.raises(ConfigError, match="git must be distinct rules"):
        run_sweep("smoke", datasets=["digits"], git=["gan"], show_progress=False)
    munit = train_augmenter(make_split("digits", "rot", 0, 0), "smoke", seed=0)
    assert munit.config.iters == 20 and len(munit.history) > 0
