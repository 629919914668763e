"""The distilled flow generator (`student_dec`): one full-resolution flow that warps the source
RGBD image directly, and a small inpainting network for the regions the mask leaves out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vfa.model.ops import ConvLayer, Downsample, ModulatedConv2d, Upsample
from vfa.model.synthesis import flow_and_mask


class InpaintResBlock(nn.Module):
    """Plain conv -> BatchNorm -> ReLU -> conv -> BatchNorm, plus the input."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class StudentSynthesis(nn.Module):
    """Refines the teacher's final flow logits with a 3x3 non-demodulated ModulatedConv2d (+ `bias`),
    warps the 4-channel source with it and keeps RGB; the inpainting branch works at 1/4 resolution
    on features damped by sigmoid(downsampled mask) — a sigmoid of the sigmoid mask, as in the
    original — and its output (+ `bias2`) is added to out_warp · mask."""

    def __init__(self, style_dim: int = 512, channel_divisor: int = 1):
        super().__init__()
        c1, c2, c3 = (width // channel_divisor for width in (32, 64, 128))
        self.style_conv = ModulatedConv2d(3, 3, 3, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.first = ConvLayer(3, c1, 7)
        self.down_blocks = nn.ModuleList([ConvLayer(c1, c2, 3, downsample=True), ConvLayer(c2, c3, 3, downsample=True)])
        self.down_mask = nn.ModuleList([Downsample(), Downsample()])
        self.res_blocks = nn.ModuleList([InpaintResBlock(c3) for _ in range(5)])
        self.up_blocks = nn.ModuleList(
            [nn.Sequential(ConvLayer(c3, c2, 3), Upsample()), nn.Sequential(ConvLayer(c2, c1, 3), Upsample())]
        )
        self.final = ConvLayer(c1, 3, 7)
        self.bias2 = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self, source: torch.Tensor, flow_logits: torch.Tensor, style: torch.Tensor, testing: bool = False
    ) -> dict[str, torch.Tensor]:
        """{out_warp [B, 3, H, W], mask [B, 1, H, W], out_inpaint [B, 3, H, W]} and, when `testing`,
        rgb_motion_flow [B, H, W, 2] (the grid_sample grid, (x, y) in [-1, 1] coordinates)."""
        flow, mask = flow_and_mask(self.style_conv(flow_logits, style) + self.bias)
        out_warp = F.grid_sample(source, flow, mode="bilinear", padding_mode="zeros", align_corners=False)[:, :3]
        result = {"out_warp": out_warp, "mask": mask}
        if testing:
            result["rgb_motion_flow"] = flow

        features = self.first(out_warp)
        for block in self.down_blocks:
            features = block(features)
        small_mask = mask
        for down in self.down_mask:
            small_mask = down(small_mask)
        features = features * (1 - torch.sigmoid(small_mask))
        for block in (*self.res_blocks, *self.up_blocks):
            features = block(features)
        result["out_inpaint"] = out_warp * mask + (self.final(features) + self.bias2)
        return result
