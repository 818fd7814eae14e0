"""The ablation experiment (mil_core.ablations): one config field per variant, measures after
every scale, and the seed summary's closed form."""
import math

import pandas as pd
import pytest
import torch

from mil_core.ablations import VARIANTS, seed_summary, train_variant, variant_config
from mil_core.errors import ConfigError


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]


def test_each_variant_changes_one_field_of_the_proposed_config():
    base = variant_config("smoke", "hyper-critic", 3).to_dict()
    for name, fields in VARIANTS.items():
        cfg = variant_config("smoke", name, 3).to_dict()
        changed = {k for k in cfg if cfg[k] != base[k]}
        assert changed == set(fields), name
        assert cfg["batch_size"] == 3
    with pytest.raises(ConfigError, match="unknown ablation variant"):
        variant_config("smoke", "shared everything", 3)


def test_a_run_is_measured_after_every_scale_and_at_the_end():
    run = train_variant(_images(), "smoke", "shared critic", seed=0, n_samples=2,
                        iters_per_scale=3)
    assert [r["scale"] for r in run.per_scale] == list(range(run.model.n_scales))
    for row in run.per_scale + [run.final]:
        assert 0.0 <= row["leakage"] <= 1.0 and row["ci low"] <= row["leakage"] <= row["ci high"]
        assert row["chance"] == 0.5 and row["input sensitivity"] >= 0.0
    assert run.leakage.matrix.sum(dim=1).allclose(torch.ones(2))
    assert abs(run.final["mismatch gap"]) < 1e-6          # one critic cannot tell whose samples
    assert run.seconds > 0


def test_seed_summary_is_the_mean_and_a_t_interval():
    rows = pd.DataFrame({"variant": ["a", "a", "a", "b"], "x": [1.0, 2.0, 3.0, 5.0]})
    s = seed_summary(rows, ["x"])
    assert list(s.index) == ["a", "b"] and s.loc["a", "seeds"] == 3
    assert s.loc["a", "x"] == pytest.approx(2.0)
    assert s.loc["a", "x ±"] == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isnan(s.loc["b", "x ±"])


def test_the_shared_critic_trains_and_resumes_in_the_minibatch_regime(tmp_path):
    from mil_core.models.hypergan_train import train_hypergan

    cfg = variant_config("smoke", "shared critic", 2, iters_per_scale=4, checkpoint_every=2)
    assert cfg.discriminator == "shared" and cfg.batch_size == 2
    full = train_hypergan(_images(), cfg, seed=0, device="cpu", show_progress=False)

    def stop(model, step):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_hypergan(_images(), cfg, seed=0, device="cpu", show_progress=False,
                       checkpoint_dir=tmp_path, step_callback=stop)
    resumed = train_hypergan(_images(), cfg, seed=0, device="cpu", show_progress=False,
                             checkpoint_dir=tmp_path, resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
