import random

import numpy as np
import pytest
import torch

from mil_core.checkpoint import load_checkpoint, save_checkpoint
from mil_core.errors import ConfigError
from mil_core.runtime import (environment_report, get_device, get_rng_state, progress,
                              seed_everything, set_rng_state, set_threads)


def _draw(gen):
    return (random.random(), float(np.random.rand()), float(torch.rand(1)),
            float(torch.rand(1, generator=gen)))


def test_seed_everything_seeds_all_rngs_and_returns_generator():
    a = _draw(seed_everything(123))
    b = _draw(seed_everything(123))
    c = _draw(seed_everything(124))
    assert a == b
    assert all(x != y for x, y in zip(a, c))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match="seed"):
        seed_everything(bad)


def test_rng_state_survives_a_checkpoint_round_trip(tmp_path):
    gen = seed_everything(7)
    _draw(gen)
    state = get_rng_state(gen)
    expected = _draw(gen)
    save_checkpoint(tmp_path / "rng.safetensors", {"rng": state})
    _draw(gen), _draw(gen)  # move every stream on
    set_rng_state(load_checkpoint(tmp_path / "rng.safetensors")["rng"], gen)
    assert _draw(gen) == expected


def test_device_order_and_override(monkeypatch):
    monkeypatch.delenv("MIL_DEVICE", raising=False)
    dev = get_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev.type == "cpu"
    monkeypatch.setenv("MIL_DEVICE", "cpu")
    assert get_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            get_device("cuda")


def test_set_threads_explicit_and_from_env(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("MIL_THREADS", "2")
        assert set_threads() == 2 and torch.get_num_threads() == 2
        with pytest.raises(ConfigError):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_progress_wraps_iterables_and_can_be_disabled(monkeypatch, capsys):
    monkeypatch.setenv("MIL_PROGRESS", "0")
    assert list(progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    monkeypatch.setenv("MIL_PROGRESS", "1")
    monkeypatch.setenv("MIL_BATCH", "1")
    bar = progress(range(4), total=4, desc="steps")
    assert sum(bar) == 6
    out = capsys.readouterr().out   # under papermill: one line when the loop ends, not a bar
    assert out.count("\n") == 1 and out.startswith("steps: 4 it in ") and "it/s" in out
    bar = progress(range(10, 13), total=5, desc="scale 1")
    for i in bar:
        bar.set_postfix(rec=f"{i / 100:.2f}", refresh=False)
    out = capsys.readouterr().out
    assert out.startswith("scale 1: 3/5 it in ") and out.rstrip().endswith("[rec=0.12]")
    assert sum(progress(range(3), desc="quiet")) == 3 and "rec=0.12" not in capsys.readouterr().out


def test_environment_report_names_versions():
    rep = environment_report()
    assert rep["torch"] == torch.__version__
    assert rep["device"] in {"cpu", "cuda", "mps"}
    assert int(rep["torch threads"]) >= 1


def test_notebook_setup_prints_profile_and_machine(capsys, monkeypatch):
    import torch

    from mil_core.runtime import notebook_setup

    monkeypatch.setenv("MIL_THREADS", "1")
    monkeypatch.setenv("MIL_DEVICE", "cpu")
    before = torch.get_num_threads()
    try:
        s = notebook_setup("smoke", seed=3)
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("profile: smoke")
    assert out[1].startswith("machine: ") and out[1].endswith("1 torch thread(s); device cpu; seed 3")
    assert (s.profile.name, s.threads, s.device.type, s.seed) == ("smoke", 1, "cpu", 3)
    assert torch.equal(torch.rand(4, generator=s.gen),
                       torch.rand(4, generator=torch.Generator().manual_seed(3)))
