"""The RGBD generator (`dec`): LIA's flow-warping StyleGAN2 decoder plus VFA's depth branch.

At every level from 8x8 to 256x256 a ToFlow head warps the encoder's skip feature with a flow
(tanh + base grid) and a mask; the RGB is built only from these warped features, the depth from
the warped feature plus a per-pixel mix of the level's depth motion dictionary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vfa.model.encoder import channels
from vfa.model.ops import BLUR_KERNEL, ConstantInput, ConvLayer, ModulatedConv2d, StyledConv, Upsample


def base_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[1, H, W, 2] (x, y) grid of np.linspace(-1, 1, n) values rounded to float32, on `like`'s
    device and dtype. With grid_sample(align_corners=False) this is not the identity: it stretches
    by n/(n-1) about the centre. The original builds it from the height only (square inputs)."""
    xs = torch.from_numpy(np.linspace(-1, 1, width).astype(np.float32))
    ys = torch.from_numpy(np.linspace(-1, 1, height).astype(np.float32))
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return grid[None].to(device=like.device, dtype=like.dtype)


def flow_and_mask(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channels 0-1 -> sampling grid tanh(.) + base grid [B, H, W, 2]; channel 2 -> mask sigmoid(.).

    At least float32: under bf16/fp16 autocast the grid would otherwise be rounded to 8 (11)
    mantissa bits, steps of up to a pixel at 256 px near the image edges."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    offset = torch.tanh(logits[:, 0:2]).permute(0, 2, 3, 1)
    return offset + base_grid(*logits.shape[2:], like=logits), torch.sigmoid(logits[:, 2:3])


def orthonormal_basis(dictionary: torch.Tensor) -> torch.Tensor:
    """Q of the reduced QR of dictionary + 1e-8 (LAPACK Householder signs), same shape."""
    return torch.linalg.qr(dictionary + 1e-8).Q


class ToRGB(nn.Module):
    """Not modulated (LIA): 1x1 ConvLayer (EqualConv2d + FusedLeakyReLU) + `bias`, plus the
    upsampled previous output when one is given."""

    def __init__(self, in_channel: int, out_channel: int = 3, upsample: bool = True, blur_kernel=BLUR_KERNEL):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, out_channel, 1, 1))
        self.upsample = Upsample(blur_kernel) if upsample else None
        self.conv = ConvLayer(in_channel, out_channel, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ToDepth(ToRGB):
    """ToRGB with one output channel."""

    def __init__(self, in_channel: int, upsample: bool = True, blur_kernel=BLUR_KERNEL):
        super().__init__(in_channel, 1, upsample, blur_kernel)


class ToFlow(nn.Module):
    """Flow head: 1x1 non-demodulated ModulatedConv2d + `bias` (+ upsampled previous logits) ->
    3 logits (flow x, y and mask)."""

    def __init__(self, in_channel: int, style_dim: int, output_dim: int = 3, blur_kernel=BLUR_KERNEL):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, output_dim, 1, 1))
        self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, output_dim, kernel_size=1, style_dim=style_dim, demodulate=False)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, feat: torch.Tensor, skip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(out_warp = warped feat · mask, fused = out_warp + x · (1 - mask), logits)."""
        logits = self.conv(x, style) + self.bias
        if skip is not None:
            logits = logits + self.upsample(skip)
        flow, mask = flow_and_mask(logits)
        # Sampled at the grid's precision (float32 under autocast too), whatever the features' dtype.
        out_warp = F.grid_sample(feat.to(flow.dtype), flow, mode="bilinear", padding_mode="zeros", align_corners=False)
        out_warp = out_warp * mask
        return out_warp, out_warp + x * (1 - mask), logits


class MotionInDepth(nn.Module):
    """Depth motion: softmax weights over `motion_dim` orthonormalised dictionary vectors per pixel."""

    def __init__(self, in_channel: int, style_dim: int, motion_dim: int, blur_kernel=BLUR_KERNEL):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, motion_dim, 1, 1))
        self.motion_dictionary = nn.Parameter(torch.randn(in_channel, motion_dim))
        self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, motion_dim, kernel_size=1, style_dim=style_dim, demodulate=False)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(beta · Qᵀ [B, C, H, W], logits [B, motion_dim, H, W] for the next level)."""
        logits = self.conv(x, style) + self.bias
        if skip is not None:
            logits = logits + self.upsample(skip)
        beta = torch.softmax(logits, dim=1)
        basis = orthonormal_basis(self.motion_dictionary)  # [C, motion_dim]
        return torch.einsum("bkhw,ck->bchw", beta, basis), logits


