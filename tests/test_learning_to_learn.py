"""Thrun & Pratt's criterion, measured (mil_core.learning_to_learn, notebook 11)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from mil_core import plots
from mil_core.data.mnist_like import load_digits
from mil_core.errors import ConfigError, DataError
from mil_core.learning_to_learn import (hypergan_by_tasks, nested_task_classes, task_split,
                                        tasks_experiment, verdict_table)


def test_task_sets_are_nested_seeded_and_keep_the_unseen_classes_out():
    rare, tasks, unseen = nested_task_classes(10, (1, 3, 7), n_unseen=2, seed=4)
    assert [len(tasks[k]) for k in (1, 3, 7)] == [2, 4, 8]
    assert all(t[0] == rare for t in tasks.values())
    assert tasks[1] == tasks[3][:2] and tasks[3] == tasks[7][:4]
    assert not set(unseen) & set(tasks[7]) and len(unseen) == 2
    assert nested_task_classes(10, (1, 3, 7), 2, 4) == (rare, tasks, unseen)
    assert nested_task_classes(10, (1, 3, 7), 2, 5) != (rare, tasks, unseen)
    with pytest.raises(ConfigError, match="need 11 classes"):
        nested_task_classes(10, (1, 8), n_unseen=2)
    with pytest.raises(ConfigError, match="increasing"):
        nested_task_classes(10, (3, 1))


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_the_rare_class_is_the_same_for_every_k(digits):
    rare, tasks, _ = nested_task_classes(10, (1, 3), seed=0)
    a = task_split(digits, tasks[1], 5, 20, 10, "bg", seed=0)
    b = task_split(digits, tasks[3], 5, 20, 10, "bg", seed=0)
    for part in ("train", "train_clean", "test", "test_clean"):
        sa, sb = getattr(a, part), getattr(b, part)
        ra, rb = sa.images[sa.labels == 0], sb.images[sb.labels == 0]
        assert torch.equal(ra, rb), part
    assert a.sizes == [5, 20] and b.sizes == [5, 20, 20, 20]
    assert a.train.class_counts().tolist() == [5, 20]
    assert b.test.class_counts().tolist() == [10] * 4
    assert b.train.classes[0] == digits.classes[rare]
    assert not torch.equal(a.train.images, a.train_clean.images)      # the nuisance is stored
    c = task_split(digits, tasks[1], 5, 20, 10, "bg", seed=1)
    assert not torch.equal(c.train_clean.images[:5], a.train_clean.images[:5])
    with pytest.raises(DataError, match="needs"):
        task_split(digits, tasks[1], 5, 500, 10, "bg")


def test_experiment_gives_one_row_per_learner_k_seed(digits):
    rows = tasks_experiment("smoke", ks=(1, 2), seeds=(0,), rare_size=5, other_size=10,
                            n_test=6, n_unseen=2, munit_iters=3)
    assert sorted(rows["learner"].unique()) == ["MUNIT", "classifier (CE)",
                                                "classifier (CE+GIT)"]
    assert not rows.duplicated(["learner", "K", "seed"]).any() and len(rows) == 6
    clf = rows[rows["learner"] == "classifier (CE)"].set_index("K")
    assert clf["train_images"].tolist() == [15, 25]
    assert clf["rare_ekld"].ge(0).all() and clf["rare_acc"].between(0, 1).all()
    ratio = clf["rare_ekld"] / clf["other_ekld"].clip(lower=1e-12)
    assert np.allclose(clf["rare_vs_other_ekld"], ratio)
    m = rows[rows["learner"] == "MUNIT"]
    assert m["style_r2_unseen"].notna().all() and m["fidelity_unseen"].ge(0).all()


def _rows(trend):
    """Seed s's slope is trend + 0.02 (s − 2): a spread over seeds centred on the trend."""
    return pd.DataFrame([{"learner": "classifier (CE)", "K": k, "seed": s,
                          "rare_ekld": 1.0 + (trend + 0.02 * (s - 2)) * np.log2(k),
                          "rare_acc": 0.5} for s in range(5) for k in (1, 2, 4, 8)])


@pytest.mark.parametrize("trend, verdict", [(-0.2, "improves"), (0.2, "worsens"),
                                            (0.0, "no clear change")])
def test_verdict_reads_the_slope_against_log_k(trend, verdict):
    v = verdict_table(_rows(trend)).set_index("measure")
    assert v.loc["rare-class eKLD", "verdict"] == verdict
    assert v.loc["rare-class eKLD", "slope per doubling"] == pytest.approx(trend, abs=0.02)
    assert v.loc["rare-class eKLD", "replicates"] == 5
    lo, hi = v.loc["rare-class eKLD", ["ci low", "ci high"]]
    assert lo < v.loc["rare-class eKLD", "slope per doubling"] < hi
    assert v.loc["rare-class accuracy", "verdict"] == "no change (one run)"


def test_hypergan_rows_use_a_training_image_of_every_set():
    q = []
    for n, names in ((2, ["a", "b"]), (4, ["a", "b", "c", "d"])):
        q += [{"set": "train", "N": n, "image": im, "SWD ×1e3": 10.0 * n, "rec / grey": 0.1}
              for im in names]
        q += [{"set": "test", "N": n, "image": im, "SWD ×1e3": 100.0 / n, "rec / grey": 0.9}
              for im in ("x", "y", "z")]
    rows = hypergan_by_tasks(pd.DataFrame(q))
    assert len(rows) == 6 and (rows["fixed_image"] == "a").all()
    assert rows.groupby("K")["test_swd"].mean().tolist() == [50.0, 25.0]
    assert rows.groupby("K")["train_swd"].first().tolist() == [20.0, 40.0]
    with pytest.raises(DataError, match="notebook 07"):
        hypergan_by_tasks(pd.DataFrame({"N": [1]}))


def test_bilevel_diagram_renders_without_a_display():
    fig = plots.bilevel_diagram()
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "inner" in texts and "outer" in texts and "MUNIT" in texts
    fig.canvas.draw()
    assert fig.canvas.buffer_rgba() is not None


def test_feedforward_table_must_exist_and_match_the_profile(tmp_path, monkeypatch):
    from mil_core.learning_to_learn import load_feedforward_quality

    monkeypatch.setenv("MIL_FIGURES_DIR", str(tmp_path))
    with pytest.raises(DataError, match="run notebook 07 at the 'smoke' profile"):
        load_feedforward_quality("smoke")
    (tmp_path / "07_feedforward").mkdir()
    table = pd.DataFrame({"N": [10, 20], "set": "train", "image": "a", "SWD ×1e3": 1.0,
                          "rec / grey": 0.1})
    table.to_csv(tmp_path / "07_feedforward" / "quality_per_image.csv", index=False)
    with pytest.raises(DataError, match="another profile"):
        load_feedforward_quality("smoke")
    assert len(load_feedforward_quality("cpu")) == 2
