"""Feed-forward, then adapt (mil_core.adapt): fine-tuning one image's primary nets."""
import pytest
import torch

from mil_core.adapt import adapt
from mil_core.errors import ConfigError


@pytest.fixture
def trained(tiny_hypergan):
    model, _, unseen = tiny_hypergan
    return model, unseen


@pytest.mark.parametrize("init", ["feedforward", "random"])
def test_adaptation_lowers_the_reconstruction_error_and_leaves_the_model(trained, init):
    model, unseen = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = adapt(model, unseen, steps=8, init=init, lr=5e-3)
    assert out.rec_after[-1] < out.rec_before[-1]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    s = out.sample(2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 3, *model.shapes[-1]) and s.abs().max() <= 1


def test_zero_steps_is_the_feed_forward_generator(trained):
    model, unseen = trained
    out = adapt(model, unseen, steps=0)
    assert out.rec_after == out.rec_before
    rec = model.reconstruct([unseen])
    real = model.pyramid([unseen])[-1]
    assert out.rec_before[-1] == pytest.approx(float(((rec - real) ** 2).mean()), rel=1e-5)


def test_bad_arguments_are_named(trained):
    model, unseen = trained
    with pytest.raises(ConfigError, match="init"):
        adapt(model, unseen, 1, init="pretrained")
    with pytest.raises(ConfigError, match="steps"):
        adapt(model, unseen, -1)
