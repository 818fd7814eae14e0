"""The numerical checks of MIL's Props. 3–4 (mil_core.propositions): exact zeros at the
zero-embedding point under the stated conditions, non-zeros when one is dropped, and Case 1's
cancellation to float tolerance."""
import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan import HyperGAN
from mil_core.propositions import cancellation, game_gradients, shrink_embedding, \
    zero_point_table


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]


def _model(extractor, **kw):
    torch.manual_seed(0)
    model = HyperGAN(HyperGANConfig.from_profile("smoke", "minibatch", 2, extractor=extractor,
                                                 **kw))
    model.G.add_head()
    return model


def _max(rows, term):
    return max(r["max |grad|"] for r in rows if r["term"] == term)


@pytest.mark.parametrize("extractor", ["separate", "shared-both", "shared-g"])
def test_adversarial_gradients_are_exactly_zero_at_the_zero_embedding(extractor):
    rows = zero_point_table(shrink_embedding(_model(extractor), 0.0), _images())
    for term in ("critic adversarial", "gradient penalty", "generator adversarial"):
        assert _max(rows, term) == 0.0, term
    # the reconstruction term is not adversarial: it reaches e through G's last bias
    assert _max(rows, "reconstruction") > 1e-3


@pytest.mark.parametrize("extractor", ["separate", "shared-both"])
def test_dropping_a_condition_makes_the_gradients_non_zero(extractor):
    images = _images()
    with_bias = zero_point_table(shrink_embedding(_model(extractor), 0.0, head_bias=True), images)
    assert _max(with_bias, "critic adversarial") > 1e-7
    assert _max(with_bias, "generator adversarial") > 1e-7
    # near the point the critic's gradient shrinks like a power of the embedding's scale
    small = _max(zero_point_table(shrink_embedding(_model(extractor), 1e-2), images),
                 "critic adversarial")
    big = _max(zero_point_table(shrink_embedding(_model(extractor), 1e-1), images),
               "critic adversarial")
    assert 0.0 < small < big * 1e-2


def test_zeroing_only_the_generators_encoder_is_no_stationary_point_for_separate_encoders():
    rows = zero_point_table(shrink_embedding(_model("separate"), 0.0, which="generator"),
                            _images())
    assert _max(rows, "critic adversarial") > 1e-6      # the critic's own encoder still works
    assert _max(rows, "generator adversarial") > 1e-6   # and its input gradient reaches G


def test_case_1_adversarial_gradients_cancel_on_the_shared_encoder():
    model = _model("shared-both")
    c = cancellation(model, _images())
    assert c.adversarial > 1e-4
    assert c.zero_sum < 1e-5                    # the encoder's update is α∇rec + λ∇GP
    assert c.usual > 1e-2 and c.as_trained > 1e-2
    grads = game_gradients(model, _images())
    full = grads["critic adversarial"]["G encoder"] + grads["generator zero-sum"]["G encoder"]
    assert torch.allclose(full, torch.zeros_like(full), atol=1e-6 * c.adversarial + 1e-12)


def test_a_separate_encoder_has_no_cancellation_to_measure():
    with pytest.raises(ConfigError, match="shared-both"):
        cancellation(_model("separate"), _images())


def test_the_checks_leave_the_callers_model_unchanged():
    model = _model("shared-both")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shrink_embedding(model, 0.0)
    game_gradients(model, _images())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_bad_arguments_are_named():
    model = _model("separate")
    with pytest.raises(ConfigError, match="factor"):
        shrink_embedding(model, -1.0)
    with pytest.raises(ConfigError, match="which"):
        shrink_embedding(model, 0.0, which="critic")
    with pytest.raises(ConfigError, match="scale"):
        game_gradients(model, _images(), scale=3)
