"""mil_core.levers: each speed lever gives the same result on and off, to float tolerance, and is
chosen per device unless an environment variable forces it."""
from __future__ import annotations

import pytest
import torch

from mil_core import levers as L
from mil_core.errors import ConfigError
from mil_core.models import HyperGANConfig
from mil_core.models.hypergan_train import train_hypergan
from mil_core.models.hypernet import PrimarySpec, ProjectionHeads, primary_forward

CRITIC = PrimarySpec(in_ch=3, channels=8, out_ch=1, tail="none")


def test_defaults_per_device_and_forcing(monkeypatch):
    for env in (L.ADAM_ENV, L.CHANNELS_LAST_ENV):
        monkeypatch.delenv(env, raising=False)
    assert L.adam_impl("cpu") == "fused" and L.adam_impl("cuda") == "fused"
    assert L.adam_impl("mps") == "foreach"
    assert L.channels_last("cpu") and not L.channels_last("cuda")
    monkeypatch.setenv(L.ADAM_ENV, " Loop ")
    assert L.adam_impl("cpu") == "loop"
    monkeypatch.setenv(L.CHANNELS_LAST_ENV, "0")
    assert not L.channels_last("cpu")
    monkeypatch.setenv(L.ADAM_ENV, "fastest")
    with pytest.raises(ConfigError, match="MIL_ADAM='fastest'"):
        L.adam_impl("cpu")
    monkeypatch.setenv(L.CHANNELS_LAST_ENV, "yes")
    with pytest.raises(ConfigError, match="MIL_CHANNELS_LAST"):
        L.channels_last("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        L.adam_impl("gpu0")


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_adam_implementations_agree_with_the_per_tensor_loop(monkeypatch, impl):
    def run(which):
        monkeypatch.setenv(L.ADAM_ENV, which)
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(5, 7)), torch.nn.Parameter(torch.randn(11))]
        opt = L.make_adam([{"params": params[:1], "lr": 1e-2}, {"params": params[1:]}],
                          lr=3e-3, betas=(0.5, 0.999), device="cpu")
        for k in range(20):
            opt.zero_grad()
            (params[0].sin().sum() * (k + 1) + params[1].pow(2).sum()).backward()
            opt.step()
        return [p.detach().clone() for p in params]

    loop, other = run("loop"), run(impl)
    assert not torch.equal(loop[0], torch.zeros(5, 7))
    for a, b in zip(loop, other):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_channels_last_primary_nets_equal_contiguous_values_and_gradients(monkeypatch):
    torch.manual_seed(1)
    heads = ProjectionHeads(CRITIC, 16)
    emb, x0 = torch.randn(3, 16), torch.randn(3, 3, 17, 19)

    def run(flag):
        monkeypatch.setenv(L.CHANNELS_LAST_ENV, flag)
        heads.zero_grad()
        x = x0.clone().requires_grad_()
        out = primary_forward(x, heads(emb), CRITIC, mode="grouped")
        (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)    # the WGAN-GP path
        (out.pow(2).mean() + g.pow(2).mean()).backward()
        return out.detach(), [p.grad.clone() for p in heads.parameters()]

    (o1, g1), (o0, g0) = run("1"), run("0")
    assert o1.is_contiguous()                      # callers get an ordinary tensor back
    torch.testing.assert_close(o1, o0, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_short_hypergan_run_is_the_same_with_every_lever_on_and_off(monkeypatch):
    imgs = [torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(s)) * 2 - 1
            for s in (0, 1)]
    cfg = HyperGANConfig.from_profile("smoke", "minibatch", 2, iters_per_scale=4)

    def run(adam, cl):
        monkeypatch.setenv(L.ADAM_ENV, adam)
        monkeypatch.setenv(L.CHANNELS_LAST_ENV, cl)
        model = train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)
        return model.reconstruct(imgs)

    off, on = run("loop", "0"), run("fused", "1")
    torch.testing.assert_close(on, off, atol=1e-4, rtol=1e-3)
