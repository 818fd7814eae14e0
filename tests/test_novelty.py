"""The novelty score of feed-forward inputs (mil_core.novelty) and the warning of generate."""
import warnings

import pytest
import torch

from mil_core.errors import ConfigError, NoveltyWarning
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan import HyperGAN
from mil_core.models.hypergan_train import train_hypergan
from mil_core.novelty import (NOVELTY_WARN, NoveltyReference, fit_novelty,
                              nearest_embedding_distance, reconstruction_ratio)


def test_the_ratio_is_the_error_over_a_flat_grey_image_and_the_score_its_quantile():
    reals = torch.full((2, 3, 4, 4), 0.5)
    recs = torch.stack([torch.full((3, 4, 4), 0.5), torch.zeros(3, 4, 4)])
    r = reconstruction_ratio(recs, reals)
    assert r.tolist() == pytest.approx([0.0, 1.0])                 # perfect; as bad as grey
    ref = fit_novelty(torch.tensor([0.1, 0.2, 0.4]))
    assert ref.scale == pytest.approx(float(torch.quantile(torch.tensor([0.1, 0.2, 0.4]), 0.95)))
    assert ref.score(torch.tensor([0.0, 1.0])).tolist() == pytest.approx([0.0, 1.0 / ref.scale])
    assert ref.source == "training"
    with pytest.raises(ConfigError, match="at least 2"):
        fit_novelty(torch.tensor([0.1]))
    with pytest.raises(ConfigError, match="NaN"):
        fit_novelty(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ConfigError, match=r"must both be \(B, 3, H, W\)"):
        reconstruction_ratio(recs, reals[:1])
    with pytest.raises(ConfigError, match=r"\(B,\)"):
        ref.score(torch.zeros(2, 2))


def test_nearest_embedding_distance_is_over_the_leave_one_out_spacing():
    train = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    scale = float(torch.quantile(torch.tensor([1.0, 1.0, 2.0]), 0.95))
    d = nearest_embedding_distance(torch.tensor([[1.0, 0.0], [10.0, 0.0]]), train)
    assert d.tolist() == pytest.approx([0.0, 9.0 / scale])
    with pytest.raises(ConfigError, match="N >= 2"):
        nearest_embedding_distance(torch.zeros(1, 3), train)


def test_a_trained_model_keeps_its_reference_and_warns_far_from_it(tmp_path):
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 0.2 - 0.1 for _ in range(3)]   # near grey
    cfg = HyperGANConfig.from_profile("smoke", "minibatch", 3, iters_per_scale=2)
    model = train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)
    assert model.novelty is not None and model.novelty.ratios.shape == (3,)
    reals = model.pyramid(imgs)[-1]
    direct = reconstruction_ratio(model.reconstruct(imgs), reals)
    assert torch.allclose(model.novelty.ratios, direct, rtol=1e-5)   # measured after training
    scores = model.novelty_scores(imgs)                              # their own 95th pct is 1
    assert float(torch.quantile(scores, 0.95)) == pytest.approx(1.0, rel=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoveltyWarning)
        model.generate(imgs[int(scores.argmin())], 1)                 # no warning
    loaded = HyperGAN.load(model.save(tmp_path / "m.safetensors"))
    assert torch.equal(loaded.novelty.ratios, model.novelty.ratios)
    assert (loaded.novelty.scale, loaded.novelty.source) == (model.novelty.scale, "training")
    # a reference that reconstructs far better than this model does: every input is novel
    ref = model.novelty
    model.novelty = NoveltyReference(ref.ratios / 1e3, ref.scale / 1e3)
    assert float(model.novelty_scores(imgs).min()) > NOVELTY_WARN
    with pytest.warns(NoveltyWarning, match="image 0: .*image 1: "):
        model.generate(imgs[:2], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoveltyWarning)
        model.generate(embeddings=model.embed(imgs[:1]))              # explicit embeddings: no check
    # calibrated on held-out images instead: the scale is their 95th percentile
    held = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]
    new = model.calibrate_novelty(held)
    assert model.novelty is new and new.source == "held-out"
    held_r = reconstruction_ratio(model.reconstruct(held), model.pyramid(held)[-1])
    assert new.scale == pytest.approx(float(torch.quantile(held_r, 0.95)), rel=1e-5)
    assert float(torch.quantile(model.novelty_scores(held), 0.95)) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ConfigError, match="at least 2"):
        model.calibrate_novelty(held[:1])
