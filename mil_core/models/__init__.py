"""Single-image GAN baselines (SinGAN, ConSinGAN) and the building blocks MIL's nets share."""
from .blocks import (ConvBlock, FiveLayerNet, channels_at_scale, init_weights, pad_for, upsample,
                     zero_pad)
from .singan import SinGAN, SinGANConfig, train_singan
from .consingan import ConSinGAN, ConSinGANConfig, train_consingan
