"""Shared building blocks of the single-image GANs (SinGAN, ConSinGAN) and MIL's primary nets.

SinGAN (Shaham et al., ICCV 2019, Sec. 2.1 and Fig. 4; REFERENCE §2) uses at every scale the same
small fully-convolutional network for the generator and the discriminator: five 3×3 convolutions
(head, three body blocks, tail), stride 1, *no padding*, BatchNorm and LeakyReLU(0.2) after every
conv but the last. The generator's tail is ``tanh`` (3 output channels); the discriminator's tail
is linear with one output channel, so it is a *patch critic* whose receptive field is 11×11.

Because no conv pads, each one shrinks the map by 1 px per side: the input is zero-padded once by
:func:`pad_for` (5) px so the output has the size of the un-padded input (SinGAN pads noise and
image once, by 5 px, with zeros).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError

__all__ = ["ConvBlock", "FiveLayerNet", "init_weights", "channels_at_scale", "pad_for",
           "zero_pad", "upsample", "stream_seed"]


class ConvBlock(nn.Sequential):
    """Conv ``kernel_size``×``kernel_size`` (stride 1, no padding) → [BatchNorm] → LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm: bool = True, slope: float = 0.2,
                 kernel_size: int = 3) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, stride=1, padding=0)]
        if norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(slope))
        super().__init__(*layers)


class FiveLayerNet(nn.Module):
    """SinGAN's per-scale network: head, 3 body blocks, tail conv (REFERENCE §2).

    ``tail="tanh"``: the generator (``out_ch`` 3). ``tail="none"``: a linear tail, used by the
    patch discriminator (``out_ch`` 1). With 3×3 convs an ``H×W`` input gives ``(H−10)×(W−10)``.
    """

    def __init__(self, in_ch: int, channels: int, out_ch: int, tail: str = "tanh",
                 norm: bool = True, slope: float = 0.2) -> None:
        super().__init__()
        if tail not in ("tanh", "none"):
            raise ValueError(f"FiveLayerNet: tail must be 'tanh' or 'none', got {tail!r}")
        self.head = ConvBlock(in_ch, channels, norm, slope)
        self.body = nn.Sequential(*[ConvBlock(channels, channels, norm, slope) for _ in range(3)])
        tail_layers: list[nn.Module] = [nn.Conv2d(channels, out_ch, 3, stride=1, padding=0)]
        if tail == "tanh":
            tail_layers.append(nn.Tanh())
        self.tail = nn.Sequential(*tail_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) -> (B, out_ch, H - 10, W - 10)
        return self.tail(self.body(self.head(x)))


@torch.no_grad()
def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """SinGAN's init: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0.

    Draws on the CPU from ``generator`` (when given) so an initialisation is reproducible
    whatever else used torch's global RNG; returns ``module`` for chaining.
    """
    def normal(t: torch.Tensor, mean: float) -> torch.Tensor:
        return (torch.randn(t.shape, generator=generator) * 0.02 + mean).to(t)

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.copy_(normal(m.weight, 0.0))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(normal(m.weight, 1.0))
            m.bias.zero_()
    return module


def channels_at_scale(n: int, base: int = 32, max_channels: int = 128) -> int:
    """Channels of scale ``n`` (0 = coarsest): ``base·2^(n//4)``, capped at ``max_channels``.

    SinGAN: ``nfc = 32`` doubled every 4 scales up to 128 → 32, 32, 32, 32, 64, 64, 64, 64, 128, …
    """
    if n < 0:
        raise ValueError(f"channels_at_scale: scale index must be >= 0, got {n}")
    return int(min(base * 2 ** (n // 4), max(max_channels, base)))


def pad_for(net: nn.Module) -> int:
    """Pixels per side that ``net``'s un-padded convs remove (5 for :class:`FiveLayerNet`).

    Zero-pad the input by this much (:func:`zero_pad`) for an output of the input's size.
    """
    total = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride != (1, 1):
                raise ValueError("pad_for: only stride-1 convolutions keep a fixed shrink")
            k, d, p = m.kernel_size[0], m.dilation[0], m.padding
            p = p[0] if isinstance(p, tuple) else 0
            total += (k - 1) * d - 2 * p
    if total % 2:
        raise ValueError(f"pad_for: the convs shrink the map by an odd {total} px")
    return total // 2


def zero_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad ``(B, C, H, W)`` by ``pad`` px on every side → ``(B, C, H+2·pad, W+2·pad)``."""
    return F.pad(x, (pad, pad, pad, pad)) if pad else x


def upsample(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of ``(B, C, h, w)`` to ``shape`` (between scales).

    Returns ``x`` itself when it already has ``shape``.
    """
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    return F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)


def stream_seed(seed: int) -> int:
    """The seed of a trainer's own random stream, derived from the user's ``seed``.

    Every GAN trainer here draws z* (the fixed reconstruction noise) early from its stream. Were
    that stream ``torch.Generator().manual_seed(seed)``, a user who samples with the same
    ``manual_seed(seed)`` would replay z*, and "sample 0" would be the reconstruction. So the
    stream is seeded with a multiplicative (Knuth) hash of ``seed`` kept within 32 bits: torch's
    CPU generator uses only the low 32 bits of a seed, so a plain offset beyond them would
    collide. Shared by SinGAN, ConSinGAN and the MIL hyper-GAN (where it was first needed).
    """
    return (int(seed) * 2654435761 + 0x9E3779B9) % 2 ** 32


def check_gan_image(image: object, what: str) -> torch.Tensor:
    """Validate one training image for a single-image GAN and return it as float in [-1, 1].

    Raises :class:`DataError` (naming ``what``) unless ``image`` is a finite float tensor
    (3, H, W) with values in [-1, 1] (a 1e-4 tolerance, then clamped). The input is not modified.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise DataError(f"{what} expects one image tensor (3, H, W) in [-1, 1], got {got}; "
                        "load images with mil_core.data.load_image.")
    if not image.is_floating_point():
        raise DataError(f"{what} expects a float image in [-1, 1], got {image.dtype}; convert "
                        "with x.float() / 127.5 - 1.")
    if not bool(torch.isfinite(image).all()):
        raise DataError(f"{what}: the image contains NaN or infinite values.")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise DataError(f"{what} expects pixel values in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                        "images in [0, 1] become [-1, 1] with x * 2 - 1.")
    return image.detach().float().clamp(-1, 1)
