"""Classifiers of Generative Invariance Transfer's long-tail experiments (REFERENCE §6).

- **CIFAR-style ResNet** (He et al. 2016, §4.2): a 3×3 conv with 16 channels, then three stages
  of ``n`` basic blocks with 16, 32 and 64 channels (stages 2 and 3 halve the image), global
  average pooling and a linear layer: ``6n + 2`` weighted layers. ``resnet20`` (n = 3, ~0.27 M
  parameters at 49 classes: GIT's K49 model) and ``resnet32`` (n = 5, ~0.46 M: GIT's CIFAR-LT
  model). Shortcuts follow the paper's *option A*: the identity, and where a block changes the
  shape, a stride-2 subsampling ``x[:, :, ::2, ::2]`` with the new channels zero-padded, so the
  shortcuts add no parameters. BatchNorm after every conv; Kaiming-normal init.
- **SmallCNN**: four 3×3 conv + BatchNorm + ReLU layers (16, 32, 64, 96 channels, 2×2 max-pooling
  after the first three: 28 → 14 → 7 → 4), global average pooling and a linear layer (~83 k
  parameters at 49 classes), for fast CPU runs (the ``smoke`` profile). Narrow early layers keep
  the full-resolution work small: ~6× cheaper per step than ResNet-20 at 28×28.

Inputs: float ``(B, in_ch, H, W)`` in [0, 1] — what :func:`mil_core.data.nuisance.to_float`
returns. Each model maps them to [-1, 1] itself (``2x − 1``), so the trainer, ``evaluate``,
``predict_proba`` and the eKLD metric all feed the same [0, 1] images and cannot disagree about
normalisation. Any H, W ≥ 4 work (28×28 for GIT's MNIST-like data: 28 → 14 → 7 in the ResNet).

``cosine_head=True`` replaces the last linear layer by a cosine classifier (features and class
weights L2-normalised, logits in [−1, 1]), as Cao et al.'s LDAM code does for the LDAM loss
(``use_norm=True``): LDAM scales these logits by s = 30.

Every model exposes ``features(x) -> (B, feature_dim)`` (the pooled penultimate activations) and
``forward(x) = head(features(x)) -> (B, n_classes)`` logits.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["ShortcutA", "BasicBlockA", "CifarResNet", "SmallCNN", "CosineLinear", "CLASSIFIERS",
           "make_classifier"]


def _to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images → [-1, 1] (the models' fixed input normalisation)."""
    return x * 2.0 - 1.0


