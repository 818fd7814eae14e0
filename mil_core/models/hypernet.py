"""Hyper-networks that emit every weight of a small convolutional net per image (MIL Sec. 3).

MIL (Bensadoun et al. 2021; REFERENCE §4) does not train one SinGAN per image: an encoder ``e``
maps an image ``I`` to a vector ``e(I)`` and a *projection head* per generated tensor maps that
vector to the tensor's values, ``θ(I) = W·e(I) + b``. The generated tensors are the weights and
biases of a *primary network*: SinGAN's five 3×3 un-padded convolutions (head ``3→C``, three
body ``C→C``, tail ``C→out``), LeakyReLU(0.02), no normalisation, a tanh tail for a generator and
a linear one-channel tail for a critic.

Generated weights are normalised like a He initialisation (REFERENCE §4)::

    w = w_raw / sqrt(in·k·k) · gain        b = b_raw / sqrt(in)
    gain = sqrt(2 / (1 + 0.02²)) (hidden), 5/3 (tanh tail), 1 (linear tail)

so a head whose raw output has unit scale emits well-scaled convolutions whatever the width.

Every image of a batch has its own weights, and the primary nets of a whole batch run as *one*
grouped convolution (:func:`primary_forward`): the batch ``(B, C, H, W)`` becomes
``(1, B·C, H, W)``, the weights ``(B, out, in, k, k)`` become ``(B·out, in, k, k)`` and
``groups=B``. :func:`primary_forward_loop` is the same computation one image at a time, and
``MIL_PRIMARY_CONV=loop`` (or ``mode="loop"``) runs the nets that way (equal to float tolerance).
Grouped is the default on every device: on this project's 2-core CPU the loop wins on the bare
primary net (0.77–0.97 of the grouped time, 16–64 channels, batch 4–16) but not on the whole
cpu-profile training step (1.02×, median of 3 alternating runs, ``benchmarks/bench_roofline.py
--levers``), where the primary nets are a small share of the work; on a GPU one grouped call
is the fast form. On a CPU the grouped convolutions run in channels-last memory
(:func:`mil_core.levers.channels_last`, ``MIL_CHANNELS_LAST``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..levers import channels_last

__all__ = ["PrimarySpec", "LayerWeights", "NetWeights", "primary_forward", "primary_forward_loop",
           "ProjectionHeads", "SharedWeights", "expand_weights", "lerp_weights", "conv_mode",
           "CONV_MODES", "PRIMARY_CONV_ENV"]

PRIMARY_CONV_ENV = "MIL_PRIMARY_CONV"   # force "grouped" or "loop" for every device
CONV_MODES = ("grouped", "loop")
_TRUNK_SLOPE = 0.2                      # LeakyReLU slope inside deeper projection heads

LayerWeights = tuple[torch.Tensor, torch.Tensor]   # (B, out, in, k, k), (B, out)
NetWeights = list[LayerWeights]                      # one primary net, layer by layer


@dataclass(frozen=True)
class PrimarySpec:
    """The shape of one generated primary network (defaults: MIL's generator, REFERENCE §4)."""
    in_ch: int = 3            # input channels (an RGB image or noise map)
    channels: int = 64        # width of the head and body convs (MIL: 64)
    out_ch: int = 3           # 3 for a generator, 1 for a critic
    n_layers: int = 5         # convs: head, n_layers − 2 body, tail (SinGAN: 5)
    kernel: int = 3           # k×k convolutions, stride 1, no padding
    slope: float = 0.02       # LeakyReLU negative slope after every conv but the tail
    tail: str = "tanh"        # "tanh" (generator) or "none" (critic)

    def __post_init__(self) -> None:
        for name in ("in_ch", "channels", "out_ch", "kernel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"PrimarySpec.{name} must be a positive integer, got {v!r}")
        if self.n_layers < 2:
            raise ConfigError(f"PrimarySpec.n_layers must be >= 2, got {self.n_layers}")
        if self.tail not in ("tanh", "none"):
            raise ConfigError(f"PrimarySpec.tail must be 'tanh' or 'none', got {self.tail!r}")

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of every conv, head to tail."""
        c = self.channels
        return [(c, self.in_ch)] + [(c, c)] * (self.n_layers - 2) + [(self.out_ch, c)]

    @property
    def pad(self) -> int:
        """Pixels per side the un-padded convs remove (5 for SinGAN's net)."""
        return self.n_layers * (self.kernel - 1) // 2

    def gain(self, layer: int) -> float:
        """The gain of layer ``layer``'s generated weights (REFERENCE §4)."""
        if layer < self.n_layers - 1:
            return math.sqrt(2.0 / (1.0 + self.slope ** 2))
        return 5.0 / 3.0 if self.tail == "tanh" else 1.0

    def numel(self) -> int:
        """Numbers one primary net needs (114,307 for MIL's 64-channel generator)."""
        k2 = self.kernel ** 2
        return sum(o * i * k2 + o for o, i in self.layer_shapes)


def _check_weights(x: torch.Tensor, weights: NetWeights) -> int:
    if x.dim() != 4:
        raise ConfigError(f"primary_forward: x must be (B, C, H, W), got {tuple(x.shape)}")
    b = weights[0][0].shape[0]
    if x.shape[0] % b:
        raise ConfigError(f"primary_forward: batch {x.shape[0]} is not a multiple of the "
                          f"{b} weight sets")
    return x.shape[0] // b


def expand_weights(weights: NetWeights, repeats: int) -> NetWeights:
    """Repeat every image's weights ``repeats`` times (image-major), for several noise samples
    per image: ``(B, …) → (B·repeats, …)``."""
    if repeats == 1:
        return weights
    return [(w.repeat_interleave(repeats, 0), b.repeat_interleave(repeats, 0))
            for w, b in weights]


def conv_mode(device: torch.device | str) -> str:
    """How :func:`primary_forward` runs on ``device``: ``$MIL_PRIMARY_CONV`` when set, else
    ``"grouped"``, the measured best on both a CPU and a GPU (module docstring)."""
    forced = os.environ.get(PRIMARY_CONV_ENV, "").strip().lower()
    if forced:
        if forced not in CONV_MODES:
            raise ConfigError(f"{PRIMARY_CONV_ENV}={forced!r}: use one of {', '.join(CONV_MODES)} "
                              f"(or unset it for the per-device choice)")
        return forced
    torch.device(device)                          # a bad device name fails here, clearly
    return "grouped"


def primary_forward(x: torch.Tensor, weights: NetWeights, spec: PrimarySpec,
                    mode: str | None = None) -> torch.Tensor:
    """Run a batch of primary nets, sample ``i`` with its own weights.

    ``x``: (B·m, in_ch, H, W), image-major when each of the B weight sets serves m samples.
    ``weights``: per layer ``(w, b)`` with w (B, out, in, k, k), b (B, out), already normalised.
    ``mode``: ``"grouped"`` (one grouped convolution per layer), ``"loop"`` (one ordinary
    convolution per sample) or None for :func:`conv_mode` of ``x``'s device.
    Returns (B·m, out_ch, H − 2·pad, W − 2·pad).
    """
    mode = conv_mode(x.device) if mode is None else mode
    if mode not in CONV_MODES:
        raise ConfigError(f"primary_forward: mode must be one of {CONV_MODES} or None, got "
                          f"{mode!r}")
    if mode == "loop":
        return primary_forward_loop(x, weights, spec)
    weights = expand_weights(weights, _check_weights(x, weights))
    n = x.shape[0]
    h = x.reshape(1, n * x.shape[1], x.shape[2], x.shape[3])         # (1, N·C, H, W)
    fmt = torch.channels_last if channels_last(x.device) else torch.contiguous_format
    h = h.contiguous(memory_format=fmt)                              # a lever: mil_core.levers
    last = len(weights) - 1
    for i, (w, b) in enumerate(weights):
        out, inp, k = w.shape[1], w.shape[2], w.shape[3]
        w = w.reshape(n * out, inp, k, k).contiguous(memory_format=fmt)
        h = F.conv2d(h, w, b.reshape(n * out), groups=n)
        if i < last:
            h = F.leaky_relu(h, spec.slope)
    h = h.reshape(n, -1, h.shape[-2], h.shape[-1]).contiguous()      # (N, out_ch, H', W')
    return torch.tanh(h) if spec.tail == "tanh" else h


def primary_forward_loop(x: torch.Tensor, weights: NetWeights, spec: PrimarySpec) -> torch.Tensor:
    """:func:`primary_forward` computed one sample at a time with ordinary convolutions."""
    weights = expand_weights(weights, _check_weights(x, weights))
    outs = []
    for s in range(x.shape[0]):
        h = x[s:s + 1]                                               # (1, C, H, W)
        for i, (w, b) in enumerate(weights):
            h = F.conv2d(h, w[s], b[s])
            if i < len(weights) - 1:
                h = F.leaky_relu(h, spec.slope)
        outs.append(h)
    h = torch.cat(outs)
    return torch.tanh(h) if spec.tail == "tanh" else h


def _normalise(spec: PrimarySpec, layer: int, w_raw: torch.Tensor, b_raw: torch.Tensor
               ) -> LayerWeights:
    out, inp = spec.layer_shapes[layer]
    k = spec.kernel
    w = w_raw.reshape(-1, out, inp, k, k) * (spec.gain(layer) / math.sqrt(inp * k * k))
    b = b_raw.reshape(-1, out) / math.sqrt(inp)
    return w, b


class ProjectionHeads(nn.Module):
    """The projection heads of one primary net: embedding ``e`` → every generated tensor.

    ``layers=1, rank=0`` is MIL's head (Sec. 3): one ``Linear(embed_dim, numel_t)`` per generated
    tensor ``t``, ``θ_t = W_t·e + b_t``, default ``nn.Linear`` initialisation like the reference
    code. Two variants, for the paper's stated main limitation (Sec. 6: 58.6 M head parameters
    per scale at 64 channels):

    - ``layers = L > 1`` (Appendix C's 3- and 5-layer heads): a trunk of ``L − 1``
      ``Linear(embed_dim, embed_dim)`` + LeakyReLU(0.2) shared by the net's tensors, then the
      per-tensor linear maps. The trunk is He-initialised for the 0.2 slope, so its output has
      the scale of ``e`` and the generated weights start as well scaled as MIL's;
    - ``rank = r > 0`` (compact, beyond the paper): a per-net coefficient layer
      ``c = V·h`` (``V``: r × embed_dim, no bias, ``N(0, 1/embed_dim)`` so that ``c`` keeps the
      scale of ``h``) and per-tensor maps ``θ_t = U_t·c + b_t`` (``U_t``: numel_t × r). Each
      generated net is then a mix of ``r`` basis nets (the columns of the ``U_t``) with per-image
      coefficients ``c(I)``; ``W_t = U_t·V`` is a rank-``r`` factorisation of MIL's head, equal
      to it in function class when ``r ≥ embed_dim``.

      ``fan_in_scale`` (default): the maps read ``(D/r)·c`` and start with weights ``r/D``
      times smaller — the same function at initialisation, but Adam, whose step is about the
      learning rate per parameter whatever its gradient's size, then moves each generated number
      by ``lr·Σ_k |(D/r)·c_k|`` per step, as much as MIL's heads move it (``lr·Σ_i |e_i|``, D
      inputs), instead of ``r/D`` of it (the learning-rate-per-fan-in rule of μP, Yang & Hu
      2021). Without it a rank-30 head at D = 256 fits ~8× slower in θ-space (notebook 12).

    :meth:`count` gives the parameter count in closed form. ``forward(e)``: e (B, embed_dim) →
    normalised :data:`NetWeights` for the B images.
    """

    def __init__(self, spec: PrimarySpec, embed_dim: int, layers: int = 1, rank: int = 0,
                 fan_in_scale: bool = True) -> None:
        super().__init__()
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"ProjectionHeads: layers must be an integer >= 1, got {layers!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ConfigError(f"ProjectionHeads: rank must be an integer >= 0 (0: full linear "
                              f"heads), got {rank!r}")
        self.spec, self.layers, self.rank = spec, layers, rank
        trunk: list[nn.Module] = []
        for _ in range(layers - 1):
            lin = nn.Linear(embed_dim, embed_dim)
            nn.init.kaiming_normal_(lin.weight, a=_TRUNK_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(lin.bias)
            trunk += [lin, nn.LeakyReLU(_TRUNK_SLOPE)]
        self.trunk = nn.Sequential(*trunk)                     # empty for MIL's heads
        self.coefficients: nn.Linear | None = None
        width = embed_dim
        self.coefficient_scale = 1.0               # c is multiplied by this before the maps
        if rank:
            self.coefficients = nn.Linear(embed_dim, rank, bias=False)
            nn.init.normal_(self.coefficients.weight, std=embed_dim ** -0.5)
            width = rank
            if fan_in_scale:
                self.coefficient_scale = embed_dim / rank
        k2 = spec.kernel ** 2
        self.weight_heads = nn.ModuleList(nn.Linear(width, o * i * k2)
                                          for o, i in spec.layer_shapes)
        self.bias_heads = nn.ModuleList(nn.Linear(width, o) for o, _ in spec.layer_shapes)
        if self.coefficient_scale != 1.0:          # same outputs at initialisation
            with torch.no_grad():
                for lin in (*self.weight_heads, *self.bias_heads):
                    lin.weight.div_(self.coefficient_scale)

    @staticmethod
    def count(spec: PrimarySpec, embed_dim: int, layers: int = 1, rank: int = 0) -> int:
        """Parameters of the heads of one net (D = embed_dim, N = ``spec.numel()``):
        ``(L−1)(D² + D) + (D + 1)·N`` for full heads, ``(L−1)(D² + D) + r·D +
        (r + 1)·N`` at rank r (58,639,491 for MIL's 64-channel generator, D = 512, L = 1)."""
        trunk = (layers - 1) * (embed_dim * embed_dim + embed_dim)
        if rank:
            return trunk + rank * embed_dim + (rank + 1) * spec.numel()
        return trunk + (embed_dim + 1) * spec.numel()

    def forward(self, e: torch.Tensor) -> NetWeights:
        # e: (B, embed_dim) -> [(B, out, in, k, k), (B, out)] per layer
        h = self.trunk(e)                                      # (B, embed_dim)
        if self.coefficients is not None:
            h = self.coefficients(h) * self.coefficient_scale  # (B, rank): the mixing weights
        return [_normalise(self.spec, i, wh(h), bh(h))
                for i, (wh, bh) in enumerate(zip(self.weight_heads, self.bias_heads))]


class SharedWeights(nn.Module):
    """An ordinary (not generated) primary net: the same weights for every image.

    MIL's single-image regime and its *shared discriminator* ablation use one such critic for all
    images (REFERENCE §4). ``forward(batch)`` returns its weights as :data:`NetWeights` (expanded
    views, no copies) so it runs through :func:`primary_forward` like a generated net.

    The parameters *are* the conv weights, He-initialised (``N(0, 1)·gain/sqrt(in·k·k)``, biases
    0), as in an ordinary conv net. They are deliberately not stored raw and rescaled in the
    forward pass like generated weights: with Adam that would shrink every update by
    ``sqrt(in·k·k)`` and leave the critic far behind the generator.
    """

    def __init__(self, spec: PrimarySpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = spec
        k = spec.kernel
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(o, i, k, k, generator=generator)
                         * (spec.gain(layer) / math.sqrt(i * k * k)))
            for layer, (o, i) in enumerate(spec.layer_shapes))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o, _ in spec.layer_shapes)

    def forward(self, batch: int) -> NetWeights:
        # -> [(batch, out, in, k, k), (batch, out)] per layer (expanded views, no copies)
        return [(w.unsqueeze(0).expand(batch, *w.shape), b.unsqueeze(0).expand(batch, -1))
                for w, b in zip(self.weights, self.biases)]


def lerp_weights(a: NetWeights, b: NetWeights, t: float) -> NetWeights:
    """``(1 − t)·a + t·b`` layer by layer (MIL's weight-space interpolation, REFERENCE §4)."""
    return [(torch.lerp(wa, wb, t), torch.lerp(ba, bb, t)) for (wa, ba), (wb, bb) in zip(a, b)]
