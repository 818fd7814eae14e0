"""Single-image GAN baselines (SinGAN, ConSinGAN, HP-VAE-GAN), MIL's hyper-GAN and the blocks they share."""
from .blocks import (ConvBlock, FiveLayerNet, channels_at_scale, init_weights, pad_for, upsample,
                     zero_pad)
from .singan import SinGAN, SinGANConfig, train_singan
from .consingan import ConSinGAN, ConSinGANConfig, train_consingan
from .hpvaegan import HPVAEGAN, HPVAEGANConfig, kl_divergence
from .hpvaegan_train import train_hpvaegan
from .resnet import ResNetConfig, ResNetEncoder, backbone_config
from .hypernet import PrimarySpec, ProjectionHeads, SharedWeights, primary_forward
from .hypergan import REGIMES, HyperGAN, HyperGANConfig
# the trainer (mil_core.models.hypergan_train) is not imported here: it is also the command-line
# entry point `python -m mil_core.models.hypergan_train`, which must not be imported twice.
from .classifiers import CLASSIFIERS, CifarResNet, SmallCNN, make_classifier
from .munit import MUNIT, MUNITConfig
from .munit_train import train_munit
