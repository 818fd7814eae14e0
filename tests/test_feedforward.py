"""Does the model read an unseen input? (mil_core.feedforward.conditioning_gap)"""
import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.feedforward import conditioning_gap
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan_train import train_hypergan


def test_the_gap_is_others_minus_own_and_leaves_the_model_unchanged():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]
    model = train_hypergan(imgs, HyperGANConfig.from_profile("smoke", "minibatch", 2,
                                                              iters_per_scale=2),
                           seed=0, device="cpu", show_progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unseen = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(3)]
    df = conditioning_gap(model, unseen, n_samples=2)
    assert list(df["image"]) == [0, 1, 2]
    assert (df["gap"] - (df["others"] - df["own"])).abs().max() < 1e-9
    assert (df["own"] > 0).all() and (df["novelty"] >= 0).all()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(not p.requires_grad for p in model.parameters())       # feed-forward: no grads
    with pytest.raises(ConfigError, match="at least 2"):
        conditioning_gap(model, unseen[:1])