class CosineLinear(nn.Module):
    """Cosine classifier: ``logits = normalize(x) @ normalize(W)`` in [−1, 1] (no bias).

    The "NormedLinear" head Cao et al. (2019) use with the LDAM loss; the loss multiplies the
    logits by its scale s.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))    # (C, D)
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)                      # nn.Linear's init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, D) -> (B, C)
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()


def _head(in_features: int, n_classes: int, cosine: bool) -> nn.Module:
    return CosineLinear(in_features, n_classes) if cosine else nn.Linear(in_features, n_classes)


# -----------------------------------------------------------------------------
# CIFAR-style ResNet (He et al. 2016, §4.2)

class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the extra output channels.

    ``(B, in_ch, H, W) -> (B, out_ch, ⌈H/stride⌉, ⌈W/stride⌉)``; the identity when the shape does
    not change. Parameter-free. The new channels are appended after the old ones (zeros).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ConfigError(f"ShortcutA: out_ch ({out_ch}) must be >= in_ch ({in_ch}); option A "
                              "only pads channels")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]                          # (B, in, H/s, W/s)
        if self.out_ch != self.in_ch:
            x = F.pad(x, (0, 0, 0, 0, 0, self.out_ch - self.in_ch))            # (B, out, H/s, W/s)
        return x

    def extra_repr(self) -> str:
        return f"{self.in_ch}->{self.out_ch}, stride={self.stride}"


class BasicBlockA(nn.Module):
    """Two 3×3 conv + BatchNorm layers with an option-A shortcut (He et al. 2016, Fig. 2)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = ShortcutA(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) -> (B, out_ch, ⌈H/stride⌉, ⌈W/stride⌉)
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: 16/32/64 channels, n basic blocks per stage.

    ``forward(x)``: x (B, in_ch, H, W) in [0, 1] → logits (B, n_classes).
    """

    widths = (16, 32, 64)   # channels of the three stages (He et al. 2016, §4.2)

    def __init__(self, n_blocks: int, n_classes: int, in_ch: int = 1,
                 cosine_head: bool = False) -> None:
        super().__init__()
        _check_sizes("CifarResNet", n_classes, in_ch)
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
            raise ConfigError(f"CifarResNet: n_blocks must be a positive integer, got "
                              f"{n_blocks!r}")
        self.depth = 6 * n_blocks + 2
        self.n_classes = n_classes
        self.conv = nn.Conv2d(in_ch, self.widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(self.widths[0])
        stages: list[nn.Module] = []
        ch = self.widths[0]
        for i, width in enumerate(self.widths):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlockA(ch, width, stride))
                ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = ch
        self.fc = _head(ch, n_classes, cosine_head)
        _kaiming_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) in [0, 1] -> (B, 64)
        h = F.relu(self.bn(self.conv(_to_signed(x))))   # (B, 16, H, W)
        h = self.stages(h)                               # (B, 64, H/4, W/4)
        return h.mean(dim=(2, 3))                        # (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))                 # (B, n_classes)


# -----------------------------------------------------------------------------
# small CNN for fast CPU runs

class SmallCNN(nn.Module):
    """conv(16)-pool-conv(32)-pool-conv(64)-pool-conv(96)-avgpool-linear; BN + ReLU per conv.

    ``forward(x)``: x (B, in_ch, H, W) in [0, 1] → logits (B, n_classes).
    """

    widths = (16, 32, 64, 96)   # channels of the four conv layers

    def __init__(self, n_classes: int, in_ch: int = 1, cosine_head: bool = False) -> None:
        super().__init__()
        _check_sizes("SmallCNN", n_classes, in_ch)
        self.n_classes = n_classes
        layers: list[nn.Module] = []
        ch = in_ch
        for i, width in enumerate(self.widths):
            layers += [nn.Conv2d(ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(self.widths) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))   # 28 -> 14 -> 7 -> 4
            ch = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch
        self.fc = _head(ch, n_classes, cosine_head)
        _kaiming_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) in [0, 1] -> (B, 96)
        return self.body(_to_signed(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))                 # (B, n_classes)


# -----------------------------------------------------------------------------
# shared helpers and the factory

def _check_sizes(who: str, n_classes: int, in_ch: int) -> None:
    for name, value in (("n_classes", n_classes), ("in_ch", in_ch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{who}: {name} must be a positive integer, got {value!r}")


def _kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal conv and linear weights (He et al. 2015), BatchNorm γ = 1, β = 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


CLASSIFIERS = ("resnet20", "resnet32", "smallcnn")


def make_classifier(name: str, n_classes: int, in_ch: int = 1,
                    cosine_head: bool = False) -> nn.Module:
    """A classifier by name: ``resnet20`` (K49, §6), ``resnet32`` (CIFAR) or ``smallcnn`` (fast).

    ``cosine_head``: a cosine classifier instead of the last linear layer (for LDAM).
    """
    if name == "resnet20":
        return CifarResNet(3, n_classes, in_ch, cosine_head)
    if name == "resnet32":
        return CifarResNet(5, n_classes, in_ch, cosine_head)
    if name == "smallcnn":
        return SmallCNN(n_classes, in_ch, cosine_head)
    raise ConfigError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)} "
                      "(GitConfig.classifier / ClassifierConfig.model)")
