"""Stage 1's two-scale PatchGAN discriminator (`loss.discriminator.discriminator_<i>.model<j>` keys)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class NLayerDiscriminator2(nn.Module):
    """PatchGAN as groups `model0..model<n_layers_D>` (4x4 kernels, padding 2).

    model0: conv (bias, stride 2) + LeakyReLU(0.2); model1..n-1: conv (no bias) + BatchNorm + LeakyReLU,
    stride 2 except the last of them (stride 1), widths doubling up to 512; final group: conv to 1 channel.
    """

    def __init__(self, input_nc: int = 3, n_layers_D: int = 3, ndf: int = 64):
        super().__init__()
        kernel, padding = 4, math.ceil((4 - 1) / 2)
        groups = [[nn.Conv2d(input_nc, ndf, kernel, stride=2, padding=padding), nn.LeakyReLU(0.2)]]
        width = ndf
        for n in range(1, n_layers_D):
            previous, width = width, min(width * 2, 512)
            stride = 1 if n == n_layers_D - 1 else 2
            groups.append(
                [
                    nn.Conv2d(previous, width, kernel, stride=stride, padding=padding, bias=False),
                    nn.BatchNorm2d(width),
                    nn.LeakyReLU(0.2, inplace=True),
                ]
            )
        groups.append([nn.Conv2d(width, 1, kernel, stride=1, padding=padding)])
        for index, group in enumerate(groups):
            self.add_module(f"model{index}", nn.Sequential(*group))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.children():
            x = group(x)
        return x


class MultiscaleDiscriminator(nn.Module):
    """`num_D` PatchGANs; scale i+1 sees the input average-pooled (3x3, stride 2, pad 1, pads not counted).

    forward -> list of num_D logit maps, full resolution first.
    """

    def __init__(self, num_D: int = 2, input_nc: int = 3, n_layers_D: int = 3, ndf: int = 64):
        super().__init__()
        for index in range(num_D):
            self.add_module(f"discriminator_{index}", NLayerDiscriminator2(input_nc, n_layers_D, ndf))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = []
        for scale in self.children():
            logits.append(scale(x))
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)
        return logits


def init_weights(module: nn.Module) -> None:
    """The original's discriminator init, for `module.apply`: conv weights N(0, 0.02) (conv biases keep
    torch's default), BatchNorm weights N(1, 0.02) and biases 0."""
    name = type(module).__name__
    if "Conv" in name:
        nn.init.normal_(module.weight.data, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight.data, 1.0, 0.02)
        nn.init.constant_(module.bias.data, 0)
