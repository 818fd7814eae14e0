"""Generated primary networks (mil_core.models.hypernet): the grouped-convolution forward equals a
per-image loop (values and gradients), the shapes and parameter counts of MIL's generated nets,
the He-style normalisation of generated weights, shared (non-generated) critics, expansion to
several samples per image, interpolation and input checks."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mil_core.errors import ConfigError
from mil_core.models.hypernet import (PrimarySpec, ProjectionHeads, SharedWeights,
                                      expand_weights, lerp_weights, primary_forward,
                                      primary_forward_loop)

GEN = PrimarySpec(in_ch=3, channels=8, out_ch=3, tail="tanh")    # a small generator
CRITIC = PrimarySpec(in_ch=3, channels=8, out_ch=1, tail="none")  # a small critic
LEAKY_GAIN = math.sqrt(2.0 / (1.0 + 0.02 ** 2))


def _generated(spec: PrimarySpec, batch: int, seed: int = 0, embed_dim: int = 16):
    """Weights emitted by a seeded head set for ``batch`` random embeddings."""
    torch.manual_seed(seed)
    heads = ProjectionHeads(spec, embed_dim)
    return heads, heads(torch.randn(batch, embed_dim))


# --- sizes -------------------------------------------------------------------------------
def test_mil_generator_numbers_and_head_parameters():
    # MIL's 64-channel generator: 114,307 generated numbers; its heads 114,307 · 513 parameters
    spec = PrimarySpec()
    assert spec.layer_shapes == [(64, 3), (64, 64), (64, 64), (64, 64), (3, 64)]
    assert spec.numel() == 114_307
    assert spec.pad == 5
    assert PrimarySpec(out_ch=1, tail="none").numel() == 114_307 - 2 * (64 * 9 + 1)
    with torch.device("meta"):                       # count without allocating 234 MB
        heads = ProjectionHeads(spec, 512)
    assert sum(p.numel() for p in heads.parameters()) == 114_307 * 513 == 58_639_491
    assert len(heads.weight_heads) == len(heads.bias_heads) == 5


@pytest.mark.parametrize("spec", [GEN, CRITIC], ids=["generator", "critic"])
def test_projection_head_output_shapes(spec):
    # per layer: w (B, out, in, 3, 3) and b (B, out), for the spec's layer list
    _, weights = _generated(spec, batch=3)
    assert len(weights) == spec.n_layers
    for (w, b), (out, inp) in zip(weights, spec.layer_shapes):
        assert w.shape == (3, out, inp, 3, 3)
        assert b.shape == (3, out)
    assert sum(w[0].numel() + b[0].numel() for w, b in weights) == spec.numel()


def test_gains():
    assert GEN.gain(0) == GEN.gain(3) == pytest.approx(LEAKY_GAIN)
    assert GEN.gain(4) == pytest.approx(5.0 / 3.0)
    assert CRITIC.gain(4) == 1.0


# --- normalisation -----------------------------------------------------------------------
@pytest.mark.parametrize("spec", [GEN, CRITIC], ids=["generator", "critic"])
def test_generated_weights_are_he_normalised(spec):
    # w = raw / sqrt(in·k·k) · gain, b = raw / sqrt(in); gains sqrt(2/(1+0.02²)), 5/3 or 1
    torch.manual_seed(1)
    heads = ProjectionHeads(spec, 16)
    e = torch.randn(2, 16)
    weights = heads(e)
    tail_gain = 5.0 / 3.0 if spec.tail == "tanh" else 1.0
    for i, ((w, b), (out, inp)) in enumerate(zip(weights, spec.layer_shapes)):
        gain = LEAKY_GAIN if i < spec.n_layers - 1 else tail_gain
        raw_w = heads.weight_heads[i](e).reshape(2, out, inp, 3, 3)
        raw_b = heads.bias_heads[i](e)
        torch.testing.assert_close(w, raw_w / math.sqrt(inp * 9) * gain, atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(b, raw_b / math.sqrt(inp), atol=1e-7, rtol=1e-6)


def test_shared_weights_are_ordinary_he_initialised_params():
    # an ordinary critic: the same weights for every image, its parameters used as they are
    # (He-initialised, bias 0) -- not rescaled in the forward pass, which would shrink Adam's
    # steps by sqrt(in·k·k) and starve the critic
    spec = PrimarySpec(channels=64, out_ch=1, tail="none")
    shared = SharedWeights(spec, torch.Generator().manual_seed(0))
    weights = shared(3)
    for i, ((w, b), (out, inp)) in enumerate(zip(weights, spec.layer_shapes)):
        assert w.shape == (3, out, inp, 3, 3) and b.shape == (3, out)
        assert torch.equal(w[0], w[2]) and torch.equal(b[0], b[1])
        assert torch.equal(w[1], shared.weights[i])
        assert torch.equal(b, torch.zeros_like(b))
    body = weights[1][0][0]                                      # 36,864 numbers
    assert body.std().item() == pytest.approx(LEAKY_GAIN / math.sqrt(64 * 9), rel=0.03)
    again = SharedWeights(spec, torch.Generator().manual_seed(0))(1)
    assert torch.equal(again[0][0][0], weights[0][0][0])           # seeded


# --- grouped convolution == per-image loop -----------------------------------------------
@pytest.mark.parametrize("spec", [GEN, CRITIC], ids=["generator", "critic"])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("n_samples", [1, 3])
def test_grouped_forward_equals_loop(spec, batch, n_samples):
    # one grouped conv over B·m samples == m samples per image, each with its own weights
    _, weights = _generated(spec, batch, seed=batch * 10 + n_samples)
    weights = [(w.detach(), b.detach()) for w, b in weights]
    x = torch.randn(batch * n_samples, 3, 17, 21)
    fast = primary_forward(x, weights, spec, mode="grouped")
    slow = primary_forward_loop(x, weights, spec)
    assert fast.shape == slow.shape == (batch * n_samples, spec.out_ch, 17 - 10, 21 - 10)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    if spec.tail == "tanh":
        assert fast.abs().max() <= 1.0
    else:                                                     # a linear tail is not squashed
        assert fast.abs().max() > 0
    # written out by hand, independently of expand_weights: sample s uses image s // m's weights
    for s in range(batch * n_samples):
        h = x[s:s + 1]
        for i, (w, b) in enumerate(weights):
            h = F.conv2d(h, w[s // n_samples], b[s // n_samples])
            if i < len(weights) - 1:
                h = F.leaky_relu(h, 0.02)
        h = torch.tanh(h) if spec.tail == "tanh" else h
        torch.testing.assert_close(fast[s:s + 1], h, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", [GEN, CRITIC], ids=["generator", "critic"])
@pytest.mark.parametrize("batch, n_samples", [(1, 1), (4, 1), (4, 2)])
def test_grouped_backward_equals_loop(spec, batch, n_samples):
    # gradients w.r.t. generated weights, biases and the input agree (the hyper-net trains them)
    _, weights = _generated(spec, batch, seed=7)
    x0 = torch.randn(batch * n_samples, 3, 15, 18)
    probe = torch.randn(batch * n_samples, spec.out_ch, 5, 8)   # a fixed linear read-out

    def grads(fn):
        ws = [(w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
              for w, b in weights]
        x = x0.clone().requires_grad_()
        (fn(x, ws, spec) * probe).sum().backward()
        return [x.grad] + [t.grad for pair in ws for t in pair]

    fast = grads(lambda x, w, sp: primary_forward(x, w, sp, mode="grouped"))
    slow = grads(primary_forward_loop)
    assert len(fast) == 1 + 2 * spec.n_layers
    for g_fast, g_slow in zip(fast, slow):
        assert g_fast is not None and g_fast.abs().sum() > 0
        torch.testing.assert_close(g_fast, g_slow, atol=1e-5, rtol=1e-5)


def test_conv_mode_is_chosen_per_device_and_can_be_forced(monkeypatch):
    from mil_core.errors import ConfigError
    from mil_core.models.hypernet import PRIMARY_CONV_ENV, conv_mode

    monkeypatch.delenv(PRIMARY_CONV_ENV, raising=False)
    assert conv_mode("cpu") == "grouped" and conv_mode(torch.device("cuda", 0)) == "grouped"
    monkeypatch.setenv(PRIMARY_CONV_ENV, " Loop ")
    assert conv_mode("cpu") == "loop"
    _, weights = _generated(CRITIC, 2, seed=3)
    x = torch.randn(2, 3, 15, 15)
    forced = primary_forward(x, [(w.detach(), b.detach()) for w, b in weights], CRITIC)
    monkeypatch.setenv(PRIMARY_CONV_ENV, "fast")
    with pytest.raises(ConfigError, match="MIL_PRIMARY_CONV='fast'"):
        conv_mode("cpu")
    monkeypatch.delenv(PRIMARY_CONV_ENV)
    looped = primary_forward(x, [(w.detach(), b.detach()) for w, b in weights], CRITIC)
    torch.testing.assert_close(forced, looped, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="mode must be one of"):
        primary_forward(x, [(w.detach(), b.detach()) for w, b in weights], CRITIC, mode="x")


def test_gradient_penalty_double_backward_agrees_between_modes():
    # WGAN-GP differentiates the critic's input gradient w.r.t. the generated weights
    _, weights = _generated(CRITIC, 2, seed=5)
    x0 = torch.randn(2, 3, 15, 15)

    def penalty_grads(mode):
        ws = [(w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
              for w, b in weights]
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad(primary_forward(x, ws, CRITIC, mode=mode).sum(), x,
                                   create_graph=True)
        (g.flatten(1).norm(dim=1) - 1).pow(2).mean().backward()
        return [t.grad for pair in ws for t in pair]

    grouped, looped = penalty_grads("grouped"), penalty_grads("loop")
    assert all(g.abs().sum() > 0 for g in grouped[0::2])     # every weight (biases: 0 a.e.)
    for a, b in zip(grouped, looped):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_images_do_not_share_weights():
    # changing image 1's weights changes only image 1's samples (no mixing across groups)
    _, weights = _generated(GEN, batch=3, seed=3)
    weights = [(w.detach(), b.detach()) for w, b in weights]
    x = torch.randn(6, 3, 14, 14)                                # 2 samples per image
    base = primary_forward(x, weights, GEN)
    changed = [(w.clone(), b.clone()) for w, b in weights]
    changed[2][0][1] *= -1.0
    out = primary_forward(x, changed, GEN)
    assert torch.equal(out[[0, 1, 4, 5]], base[[0, 1, 4, 5]])
    assert (out[2:4] - base[2:4]).abs().max() > 1e-3


def test_shared_critic_gradient_sums_over_images():
    # one critic for all images: its gradient is the sum of per-image gradients
    torch.manual_seed(0)
    shared = SharedWeights(CRITIC)
    x = torch.randn(3, 3, 13, 13)
    primary_forward(x, shared(3), CRITIC).sum().backward()
    together = [p.grad.clone() for p in shared.parameters()]
    shared.zero_grad()
    for i in range(3):
        primary_forward(x[i:i + 1], shared(1), CRITIC).sum().backward()
    for a, p in zip(together, shared.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-5, rtol=1e-5)


# --- helpers -----------------------------------------------------------------------------
def test_expand_weights_is_image_major():
    _, weights = _generated(GEN, batch=2)
    assert expand_weights(weights, 1) is weights
    big = expand_weights(weights, 3)
    for (w, b), (wb, bb) in zip(weights, big):
        assert wb.shape[0] == bb.shape[0] == 6
        for j in range(6):
            assert torch.equal(wb[j], w[j // 3]) and torch.equal(bb[j], b[j // 3])


def test_lerp_weights():
    _, a = _generated(GEN, batch=2, seed=0)
    _, b = _generated(GEN, batch=2, seed=1)
    for t, expect in ((0.0, a), (1.0, b)):
        for (w, bias), (we, be) in zip(lerp_weights(a, b, t), expect):
            torch.testing.assert_close(w, we)
            torch.testing.assert_close(bias, be)
    mid = lerp_weights(a, b, 0.25)
    torch.testing.assert_close(mid[2][0], 0.75 * a[2][0] + 0.25 * b[2][0])
    torch.testing.assert_close(mid[4][1], 0.75 * a[4][1] + 0.25 * b[4][1])


def test_bad_specs_and_inputs():
    with pytest.raises(ConfigError, match="channels"):
        PrimarySpec(channels=0)
    with pytest.raises(ConfigError, match="tail"):
        PrimarySpec(tail="relu")
    with pytest.raises(ConfigError, match="n_layers"):
        PrimarySpec(n_layers=1)
    with pytest.raises(ConfigError, match="in_ch"):
        PrimarySpec(in_ch=True)
    _, weights = _generated(GEN, batch=2)
    with pytest.raises(ConfigError, match="multiple"):
        primary_forward(torch.randn(3, 3, 12, 12), weights, GEN)     # 3 samples, 2 weight sets
    with pytest.raises(ConfigError, match=r"\(B, C, H, W\)"):
        primary_forward(torch.randn(3, 12, 12), weights, GEN)
    with pytest.raises(ConfigError, match="multiple"):
        primary_forward_loop(torch.randn(5, 3, 12, 12), weights, GEN)
