"""mil_core.collapse: a generator that ignores its input has zero input sensitivity."""
import pytest
import torch

from mil_core import collapse
from mil_core.errors import ConfigError
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan_train import train_hypergan


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 2 - 1, torch.full((3, 30, 40), 0.5)]
    cfg = HyperGANConfig.from_profile("smoke", "minibatch", 2, iters_per_scale=3)
    return imgs, train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)


def test_sensitivity_is_positive_and_zero_when_the_embedding_is_collapsed(trained):
    imgs, model = trained
    s = collapse.input_sensitivity(model, imgs, 2, generator=torch.Generator().manual_seed(0))
    assert s > 0
    norms = collapse.embedding_norms(model, imgs)
    assert norms.shape == (2,) and (norms > 0).all()
    real = collapse.image_spread(model, imgs)
    assert real == pytest.approx(float((model.pyramid(imgs)[-1][0] - model.pyramid(imgs)[-1][1])
                                       .pow(2).mean().sqrt()), rel=1e-6)
    # the degenerate equilibrium: an encoder whose output is 0 for every image
    encoder = model.G.encoder
    original = encoder.forward
    encoder.forward = lambda x: torch.zeros(x.shape[0], model.config.embed_dim)
    try:
        assert collapse.input_sensitivity(model, imgs, 2,
                                          generator=torch.Generator().manual_seed(0)) == 0.0
        assert (collapse.embedding_norms(model, imgs) == 0).all()
    finally:
        encoder.forward = original


def test_needs_two_images(trained):
    imgs, model = trained
    with pytest.raises(ConfigError, match="at least 2"):
        collapse.input_sensitivity(model, imgs[:1])