class Direction(nn.Module):
    """LIA's latent motion dictionary: D(alpha) = sum_k alpha_k Q[:, k], Q from the QR of `weight`."""

    def __init__(self, style_dim: int, motion_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(style_dim, motion_dim))

    def forward(self, alpha: torch.Tensor | None) -> torch.Tensor:
        """alpha [B, motion_dim] -> [B, style_dim] (no normalisation of alpha); None -> Q."""
        basis = orthonormal_basis(self.weight)
        return basis if alpha is None else alpha @ basis.T


class SynthesisOutput(NamedTuple):
    image: torch.Tensor  # [B, 4, H, W] RGB + depth (unbounded); RGB only without the depth branch
    flow_logits: torch.Tensor  # [B, 3, H, W] last ToFlow logits (the student's input, "skip_flow")
    depth: torch.Tensor | None  # [B, 1, H, W] the depth channel ("depth_motion_flow")


class Synthesis(nn.Module):
    """Constant 4x4 input -> `conv1` -> per level: upsampling StyledConv, StyledConv, ToFlow, ToRGB
    and (result_channels 4) MotionInDepth and ToDepth. Every layer gets the same style vector.

    `direction`, `input`, `conv1`, the unused `to_rgb1` and the 8x8 level (`convs.0-1`, `to_rgbs.0`,
    `to_flows.0`) have requires_grad False, as the original freezes everything built before the
    first depth branch.
    """

    def __init__(
        self,
        size: int = 256,
        style_dim: int = 512,
        motion_dim: int = 20,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        channel_multiplier: int = 1,
        result_channels: int = 4,
        depth_motion_dim: int = 5,
        channel_divisor: int = 1,
    ):
        super().__init__()
        self.with_depth = result_channels == 4
        width = {res: c if res < 64 else c * channel_multiplier for res, c in channels(channel_divisor).items()}
        self.direction = Direction(style_dim, motion_dim)
        self.input = ConstantInput(width[4])
        self.conv1 = StyledConv(width[4], width[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(width[4], result_channels, upsample=False)  # in every checkpoint, never used
        # Registration order = checkpoint order.
        self.convs, self.to_rgbs, self.to_flows = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.to_depths, self.motion_in_depths = nn.ModuleList(), nn.ModuleList()
        in_channel = width[4]
        for log_res in range(3, int(math.log2(size)) + 1):
            channel = width[2**log_res]
            self.convs.append(StyledConv(in_channel, channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(channel, channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(channel, 3, blur_kernel=blur_kernel))
            self.to_flows.append(ToFlow(channel, style_dim, blur_kernel=blur_kernel))
            if self.with_depth:
                self.motion_in_depths.append(MotionInDepth(channel, style_dim, depth_motion_dim, blur_kernel))
                self.to_depths.append(ToDepth(channel, blur_kernel=blur_kernel))
            in_channel = channel
        for module in (self.direction, self.input, self.conv1, self.to_rgb1, *self.convs[:2]):
            module.requires_grad_(False)
        self.to_rgbs[0].requires_grad_(False)
        self.to_flows[0].requires_grad_(False)

    def forward(self, latent: torch.Tensor, feats: Sequence[torch.Tensor]) -> SynthesisOutput:
        """Decode the style vector `latent` [B, style_dim] with the source's skip features (coarsest
        first, one per level)."""
        x = self.conv1(self.input(latent.shape[0]), latent)
        rgb = depth = flow_skip = depth_skip = None
        for level, feat in enumerate(feats):
            x = self.convs[2 * level](x, latent)
            x = self.convs[2 * level + 1](x, latent)
            out_warp, x, flow_skip = self.to_flows[level](x, latent, feat, flow_skip)
            rgb = self.to_rgbs[level](out_warp, rgb)
            if self.with_depth:
                depth_motion, depth_skip = self.motion_in_depths[level](x, latent, depth_skip)
                depth = self.to_depths[level](out_warp + depth_motion, depth)
        image = rgb if depth is None else torch.cat([rgb, depth], dim=1)
        return SynthesisOutput(image, flow_skip, depth)
