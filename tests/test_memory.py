"""Peak memory of a hyper-GAN (mil_core.memory): closed-form parameter and state counts match
the built model, and the measured process peaks are ordered as they must be (a training run
needs more than torch and the images alone; MIL-size heads need more than compact ones)."""
from __future__ import annotations

import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.memory import head_parameter_counts, peak_memory, training_state_bytes
from mil_core.models.hypergan import HyperGAN, HyperGANConfig


def cfg(**kw) -> HyperGANConfig:
    # smoke sizes with wide primaries, so that the heads dominate what a step allocates
    return HyperGANConfig.from_profile("smoke", "minibatch", 2, channels=48, embed_dim=64, **kw)


def test_closed_form_counts_match_the_built_model():
    for kw in ({}, {"head_rank": 4}, {"head_layers": 3, "encoder_frozen": True}):
        c = cfg(**kw)
        model = HyperGAN(c)
        for _ in range(model.n_scales):
            model.G.add_head()
        counts = head_parameter_counts(c)
        assert counts["G heads"] == sum(model.head_parameters())
        assert counts["D heads"] == sum(p.numel() for p in model.D.heads.parameters())
        assert counts["encoder"] == sum(p.numel() for p in model.G.encoder.parameters())
        total = sum(p.numel() for p in model.parameters())
        assert training_state_bytes(c)["parameters MB"] == pytest.approx(4 * total / 2 ** 20)
    frozen, trained = training_state_bytes(cfg(encoder_frozen=True)), training_state_bytes(cfg())
    enc = head_parameter_counts(cfg())["encoder"]
    assert trained["grad + Adam MB"] - frozen["grad + Adam MB"] == pytest.approx(12 * enc / 2 ** 20)


def test_measured_peaks_are_ordered():
    floor = peak_memory(cfg(), "baseline")
    full = peak_memory(cfg(), "train")
    small = peak_memory(cfg(head_rank=2), "train")
    infer = peak_memory(cfg(), "infer")
    assert floor["device"] == "cpu" and floor["process peak MB"] > 50     # torch is loaded
    assert full["process peak MB"] > floor["process peak MB"] + 20
    # linear heads: 3 scales × (64 + 1) × 64,xxx numbers + Adam; rank 2: a few MB
    assert full["process peak MB"] > small["process peak MB"] + 10
    assert floor["process peak MB"] < infer["process peak MB"] < full["process peak MB"]


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="phase must be one of"):
        peak_memory(cfg(), "warmup")
    with pytest.raises(ConfigError, match="must be a HyperGANConfig"):
        peak_memory({"channels": 8}, "train")
