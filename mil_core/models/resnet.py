"""The image encoder of MIL's hyper-networks: a ResNet written here (no torchvision).

MIL (Bensadoun et al. 2021, Sec. 3; REFERENCE §4) embeds each training image with a ResNet-34
(He et al. 2016, Table 1: basic blocks, stages of 3, 4, 6, 3 blocks with 64, 128, 256, 512
channels, a 7×7 stride-2 stem and a 3×3 max-pool), average-pools the last stage to a 512-d
vector and maps it with ``Linear(512, embed_dim)``. The input is a fixed-size copy of the image
(128×128 in [-1, 1], aspect ignored), so the embedding does not depend on the image's size.

``resnet-small`` keeps the architecture with one block per stage and 16…128 channels, for the
``cpu`` and ``smoke`` profiles.

Normalisation: the official code uses BatchNorm and leaves it in train mode at test time, so an
image's embedding — and hence its whole GAN — depends on the other images of its batch
(REFERENCE §4). The default here is GroupNorm, which normalises each image on its own: training
and evaluation compute the same function and a batch split across DDP processes gives the same
embeddings as one process. ``norm="batch"`` reproduces the reference's choice; then
:meth:`ResNetEncoder.eval` does switch to the running statistics (its models are put in eval mode
for every generation).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["ResNetConfig", "ResNetEncoder", "BACKBONES", "backbone_config",
           "load_torchvision_resnet"]


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of a ResNet encoder (defaults: ResNet-34, He et al. 2016, Table 1)."""
    blocks: tuple[int, ...] = (3, 4, 6, 3)         # basic blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels per stage; stages 2… halve the size
    stem_width: int = 64                           # channels of the 7×7 stride-2 stem conv
    norm: str = "group"                            # "group" (per image), "batch" (reference)
    groups: int = 8                                # GroupNorm groups (clipped to the channels)

    def validate(self) -> None:
        if len(self.blocks) != len(self.widths) or not self.blocks:
            raise ConfigError("ResNetConfig: blocks and widths need the same non-zero length, "
                              f"got {self.blocks} and {self.widths}")
        if any(b < 1 for b in self.blocks) or any(w < 1 for w in self.widths) \
                or self.stem_width < 1:
            raise ConfigError(f"ResNetConfig: blocks, widths and stem_width must be positive, "
                              f"got {self.blocks}, {self.widths}, {self.stem_width}")
        if self.norm not in ("group", "batch"):
            raise ConfigError(f"ResNetConfig.norm must be 'group' or 'batch', got {self.norm!r}")


BACKBONES: dict[str, ResNetConfig] = {
    "resnet34": ResNetConfig(),
    "resnet-small": ResNetConfig(blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_width=16,
                                 groups=4),
}


def backbone_config(name: str, norm: str = "group") -> ResNetConfig:
    """The :class:`ResNetConfig` of a named backbone (``resnet34`` or ``resnet-small``)."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    base = BACKBONES[name]
    return ResNetConfig(base.blocks, base.widths, base.stem_width, norm, base.groups)


def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    g = groups
    while channels % g:          # largest divisor of `channels` not above `groups`
        g -= 1
    return nn.GroupNorm(g, channels)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (a 1×1 projection when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = _norm(norm, out_ch, groups)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = _norm(norm, out_ch, groups)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          _norm(norm, out_ch, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride)
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet trunk → global average pool → ``Linear(widths[-1], out_dim)``.

    ``forward(x)``: x (B, 3, S, S) in [-1, 1] → (B, out_dim). The last linear layer is MIL's
    ``Linear(512, 512)`` after the pooled ResNet-34 feature (REFERENCE §4).
    """

    def __init__(self, config: ResNetConfig, out_dim: int) -> None:
        super().__init__()
        config.validate()
        if out_dim < 1:
            raise ConfigError(f"ResNetEncoder: out_dim must be positive, got {out_dim}")
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(3, config.stem_width, 7, 2, 3, bias=False),
                                  _norm(config.norm, config.stem_width, config.groups),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        stages: list[nn.Module] = []
        in_ch = config.stem_width
        for i, (n_blocks, width) in enumerate(zip(config.blocks, config.widths)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, width, stride, config.norm, config.groups))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_ch, out_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, S, S) -> (B, out_dim)
        h = self.stages(self.stem(x))               # (B, C, S/32, S/32)
        return self.fc(h.mean(dim=(2, 3)))          # (B, out_dim)


