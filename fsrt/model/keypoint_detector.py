"""FOMM's unsupervised keypoint detector (hourglass + soft-argmax), frozen inside FSRT.

Built with the constructor defaults by FSRT's demo and training; its weights live in the
separate flat `kp_detector.pt`. FOMM's Jacobian head is not part of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """[H, W, 2] grid of (x, y) with endpoints exactly -1 and 1: `2 * (i / (n - 1)) - 1` per axis."""

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=dtype, device=device) / (n - 1)) - 1

    rows, cols = torch.meshgrid(axis(height), axis(width), indexing="ij")
    return torch.stack([cols, rows], dim=-1)


def soft_argmax(heatmap: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) under normalised heatmaps [B, K, H, W] on the endpoint grid -> [B, K, 2]."""
    grid = make_coordinate_grid(*heatmap.shape[-2:], dtype=heatmap.dtype, device=heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))


class AntiAliasInterpolation2d(nn.Module):
    """Band-limited downsampling: depthwise Gaussian blur, sigma = (1/scale - 1) / 2, then every
    (1/scale)-th pixel starting at 0. The kernel is the buffer `weight` [C, 1, k, k]."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        taps = torch.exp(-((torch.arange(size, dtype=torch.float32) - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = taps[:, None] * taps[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.pad = size // 2
        self.stride = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A strided convolution evaluates the blur only at the kept pixels.
        padded = F.pad(x, (self.pad,) * 4)
        return F.conv2d(padded, self.weight, stride=self.stride, groups=self.weight.shape[0])


class DownBlock2d(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU -> 2x2 average pooling."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock2d(nn.Module):
    """Nearest-neighbour x2 upsampling -> conv3x3 -> BatchNorm -> ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class Encoder(nn.Module):
    """Hourglass contracting path; returns the input and every block's output, finest first."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class Decoder(nn.Module):
    """Hourglass expanding path: upsample, then concatenate the encoder level of the same size."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        # Below the coarsest level the input also carries the skip channels, hence the factor 2.
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1),
                _width(block_expansion, max_features, i),
            )
            for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        *skips, out = levels
        for block, skip in zip(self.up_blocks, reversed(skips)):
            out = torch.cat([block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net-like hourglass; output channels `out_filters` = block_expansion + in_features."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        sizes = dict(num_blocks=num_blocks, max_features=max_features)
        self.encoder = Encoder(block_expansion, in_features, **sizes)
        self.decoder = Decoder(block_expansion, in_features, **sizes)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class KPDetector(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> keypoints in [-1, 1] by a softmax-weighted grid average.

    At 256x256 with the defaults: 64x64 input to the hourglass, 35-channel feature map, 58x58
    heatmaps (7x7 conv without padding) and 10 keypoints.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_kp: int = 10,
        num_channels: int = 3,
        max_features: int = 1024,
        num_blocks: int = 5,
        temperature: float = 0.1,
        scale_factor: float = 0.25,
        pad: int = 0,
    ):
        super().__init__()
        self.predictor = Hourglass(
            block_expansion, in_features=num_channels, num_blocks=num_blocks, max_features=max_features
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.num_kp = num_kp
        self.temperature = temperature
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    @torch.no_grad()  # frozen: nothing downstream back-propagates into the detector
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-> (keypoints [B, K, 2] as (x, y), {'feature_map': [B, C, h, w], 'heatmap': [B, K, 1, h', w']})."""
        if self.down is not None:
            x = self.down(x)
        feature_map = self.predictor(x)
        logits = self.kp(feature_map)
        heatmap = F.softmax(logits.flatten(2) / self.temperature, dim=2).view_as(logits)
        return soft_argmax(heatmap), {"feature_map": feature_map, "heatmap": heatmap.unsqueeze(2)}
