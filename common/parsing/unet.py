"""The CelebAMask-HQ `face_parsing` U-Net ("parsenet"), with the official state_dict layout.

Module names (`conv1.conv1.0`, `up_concat4.up`, `final`, ...) match the released
`models/parsenet/model.pth`, so it loads with `strict=True` and no renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int, is_batchnorm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 3, 1, 1)]
    if is_batchnorm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNetConv2(nn.Module):
    """Two 3x3 conv (+BN) + ReLU blocks (the original `unetConv2`)."""

    def __init__(self, in_size: int, out_size: int, is_batchnorm: bool):
        super().__init__()
        self.conv1 = _conv_bn_relu(in_size, out_size, is_batchnorm)
        self.conv2 = _conv_bn_relu(out_size, out_size, is_batchnorm)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class UNetUp(nn.Module):
    """Upsample the deeper features, concat [skip, upsampled], then `UNetConv2` (`unetUp`)."""

    def __init__(self, in_size: int, out_size: int, is_deconv: bool, is_batchnorm: bool):
        super().__init__()
        # Registered before `up`, as in the original, so the state_dict order matches too.
        self.conv = UNetConv2(in_size, out_size, is_batchnorm)
        # a learnt 2x upsampling (the released model) or a fixed bilinear one, no weights
        learnt = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2) if is_deconv else None
        self.up = learnt or nn.UpsamplingBilinear2d(scale_factor=2)

    def forward(self, skip, deeper):
        up = self.up(deeper)
        # The original pads the skip by floor(offset / 2) on every side; the offset is 0 for
        # sides divisible by 16, the only sizes the network accepts.
        half = (up.shape[2] - skip.shape[2]) // 2
        skip = F.pad(skip, [half] * 4)
        return self.conv(torch.cat([skip, up], 1))


class CelebAMaskUNet(nn.Module):
    """`unet(feature_scale=4, n_classes=19, is_deconv=True, in_channels=3, is_batchnorm=True)`.

    Input: Nx3xHxW in [-1, 1], H and W multiples of 16. Output: Nx19xHxW logits.
    """

    def __init__(
        self,
        feature_scale: int = 4,
        n_classes: int = 19,
        is_deconv: bool = True,
        in_channels: int = 3,
        is_batchnorm: bool = True,
    ):
        super().__init__()
        f = [int(x / feature_scale) for x in (64, 128, 256, 512, 1024)]
        self.conv1 = UNetConv2(in_channels, f[0], is_batchnorm)
        self.conv2 = UNetConv2(f[0], f[1], is_batchnorm)
        self.conv3 = UNetConv2(f[1], f[2], is_batchnorm)
        self.conv4 = UNetConv2(f[2], f[3], is_batchnorm)
        self.center = UNetConv2(f[3], f[4], is_batchnorm)
        self.up_concat4 = UNetUp(f[4], f[3], is_deconv, is_batchnorm)
        self.up_concat3 = UNetUp(f[3], f[2], is_deconv, is_batchnorm)
        self.up_concat2 = UNetUp(f[2], f[1], is_deconv, is_batchnorm)
        self.up_concat1 = UNetUp(f[1], f[0], is_deconv, is_batchnorm)
        self.final = nn.Conv2d(f[0], n_classes, 1)

    def forward(self, x):
        conv1 = self.conv1(x)
        conv2 = self.conv2(F.max_pool2d(conv1, 2))
        conv3 = self.conv3(F.max_pool2d(conv2, 2))
        conv4 = self.conv4(F.max_pool2d(conv3, 2))
        center = self.center(F.max_pool2d(conv4, 2))
        up = self.up_concat4(conv4, center)
        up = self.up_concat3(conv3, up)
        up = self.up_concat2(conv2, up)
        up = self.up_concat1(conv1, up)
        return self.final(up)


unet = CelebAMaskUNet  # the original's name, so its scripts translate one to one
