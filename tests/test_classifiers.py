"""GIT's classifiers (REFERENCE §6): CIFAR-style ResNets with option-A shortcuts and SmallCNN."""
import math

import pytest
import torch
import torch.nn as nn

from mil_core.errors import ConfigError
from mil_core.models import CLASSIFIERS, CifarResNet, SmallCNN, make_classifier
from mil_core.models.classifiers import BasicBlockA, CosineLinear, ShortcutA


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# exact counts, checked by hand: convs + BatchNorm (γ, β) + the linear head
#   ResNet-20, 1 channel, 49 classes: 267,408 conv + 1,376 BN + 3,185 fc = 271,969 (≈ 0.27 M, §6)
#   ResNet-20, 3 channels, 10 classes: 269,722 (He et al. 2016, Table 6: 0.27 M)
#   ResNet-32, 3 channels, 10 classes: 464,154 (He et al.: 0.46 M)
@pytest.mark.parametrize("name, n_classes, in_ch, expected", [
    ("resnet20", 49, 1, 271_969),
    ("resnet20", 10, 3, 269_722),
    ("resnet32", 10, 1, 463_866),
    ("resnet32", 10, 3, 464_154),
])
def test_resnet_parameter_counts(name, n_classes, in_ch, expected):
    assert n_params(make_classifier(name, n_classes, in_ch)) == expected


def test_smallcnn_is_small():
    assert 50_000 <= n_params(make_classifier("smallcnn", 49)) <= 100_000
    assert 50_000 <= n_params(make_classifier("smallcnn", 10)) <= 100_000


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("size, in_ch", [(28, 1), (32, 3), (15, 1)])
def test_shapes(name, size, in_ch):
    model = make_classifier(name, 7, in_ch)
    x = torch.rand(3, in_ch, size, size)                  # (B, in_ch, H, W) in [0, 1]
    logits = model(x)
    assert logits.shape == (3, 7)
    feats = model.features(x)
    assert feats.shape == (3, model.feature_dim)
    torch.testing.assert_close(model.fc(feats), logits)
    logits.sum().backward()                                # gradients reach the first layer
    first = next(model.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_resnet_depth_is_6n_plus_2():
    for n in (3, 5):
        model = CifarResNet(n, 10)
        n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        n_fc = sum(isinstance(m, nn.Linear) for m in model.modules())
        assert model.depth == 6 * n + 2 == n_conv + n_fc   # no 1×1 projection convs (option A)
        assert all(isinstance(m.shortcut, ShortcutA) for m in model.modules()
                   if isinstance(m, BasicBlockA))


def test_option_a_shortcut_subsamples_and_zero_pads():
    sc = ShortcutA(16, 32, 2)
    assert n_params(sc) == 0 and len(list(sc.buffers())) == 0
    x = torch.randn(2, 16, 28, 28)
    y = sc(x)
    assert y.shape == (2, 32, 14, 14)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 16:], torch.zeros(2, 16, 14, 14))
    torch.testing.assert_close(ShortcutA(16, 16, 1)(x), x)
    # odd sizes: the shortcut and the stride-2 conv agree (⌈7 / 2⌉ = 4)
    block = BasicBlockA(32, 64, 2)
    assert block(torch.randn(2, 32, 7, 7)).shape == (2, 64, 4, 4)
    # the only parameters of a downsampling block are its two convs and two BatchNorms
    assert n_params(block) == 32 * 64 * 9 + 64 * 64 * 9 + 4 * 64


def test_init_is_kaiming_and_batchnorm_is_identity():
    torch.manual_seed(0)
    model = make_classifier("resnet20", 10)
    conv = model.stages[2][1].conv1                         # 64 -> 64, fan_out = 64·9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    assert torch.equal(model.fc.bias, torch.zeros(10))


def test_inputs_are_mapped_to_minus_one_one():
    """The models normalise [0, 1] inputs themselves: a black image is -1 at the first conv."""
    model = make_classifier("smallcnn", 4).eval()
    seen = {}

    def hook(module, inputs, output):
        seen["x"] = inputs[0]
    model.body[0].register_forward_hook(hook)
    model(torch.zeros(1, 1, 28, 28))
    assert torch.equal(seen["x"], -torch.ones(1, 1, 28, 28))


def test_cosine_head_logits_are_cosines():
    model = make_classifier("smallcnn", 5, cosine_head=True)
    assert isinstance(model.fc, CosineLinear)
    logits = model(torch.rand(8, 1, 28, 28))
    assert logits.abs().max() <= 1 + 1e-6
    w = model.fc.weight.detach()
    feats = model.features(torch.ones(1, 1, 28, 28))
    expected = torch.nn.functional.cosine_similarity(feats[:, None], w[None], dim=2)
    torch.testing.assert_close(model.fc(feats), expected)


def test_eval_mode_is_deterministic_and_batch_independent():
    model = make_classifier("resnet20", 3)
    model(torch.rand(16, 1, 28, 28))                        # update BN running stats
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(x)[:1], model(x[:1]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="vgg16", n_classes=10), "unknown classifier 'vgg16'"),
    (dict(name="resnet20", n_classes=0), "n_classes must be a positive integer"),
    (dict(name="smallcnn", n_classes=10, in_ch=True), "in_ch must be a positive integer"),
    (dict(name="resnet32", n_classes=2.5), "n_classes must be a positive integer"),
])
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_classifier(**kwargs)
    with pytest.raises(ConfigError, match="n_blocks"):
        CifarResNet(0, 10)
    with pytest.raises(ConfigError, match="out_ch"):
        ShortcutA(32, 16, 2)
    assert isinstance(make_classifier("smallcnn", 2), SmallCNN)
