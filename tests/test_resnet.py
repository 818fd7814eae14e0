"""The ResNet image encoder of MIL's hyper-networks (mil_core.models.resnet): ResNet-34 and
resnet-small architectures, output shapes, per-image GroupNorm versus batch-dependent BatchNorm,
gradients reaching every parameter, and configuration errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mil_core.errors import ConfigError
from mil_core.models.resnet import (BACKBONES, BasicBlock, ResNetConfig, ResNetEncoder,
                                    backbone_config)


def _blocks_per_stage(enc: ResNetEncoder) -> tuple[int, ...]:
    return tuple(sum(isinstance(m, BasicBlock) for m in stage.children()) for stage in enc.stages)


# --- architecture ------------------------------------------------------------------------
def test_resnet34_matches_he_table1():
    # the paper's encoder: ResNet-34 (3, 4, 6, 3 basic blocks; 64…512 channels; 64-ch stem)
    cfg = backbone_config("resnet34")
    assert cfg == BACKBONES["resnet34"] == ResNetConfig()
    assert cfg.blocks == (3, 4, 6, 3) and cfg.widths == (64, 128, 256, 512)
    assert cfg.stem_width == 64 and cfg.norm == "group"
    enc = ResNetEncoder(cfg, 512)
    assert _blocks_per_stage(enc) == (3, 4, 6, 3)
    stem_conv = enc.stem[0]
    assert (stem_conv.kernel_size, stem_conv.stride) == ((7, 7), (2, 2))
    assert isinstance(enc.stem[3], nn.MaxPool2d)
    # trunk parameters equal torchvision's resnet34 without its fc (21,284,672; GroupNorm has
    # the same affine parameters as BatchNorm); MIL's Linear(512, 512) comes on top
    trunk = sum(p.numel() for n, p in enc.named_parameters() if not n.startswith("fc."))
    assert trunk == 21_284_672
    assert (enc.fc.in_features, enc.fc.out_features) == (512, 512)
    with torch.no_grad():
        out = enc(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert out.shape == (2, 512)
    assert torch.isfinite(out).all()


def test_resnet_small_shapes():
    # the cpu/smoke backbone: one block per stage, 16…128 channels, any embed_dim
    cfg = backbone_config("resnet-small")
    assert cfg.blocks == (1, 1, 1, 1) and cfg.widths == (16, 32, 64, 128)
    assert cfg.stem_width == 16
    enc = ResNetEncoder(cfg, 16)
    assert _blocks_per_stage(enc) == (1, 1, 1, 1)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert enc(x).shape == (3, 16)
    assert enc(torch.rand(1, 3, 64, 64)).shape == (1, 16)      # any square size pools to 1 vector
    # the trunk reduces 32 px by 32: the last stage's map is 1×1 with 128 channels
    assert enc.stages(enc.stem(x)).shape == (3, 128, 1, 1)


def test_group_norm_groups_divide_channels():
    # GroupNorm uses the largest divisor of the channel count not above `groups`
    enc = ResNetEncoder(ResNetConfig(blocks=(1, 1), widths=(12, 20), stem_width=10, groups=8), 4)
    norms = [m for m in enc.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())
    assert {(m.num_channels, m.num_groups) for m in norms} == {(10, 5), (12, 6), (20, 5)}
    enc_b = ResNetEncoder(backbone_config("resnet-small", norm="batch"), 4)
    assert not any(isinstance(m, nn.GroupNorm) for m in enc_b.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enc_b.modules()) > 0


def test_every_parameter_gets_a_gradient():
    # DDP (find_unused_parameters=False) needs every parameter in the graph
    torch.manual_seed(0)
    enc = ResNetEncoder(backbone_config("resnet-small"), 8)
    enc(torch.rand(2, 3, 32, 32) * 2 - 1).pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert enc.fc.weight.grad.abs().sum() > 0


# --- normalisation: per image or per batch -----------------------------------------------
def test_group_norm_embedding_is_per_image():
    # the default: an image's embedding does not depend on its batch mates, in train and eval
    torch.manual_seed(0)
    enc = ResNetEncoder(backbone_config("resnet-small"), 8)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    for mode in (True, False):
        enc.train(mode)
        with torch.no_grad():
            alone = enc(x[:1])
            batch = enc(x)
        torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=1e-5)
    enc.train()
    with torch.no_grad():
        train_out = enc(x)
    enc.eval()
    with torch.no_grad():
        eval_out = enc(x)
    torch.testing.assert_close(train_out, eval_out, atol=0, rtol=0)   # same function


def test_batch_norm_embedding_depends_on_batch_in_train_mode():
    # norm="batch" (the reference's choice) mixes batch mates in train mode; eval does not
    torch.manual_seed(0)
    enc = ResNetEncoder(backbone_config("resnet-small", norm="batch"), 8)
    x = torch.rand(5, 3, 64, 64) * 2 - 1
    enc.train()
    with torch.no_grad():
        a = enc(x[[0, 1, 2]])[0]
        b = enc(x[[0, 3, 4]])[0]
    assert (a - b).abs().max() > 1e-3
    enc.eval()
    with torch.no_grad():
        a = enc(x[[0, 1, 2]])[0]
        b = enc(x[[0, 3, 4]])[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# --- errors ------------------------------------------------------------------------------
def test_bad_configs_raise_config_error():
    with pytest.raises(ConfigError, match="resnet50"):
        backbone_config("resnet50")
    with pytest.raises(ConfigError, match="norm"):
        ResNetEncoder(ResNetConfig(norm="layer"), 8)
    with pytest.raises(ConfigError, match="norm"):
        ResNetEncoder(backbone_config("resnet-small", norm="instance"), 8)
    with pytest.raises(ConfigError, match="same non-zero length"):
        ResNetEncoder(ResNetConfig(blocks=(1, 1), widths=(8,)), 8)
    with pytest.raises(ConfigError, match="positive"):
        ResNetEncoder(ResNetConfig(blocks=(0,), widths=(8,)), 8)
    with pytest.raises(ConfigError, match="out_dim"):
        ResNetEncoder(backbone_config("resnet-small"), 0)
