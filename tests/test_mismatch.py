"""mil_core.mismatch: a shared critic cannot tell whose samples it judges (MIL Prop. 2)."""
import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.mismatch import mismatch_gap, mismatch_losses
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan_train import train_hypergan


def _images():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(3, 30, 40, generator=g) * 2 - 1) * s for s in (1.0, 0.3)]


@pytest.fixture(scope="module")
def models():
    imgs = _images()
    out = {}
    for critic in ("hyper", "shared"):
        cfg = HyperGANConfig.from_profile("smoke", "minibatch", 2, iters_per_scale=3,
                                          discriminator=critic)
        out[critic] = train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)
    return imgs, out


def test_a_shared_critic_scores_a_sample_the_same_whoever_it_is_claimed_to_be(models):
    imgs, m = models
    losses = mismatch_losses(m["shared"], imgs, n_samples=3,
                             generator=torch.Generator().manual_seed(1))
    assert losses.shape == (2, 2)
    assert torch.equal(losses[0], losses[1])                     # columns constant, exactly
    assert abs(mismatch_gap(losses)) < 1e-6                    # it cannot tell: no gap


def test_a_hyper_critic_depends_on_the_claimed_image(models):
    imgs, m = models
    losses = mismatch_losses(m["hyper"], imgs, n_samples=3,
                             generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(losses[0], losses[1])


def test_gap_closed_form_and_errors():
    assert mismatch_gap(torch.tensor([[1.0, 3.0], [5.0, 2.0]])) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="at least 2"):
        mismatch_losses(None, [torch.zeros(3, 8, 8)])
