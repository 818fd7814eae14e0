"""The novelty score of feed-forward inputs (mil_core.novelty) and the warning of generate."""
import warnings

import pytest
import torch

from mil_core.errors import ConfigError, NoveltyWarning
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan import HyperGAN
from mil_core.models.hypergan_train import train_hypergan
from mil_core.novelty import NOVELTY_WARN, NoveltyReference, fit_novelty


def test_the_score_is_the_nearest_distance_over_the_training_spread():
    train = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    ref = fit_novelty(train)
    loo = torch.tensor([1.0, 1.0, 2.0])                       # leave-one-out nearest distances
    assert ref.scale == pytest.approx(float(torch.quantile(loo, 0.95)))
    s = ref.score(torch.tensor([[1.0, 0.0], [10.0, 0.0]]))
    assert s[0] == 0.0 and s[1] == pytest.approx(9.0 / ref.scale)
    with pytest.raises(ConfigError, match="at least 2"):
        fit_novelty(train[:1])
    with pytest.raises(ConfigError, match=r"\(B, 2\)"):
        ref.score(torch.zeros(1, 3))


def test_a_trained_model_keeps_its_reference_and_warns_far_from_it(tmp_path):
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 0.2 - 0.1 for _ in range(3)]   # near grey
    cfg = HyperGANConfig.from_profile("smoke", "minibatch", 3, iters_per_scale=2)
    model = train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)
    assert model.novelty is not None and model.novelty.embeddings.shape == (3, cfg.embed_dim)
    assert float(model.novelty_scores(imgs).max()) <= 1.0 + 1e-6   # training images: ≤ their spread
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoveltyWarning)
        model.generate(imgs[:1], 1)                                    # no warning
    loaded = HyperGAN.load(model.save(tmp_path / "m.safetensors"))
    assert torch.equal(loaded.novelty.embeddings, model.novelty.embeddings)
    assert loaded.novelty.scale == model.novelty.scale
    # a reference moved far away: every input is now novel, and generate says so per image
    ref = model.novelty
    model.novelty = NoveltyReference(ref.embeddings + 100.0, ref.scale)
    assert float(model.novelty_scores(imgs).min()) > NOVELTY_WARN
    with pytest.warns(NoveltyWarning, match="image 0: .*image 1: "):
        model.generate(imgs[:2], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoveltyWarning)
        model.generate(embeddings=model.embed(imgs[:1]))              # explicit embeddings: no check
