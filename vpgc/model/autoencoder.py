"""The convolutional encoder and decoder of VPGC's stage 1 (taming-transformers' "diffusionmodules" design).

Attribute names and registration order follow the official checkpoints (`conv_in`, `down.<i>.block.<j>`,
`down.<i>.attn.<j>`, `down.<i>.downsample.conv`, `mid.block_1`, `mid.attn_1`, `mid.block_2`, `up.<i>...`,
`norm_out`, `conv_out`). The same `Encoder` with 7 input channels is stage 2's landmark encoder.

Swish is `F.silu`, one fused pass instead of the original's `x * torch.sigmoid(x)` (two passes and a
temporary; half the time of the pair at 512 px); the two differ in the last bit of float32, within the
parity tolerance. Without autograd (inference, the no-grad halves of the training steps) swish and the
residual sums are computed in place: the same numbers bit for bit as with autograd, without a fresh
full-size tensor per operation (page faults) and with fewer activations alive at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x)."""
    return F.silu(x)


def swish_(x: torch.Tensor) -> torch.Tensor:
    """`swish` in place, for tensors nothing else reads; the same kernel, so the same rounding."""
    return F.silu(x, inplace=True)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """norm-swish-conv twice (dropout before the second conv), 1x1 `nin_shortcut` when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.nin_shortcut(x) if self.in_channels != self.out_channels else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            h = self.conv1(swish(self.norm1(x)))
            h = self.conv2(self.dropout(swish(self.norm2(h))))
            return self.shortcut(x) + h
        h = self.conv1(swish_(self.norm1(x)))
        h = swish_(self.norm2(h))  # rebinding frees conv1's output before conv2 allocates
        return self.conv2(self.dropout(h)).add_(self.shortcut(x))


class AttnBlock(nn.Module):
    """Single-head self-attention over all H*W positions, logits scaled by C^-0.5, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        b, c, height, width = x.shape
        queries = self.q(normed).reshape(b, c, height * width).permute(0, 2, 1)  # [B, N, C]
        keys = self.k(normed).reshape(b, c, height * width)  # [B, C, N]
        values = self.v(normed).reshape(b, c, height * width)  # [B, C, N]
        weights = torch.softmax(torch.bmm(queries, keys) * (int(c) ** (-0.5)), dim=2)  # [B, Nq, Nk]
        attended = torch.bmm(values, weights.permute(0, 2, 1)).reshape(b, c, height, width)
        return x + self.proj_out(attended)


class Downsample(nn.Module):
    """Zero-pad right and bottom by one, then a stride-2 3x3 conv without padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _middle(channels: int, dropout: float) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels, dropout)
    return mid


def _run_middle(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def _level(blocks: list[ResnetBlock], with_attention: bool) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList([AttnBlock(b.out_channels) for b in blocks] if with_attention else [])
    return level


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for index, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[index](h)
    return h


class Encoder(nn.Module):
    """Image [B, in_channels, R, R] -> latent [B, z_channels (x2 if double_z), R/2^(L-1), R/2^(L-1)].

    Level i has `num_res_blocks` blocks of width ch*ch_mult[i], attention after each block where the
    level's resolution is in `attn_resolutions`, and a downsample after every level but the last.
    Extra keyword arguments (`soft_quant`, `pooling`, ...) are accepted and ignored, as in the original.
    """

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult=(1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions,
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = False,
        dropout: float = 0.0,
        **ignored,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch * m for m in (1, *ch_mult)]
        current = resolution
        self.down = nn.ModuleList()
        for index in range(len(ch_mult)):
            blocks, width = [], widths[index]
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(width, widths[index + 1], dropout))
                width = widths[index + 1]
            level = _level(blocks, current in attn_resolutions)
            if index != len(ch_mult) - 1:
                level.downsample = Downsample(width)
                current //= 2
            self.down.append(level)
        self.mid = _middle(widths[-1], dropout)
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = _run_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = _run_middle(self.mid, h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent [B, z_channels, r, r] -> image [B, out_ch, r*2^(L-1), ...]; no output activation (no tanh).

    Built from the deepest level up: `num_res_blocks + 1` blocks per level, attention where the
    resolution is in `attn_resolutions`, an upsample after every level but level 0. `up[i]` is level i.
    """

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult=(1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions,
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = False,
        dropout: float = 0.0,
        **ignored,
    ):
        super().__init__()
        width = ch * ch_mult[-1]
        current = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = _middle(width, dropout)
        levels = []
        for index in reversed(range(len(ch_mult))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(width, ch * ch_mult[index], dropout))
                width = ch * ch_mult[index]
            level = _level(blocks, current in attn_resolutions)
            if index != 0:
                level.upsample = Upsample(width)
                current *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_middle(self.mid, self.conv_in(z))
        for level in reversed(self.up):
            h = _run_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))