# --- weights from a torchvision-format ResNet (Appendix C's frozen pretrained backbone) --------
IMAGENET_MEAN = (0.485, 0.456, 0.406)   # torchvision's input normalisation, RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_name(key: str) -> str | None:
    """Our parameter name for a torchvision ResNet key (None: the 1000-way classifier)."""
    if key.startswith("fc."):
        return None
    parts = key.split(".")
    if parts[0] in ("conv1", "bn1"):
        return ".".join(["stem", "0" if parts[0] == "conv1" else "1", *parts[1:]])
    if parts[0].startswith("layer"):
        stage, block, rest = int(parts[0][5:]) - 1, parts[1], parts[2:]
        if rest[0] == "downsample":
            rest = ["shortcut", *rest[1:]]
        elif rest[0].startswith("bn"):
            rest = ["norm" + rest[0][2:], *rest[1:]]
        return ".".join(["stages", str(stage), block, *rest])
    return key


def load_torchvision_resnet(encoder: ResNetEncoder, state: dict[str, torch.Tensor],
                            source: str = "the weights") -> None:
    """Copy a torchvision-format ResNet ``state`` (``conv1``, ``bn1``, ``layer1.0.conv1`` …) into
    ``encoder``'s trunk; its ``fc`` (the classifier) is dropped, ``encoder.fc`` stays as it is.

    torchvision's nets read ImageNet-normalised RGB in [0, 1]; ours read [-1, 1]. The change of
    input is folded into the stem: the 7×7 conv is scaled by 1 / (2·std) per input channel and
    the constant it then misses is moved into the BatchNorm's running mean, which is exact in
    evaluation mode (how a frozen encoder runs) except within 3 pixels of the border, where
    the zero padding differs. Needs ``norm="batch"`` (the statistics are BatchNorm's).
    Raises ConfigError naming ``source`` and the first key that does not fit.
    """
    if encoder.config.norm != "batch":
        raise ConfigError(f"{source}: torchvision ResNet weights carry BatchNorm statistics; "
                          "build the encoder with norm='batch' (HyperGANConfig(norm='batch'))")
    own = encoder.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _torchvision_name(key)
        if name is None:
            continue
        if name not in own or own[name].shape != value.shape:
            got = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
            want = tuple(own[name].shape) if name in own else "no such parameter"
            raise ConfigError(f"{source}: {key!r} does not fit this encoder ({got} vs {want}); "
                              "expected a torchvision ResNet of the configured backbone "
                              "(resnet34: HyperGANConfig(backbone='resnet34'))")
        mapped[name] = value.detach().to(own[name].dtype)
    missing = sorted(set(own) - set(mapped) - {"fc.weight", "fc.bias"})
    if missing:
        raise ConfigError(f"{source}: no value for {len(missing)} encoder tensors, e.g. "
                          f"{missing[0]!r}; expected a full torchvision ResNet state dict")
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    shift = ((0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).view(1, 3, 1, 1)
    w = mapped["stem.0.weight"]                                   # (C, 3, 7, 7)
    mapped["stem.0.weight"] = w / (2 * std)                       # x/(2·std) + shift, x ∈ [-1, 1]
    mapped["stem.1.running_mean"] = mapped["stem.1.running_mean"] - (w * shift).sum((1, 2, 3))
    mapped["fc.weight"], mapped["fc.bias"] = own["fc.weight"], own["fc.bias"]
    encoder.load_state_dict(mapped)
