"""The shared-feature-extractor ablation (MIL Sec. 4.2, Props. 3–4): one encoder in both players,
and exactly which optimiser owns which parameters in each case."""
import pytest
import torch

from mil_core.errors import ConfigError
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan import HyperGAN, critic_parameters
from mil_core.models.hypergan_train import train_hypergan


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]


def _cfg(extractor, **kw):
    return HyperGANConfig.from_profile("smoke", "minibatch", 2, extractor=extractor, **kw)


def _ids(params):
    return {id(p) for p in params}


@pytest.mark.parametrize("extractor", ["separate", "shared-both", "shared-g"])
def test_who_owns_the_encoder(extractor):
    model = HyperGAN(_cfg(extractor))
    g_enc, d_enc = _ids(model.G.encoder.parameters()), _ids(model.D.encoder.parameters())
    owned = _ids(critic_parameters(model))
    assert _ids(model.D.heads.parameters()) <= owned
    if extractor == "separate":
        assert not g_enc & d_enc and d_enc <= owned
    else:
        assert g_enc == d_enc                                  # one encoder, two players
        assert (g_enc <= owned) == (extractor == "shared-both")


@pytest.mark.parametrize("extractor, reaches", [("shared-both", True), ("shared-g", False),
                                                ("separate", False)])
def test_the_critic_loss_reaches_the_generator_encoder_only_in_case_1(extractor, reaches):
    model = HyperGAN(_cfg(extractor))
    x = model.embed_input(_images())
    model.D(x)[0][0].sum().backward()
    grads = [p.grad for p in model.G.encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads) == reaches


@pytest.mark.parametrize("extractor", ["shared-both", "shared-g"])
def test_each_case_trains_and_resumes_like_the_proposed_model(extractor, tmp_path):
    imgs = _images()
    full = train_hypergan(imgs, _cfg(extractor, iters_per_scale=4, checkpoint_every=2), seed=0,
                          device="cpu", show_progress=False)
    ck = tmp_path / extractor
    with pytest.raises(KeyboardInterrupt):
        def stop(model, step):
            if step == 6:
                raise KeyboardInterrupt
        train_hypergan(imgs, _cfg(extractor, iters_per_scale=4, checkpoint_every=2), seed=0,
                       device="cpu", show_progress=False, checkpoint_dir=ck,
                       step_callback=stop)
    resumed = train_hypergan(imgs, _cfg(extractor, iters_per_scale=4, checkpoint_every=2),
                             seed=0, device="cpu", show_progress=False, checkpoint_dir=ck,
                             resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.D.encoder is resumed.G.encoder              # still shared after loading
    norms = [r["embed_norm"] for r in resumed.history]         # the collapse measure is logged
    assert len(norms) > 0 and all(v > 0 for v in norms)


def test_a_shared_critic_has_no_encoder_to_share():
    with pytest.raises(ConfigError, match="needs discriminator='hyper'"):
        _cfg("shared-g", discriminator="shared")
    with pytest.raises(ConfigError, match="extractor must be one of"):
        _cfg("both")
