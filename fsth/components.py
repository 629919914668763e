"""Building blocks of the FSTH networks and `make_layers`, which turns layer strings into them.

Attribute names (conv_l, conv_r1, conv_r2, conv_1, norm_1, conv_2, norm_2, query_conv, key_conv,
value_conv, gamma) are the original's: they are the state-dict keys of its checkpoints. Block
convolutions use the hook-style `torch.nn.utils.spectral_norm`, whose parameter `weight_orig`
and buffers `weight_u`, `weight_v` are what those checkpoints store.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from fsth.config import LayerSpec

ADAIN_EPS = 1e-5


def adain(x: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """Adaptive instance normalisation of x (n, c, h, w) with sigma, mu (n, c).

    As in the original: the std is the unbiased (N-1) estimator over h*w, eps is added to the
    std (not the variance), and sigma scales as is (no 1 + sigma).
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mean = flat.mean(dim=-1, keepdim=True)
    std = flat.std(dim=-1, keepdim=True) + eps
    out = (flat - mean) / std * sigma.unsqueeze(-1) + mu.unsqueeze(-1)
    return out.reshape(n, c, h, w)


def sn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """Spectrally normalised k x k conv with 'same' padding and a bias."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


class ResidualBlockDown(nn.Module):
    """'D': BigGAN discriminator block; the 1x1 skip conv runs before pooling, even if in == out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, pool: int = 2):
        super().__init__()
        self.pool = pool
        self.conv_l = sn_conv(in_channels, out_channels, 1)
        self.conv_r1 = sn_conv(in_channels, out_channels, kernel_size)
        self.conv_r2 = sn_conv(out_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.avg_pool2d(self.conv_l(x), self.pool)
        main = self.conv_r2(F.relu(self.conv_r1(F.relu(x))))
        return skip + F.avg_pool2d(main, self.pool)


class ResidualBlockUp(nn.Module):
    """'U': BigGAN generator block with AdaIN in place of BatchNorm.

    The first AdaIN normalises the `in_channels` input, the second the `out_channels` features.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, scale: int = 2, upsample_mode: str = "bilinear"
    ):
        super().__init__()
        self.scale = scale
        self.upsample_mode = upsample_mode
        self.conv_l = sn_conv(in_channels, out_channels, 1)
        self.conv_r1 = sn_conv(in_channels, out_channels, kernel_size)
        self.conv_r2 = sn_conv(out_channels, out_channels, kernel_size)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode=self.upsample_mode)

    def forward(self, x, sigma_1, mu_1, sigma_2, mu_2):
        skip = self.conv_l(self._up(x))
        main = self.conv_r1(self._up(F.relu(adain(x, sigma_1, mu_1))))
        main = self.conv_r2(F.relu(adain(main, sigma_2, mu_2)))
        return skip + main


class ResidualBlock(nn.Module):
    """'B': Johnson-style residual block with affine InstanceNorm; no activation after the sum."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_1 = sn_conv(in_channels, out_channels, kernel_size)
        self.norm_1 = nn.InstanceNorm2d(out_channels, affine=True)
        self.conv_2 = sn_conv(out_channels, out_channels, kernel_size)
        self.norm_2 = nn.InstanceNorm2d(out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.norm_2(self.conv_2(F.relu(self.norm_1(self.conv_1(x)))))
        return x + main


class ResidualBlockAdaptive(nn.Module):
    """'BA': the 'B' block with AdaIN in place of InstanceNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_1 = sn_conv(in_channels, out_channels, kernel_size)
        self.conv_2 = sn_conv(out_channels, out_channels, kernel_size)

    def forward(self, x, sigma_1, mu_1, sigma_2, mu_2):
        main = F.relu(adain(self.conv_1(x), sigma_1, mu_1))
        return x + adain(self.conv_2(main), sigma_2, mu_2)


class SelfAttention(nn.Module):
    """'A': SAGAN self-attention, y = gamma * attend(x) + x, with gamma starting at 0.

    Query and key have C/8 channels; the attention over all H*W positions is unscaled.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        query = self.query_conv(x).reshape(n, -1, h * w)
        key = self.key_conv(x).reshape(n, -1, h * w)
        value = self.value_conv(x).reshape(n, c, h * w)
        attention = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # (n, query, key)
        out = torch.bmm(value, attention.transpose(1, 2)).reshape(n, c, h, w)
        return self.gamma * out + x


ADAPTIVE = (ResidualBlockUp, ResidualBlockAdaptive)  # blocks whose forward takes AdaIN parameters
FEATURE_BLOCKS = (ResidualBlockDown, ResidualBlock)  # blocks whose outputs D returns


def make_layers(specs: Sequence[LayerSpec], upsample_mode: str = "bilinear") -> nn.ModuleList:
    """One module per parsed layer string, in order."""

    def build(s: LayerSpec) -> nn.Module:
        if s.kind == "D":
            return ResidualBlockDown(s.in_channels, s.out_channels, s.kernel_size, s.scale)
        if s.kind == "U":
            return ResidualBlockUp(s.in_channels, s.out_channels, s.kernel_size, s.scale, upsample_mode)
        if s.kind == "B":
            return ResidualBlock(s.in_channels, s.out_channels, s.kernel_size)
        if s.kind == "BA":
            return ResidualBlockAdaptive(s.in_channels, s.out_channels, s.kernel_size)
        if s.kind == "I":
            return nn.InstanceNorm2d(s.in_channels, affine=True)
        return SelfAttention(s.in_channels)  # 'A'; parse_layer_config admits no other kind

    return nn.ModuleList(build(s) for s in specs)


def adain_slices(specs: Sequence[LayerSpec]) -> list[tuple[int, int]]:
    """(channels of the first AdaIN, channels of the second) for each adaptive block, in order."""
    sizes = {"BA": lambda s: (s.out_channels, s.out_channels), "U": lambda s: (s.in_channels, s.out_channels)}
    return [sizes[s.kind](s) for s in specs if s.kind in sizes]
