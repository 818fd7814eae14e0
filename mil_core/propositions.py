"""Numerical checks of MIL's Props. 3–4: the shared feature extractor (Sec. 4.2, Appendix A).

When one encoder ``e`` feeds the hyper-generator and the hyper-critic
(``HyperGANConfig.extractor`` = ``"shared-both"``, Case 1, or ``"shared-g"``, Case 2), the paper
argues that training has degenerate equilibria where the embedding is zero and every image gets
the same generator. This module makes the two mechanisms checkable on our implementation, at
one point of parameter space, with the same noise for every loss term and full autograd paths.

**The zero-embedding point.** Write each generated tensor as ``θ = W·e + b`` (a projection
head) and each primary net as convolutions followed by ``σ``. Every *adversarial* gradient —
the critic's loss and its gradient penalty on what the critic's optimiser owns, the generator's
``−E[D(G(z))]`` on what the generator's owns — is *exactly* zero when

- (C1) ``e(I) = 0`` for every image (:func:`shrink_embedding` with ``factor=0`` zeroes the
  encoder's output layer);
- (C2) the heads have no bias (``b = 0``), so every generated weight and bias is zero and head
  gradients ``∂L/∂W = (∂L/∂θ)·eᵀ`` vanish by C1;
- (C3) ``σ(0) = 0`` for every activation (LeakyReLU, and the generator's tanh tail), so a net
  with zero weights has zero activations and passes no gradient backwards, and (C4) every
  primary net has at least two layers (five here), so each generated tensor's gradient is a
  product with another layer's zero weights — except the *last bias*, whose gradient is the
  output's own;
- (C5) that last bias cancels in the losses: the critic's ``E[D(G(z))] − E[D(x)]`` does not
  change when ``D`` is offset by a constant, and the zero critic has no input gradient for the
  generator.

Then the generator outputs the upsampled previous scale for every image (it ignores its input),
the critic is the zero function, and the adversarial game does not move them. The
reconstruction term ``α·‖G(z*) − x‖²`` is not adversarial and breaks C5: its gradient reaches the
embedding through the generator's last bias, so with ``α > 0`` the point is an equilibrium of the
game only. With a *shared* extractor one zero embedding puts both players there; with separate
extractors both encoders have to be zero at once (:func:`shrink_embedding` with
``which="generator"`` zeroes only G's). Dropping C2 (the heads' default biases) leaves the input
ignored but makes the adversarial gradients non-zero; a small ``factor`` instead of 0 (C1 nearly
held) gives gradients that shrink like a power of the factor — a flat neighbourhood, not a point.

**Case 1's cancellation.** In the zero-sum game ``V = E[D_I(x)] − E[D_I(G_I(z))]`` the critic
ascends ``V`` and the generator descends it. When both players' optimisers own the shared encoder
and their gradients are taken at the same point with the same noise, their adversarial parts
add up to ``∇V − ∇V = 0``: the encoder's update is the reconstruction gradient alone (plus the
critic's gradient penalty when ``λ > 0``). Two ways the cancellation fails, both measured by
:func:`cancellation`: the usual generator loss ``−E[D(G(z))]`` drops the real term, which is
constant for G's own parameters but not for a shared encoder (residual ``−∇E[D_I(x)]``), and
our alternating training step detaches the fake in the critic step and the critic in the
generator step (:mod:`mil_core.models.hypergan_train`), so each player's gradient follows its
own path only.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from .errors import ConfigError
from .losses import gradient_penalty, reconstruction_loss
from .models.hypergan import HyperGAN
from .models.hypernet import ProjectionHeads, primary_forward

__all__ = ["shrink_embedding", "game_gradients", "zero_point_table", "Cancellation",
           "cancellation", "LOSS_TERMS"]

# the loss terms whose gradients :func:`game_gradients` returns
LOSS_TERMS = ("critic adversarial", "gradient penalty", "generator adversarial",
              "generator zero-sum", "reconstruction")


def shrink_embedding(model: HyperGAN, factor: float = 0.0, *, head_bias: bool = False,
                     which: str = "all") -> HyperGAN:
    """A trainable copy of ``model`` with every embedding multiplied by ``factor``.

    The encoders' output layers (``fc``: weight and bias) are scaled, so ``e(I)`` becomes
    ``factor·e(I)`` for every image; ``factor=0`` is condition C1. ``head_bias=False`` zeroes
    the bias of every projection head (C2). ``which``: ``"all"`` encoders, or the
    ``"generator"``'s only (the critic's own encoder is kept when it has one).
    """
    if which not in ("all", "generator"):
        raise ConfigError(f"shrink_embedding: which must be 'all' or 'generator', got {which!r}")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor < 0:
        raise ConfigError(f"shrink_embedding: factor must be a number >= 0, got {factor!r}")
    out = copy.deepcopy(model).train()
    out.requires_grad_(True)
    encoders = [out.G.encoder]
    if which == "all" and hasattr(out.D, "encoder") and out.D.encoder is not out.G.encoder:
        encoders.append(out.D.encoder)
    with torch.no_grad():
        for enc in encoders:
            enc.fc.weight.mul_(factor)
            enc.fc.bias.mul_(factor)
        if not head_bias:
            for m in out.modules():
                if isinstance(m, ProjectionHeads):
                    for lin in m.bias_heads:
                        lin.bias.zero_()
                    for lin in m.weight_heads:
                        lin.bias.zero_()
    return out


def _groups(model: HyperGAN, scale: int) -> dict[str, list[nn.Parameter]]:
    """Parameter groups: the (shared) encoder, G's head of ``scale``, the critic's parameters."""
    groups = {"G encoder": list(model.G.encoder.parameters()),
              "G head": list(model.G.heads[scale].parameters())}
    if hasattr(model.D, "heads"):
        groups["D heads"] = list(model.D.heads.parameters())
        if model.config.extractor == "separate":
            groups["D encoder"] = list(model.D.encoder.parameters())
    else:
        groups["shared D"] = list(model.D.parameters())
    return groups


def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])


def game_gradients(model: HyperGAN, images: Sequence[torch.Tensor] | torch.Tensor,
                   scale: int | None = None, seed: int = 0, *, detached: bool = False
                   ) -> dict[str, dict[str, torch.Tensor]]:
    """Gradients of each loss term of scale ``scale`` at the model's current parameters.

    Returns ``{term: {group: flat gradient}}`` for the terms of :data:`LOSS_TERMS` — critic
    adversarial ``E[D(G(z))] − E[D(x)]`` (the critic's loss without its penalty), ``λ·GP``,
    generator adversarial ``−E[D(G(z))]``, its zero-sum form ``E[D(x)] − E[D(G(z))]`` and
    ``α·rec`` — and the groups ``G encoder`` (the shared one when shared), ``G head`` (the head of
    ``scale``), ``D heads`` and ``D encoder`` (separate extractor) or ``shared D``. Every term uses
    the same noise (drawn from ``seed``) and, by default, full autograd paths (the fake is not
    detached in the critic terms, the critic not in the generator terms). ``detached=True``
    computes them as the training step does: the critic terms see a detached fake, the generator
    terms a detached critic.
    """
    n_heads = len(model.G.heads)
    if n_heads == 0:
        raise ConfigError("game_gradients: the model has no generator head yet; call "
                          "model.G.add_head() or train it first")
    scale = n_heads - 1 if scale is None else scale
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < n_heads:
        raise ConfigError(f"game_gradients: scale must be an integer in [0, {n_heads - 1}], "
                          f"got {scale!r}")
    model = copy.deepcopy(model).train().requires_grad_(True)    # the caller's model is kept
    cfg, dev = model.config, model.device
    reals = model.pyramid(images)[scale].to(dev)                       # (B, 3, H, W)
    x_embed = model.embed_input(images).to(dev)                        # (B, 3, S, S)
    b = x_embed.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    noise = [torch.randn(b, 3, *s, generator=gen) for s in model.shapes[:scale + 1]]
    eps = torch.rand(b, generator=gen)
    amps = (list(model.noise_amps) + [1.0] * (scale + 1))[:scale + 1]
    groups = _groups(model, scale)

    _, w = model.G(x_embed, scale + 1)
    fake = model.run_scales(w, 1, noise=noise, amps=amps)              # (B, 3, H, W)
    rec = model.run_scales(w, 1, reconstruct=True)
    d_w = model.D(x_embed)

    def critic(x: torch.Tensor, weights=d_w) -> torch.Tensor:
        return primary_forward(x, weights, cfg.d_spec)

    fake_c = fake.detach() if detached else fake
    d_w_g = [(a.detach(), c.detach()) for a, c in d_w] if detached else d_w
    d_real, d_fake_c = critic(reals).mean(), critic(fake_c).mean()
    d_fake_g = critic(fake, d_w_g).mean()
    terms = {"critic adversarial": d_fake_c - d_real,
             "gradient penalty": cfg.lambda_grad * gradient_penalty(critic, reals, fake, eps=eps),
             "generator adversarial": -d_fake_g,
             "generator zero-sum": critic(reals, d_w_g).mean() - d_fake_g,
             "reconstruction": cfg.alpha * reconstruction_loss(rec, reals)}
    return {t: {g: _flat_grad(loss, ps) for g, ps in groups.items()} for t, loss in terms.items()}


def _owned(model: HyperGAN) -> dict[str, list[str]]:
    """The groups of :func:`game_gradients` each player's optimiser updates
    (:func:`mil_core.models.hypergan.critic_parameters`)."""
    critic = ["D heads", "D encoder"] if model.config.extractor == "separate" else ["D heads"]
    if model.config.extractor == "shared-both":
        critic.append("G encoder")
    if not hasattr(model.D, "heads"):
        critic = ["shared D"]
    return {"critic": critic, "generator": ["G encoder", "G head"]}


# which player applies each loss term's gradient
_PLAYER = {"critic adversarial": "critic", "gradient penalty": "critic",
           "generator adversarial": "generator", "reconstruction": "generator"}


def zero_point_table(model: HyperGAN, images: Sequence[torch.Tensor] | torch.Tensor,
                     scale: int | None = None, seed: int = 0) -> list[dict[str, object]]:
    """One row per loss term and parameter group that the term's player updates:
    ``{"player", "term", "parameters", "max |grad|"}`` from :func:`game_gradients` with the
    training step's paths (the critic fixed in the generator's terms, the fake in the critic's).

    At the zero-embedding point under C1–C5 the adversarial rows are 0.0 exactly; the
    reconstruction rows are not (its gradient reaches the embedding through the generator's
    last bias, the one generated tensor whose gradient needs no other layer's weights).
    """
    grads = game_gradients(model, images, scale, seed, detached=True)    # as each step applies
    owned = _owned(model)
    rows = []
    for term, player in _PLAYER.items():
        for group in owned[player]:
            v = grads[term][group]
            rows.append({"player": player, "term": term, "parameters": group,
                         "max |grad|": float(v.abs().max()) if v.numel() else 0.0})
    return rows


@dataclass(frozen=True)
class Cancellation:
    """Case 1 on the shared encoder: the sum of both players' descent directions.

    Norms are of flat gradients over the encoder's parameters; "relative" ones divide by
    ``adversarial``, the norm of the critic's adversarial gradient alone.
    """
    adversarial: float        # ‖∇ critic adversarial‖: the size of what should cancel
    zero_sum: float           # ‖∇ critic adv + ∇ generator zero-sum‖ / adversarial (≈ 0): how
    #                           far the encoder's whole update is from α∇rec + λ∇GP
    usual: float              # same with the usual −E[D(G(z))] generator loss / adversarial
    as_trained: float         # same with the training step's detached paths / adversarial
    rec: float                # ‖α∇rec‖: the update the encoder is left with (with λ = 0)

    def as_rows(self) -> list[dict[str, object]]:
        """One table row per form of the generator loss."""
        return [{"generator loss": "zero-sum E[D(x)] − E[D(G(z))]", "paths": "full",
                 "residual / ‖adversarial‖": self.zero_sum},
                {"generator loss": "usual −E[D(G(z))]", "paths": "full",
                 "residual / ‖adversarial‖": self.usual},
                {"generator loss": "usual −E[D(G(z))]", "paths": "as trained (detached)",
                 "residual / ‖adversarial‖": self.as_trained}]


def cancellation(model: HyperGAN, images: Sequence[torch.Tensor] | torch.Tensor,
                 scale: int | None = None, seed: int = 0) -> Cancellation:
    """Measure Case 1's cancellation on ``model``'s shared encoder (see the module docstring).

    ``model`` must use ``extractor="shared-both"``: only there do both optimisers own the
    encoder (:func:`mil_core.models.hypergan.critic_parameters`).
    """
    if model.config.extractor != "shared-both":
        raise ConfigError("cancellation: the model must use extractor='shared-both' (Case 1), "
                          f"got {model.config.extractor!r}")
    full = {t: row["G encoder"] for t, row in game_gradients(model, images, scale, seed).items()}
    det = {t: row["G encoder"] for t, row in
           game_gradients(model, images, scale, seed, detached=True).items()}
    adv = float(full["critic adversarial"].norm())
    denom = max(adv, 1e-30)
    zs = full["critic adversarial"] + full["generator zero-sum"]
    return Cancellation(
        adversarial=adv, zero_sum=float(zs.norm()) / denom,
        usual=float((full["critic adversarial"] + full["generator adversarial"]).norm()) / denom,
        as_trained=float((det["critic adversarial"] + det["generator adversarial"]).norm()) / denom,
        rec=float(full["reconstruction"].norm()))
