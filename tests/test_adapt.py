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


def test_adapt_curve_has_one_row_per_image_init_and_k(trained):
    from mil_core.adapt import adapt_curve
    model, unseen = trained
    df = adapt_curve(model, [unseen], ["new"], [0, 2], n_samples=2)
    assert len(df) == 4 and set(df["init"]) == {"feedforward", "random"}
    ff0 = df[(df.init == "feedforward") & (df.K == 0)].iloc[0]
    direct = adapt(model, unseen, 0)
    assert ff0["rec MSE"] == pytest.approx(direct.rec_after[-1])
    assert (df["SWD ×1e3"] > 0).all() and (df[df.K == 0]["seconds"] < 1).all()
    with pytest.raises(ConfigError, match="unknown init"):
        adapt_curve(model, [unseen], ["new"], [0], inits=["pretrained"])
    with pytest.raises(ConfigError, match="1 images but 2 names"):
        adapt_curve(model, [unseen], ["a", "b"], [0])
