"""StyleGAN2 building blocks as VFA (via LIA) uses them: equalised learning rate, FIR resampling in
plain PyTorch ("native" upfirdn2d, no CUDA kernels) and style-modulated convolutions.

Resampling kernels are buffers named `kernel`, so they are part of every checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

BLUR_KERNEL = (1, 3, 3, 1)
LEAKY_SLOPE = 0.2


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """2-D FIR kernel from 1-D taps (outer product), normalised to sum 1."""
    taps = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad both axes by (pad[0], pad[1]) (negative crops), filter each
    channel with the flipped `kernel` (a true convolution), keep every `down`-th pixel."""
    batch, channels, height, width = x.shape
    if up > 1:
        spread = x.new_zeros(batch, channels, height * up, width * up)
        spread[:, :, ::up, ::up] = x
        x = spread
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).expand(channels, 1, *kernel.shape)
    # A strided filter evaluates only the pixels the subsampling keeps.
    return F.conv2d(x, weight, stride=down, groups=channels)


class Blur(nn.Module):
    """FIR low-pass with fixed padding; scaled by factor² when it follows a zero-inserting upsample."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling (kernel of 4 taps: pad (2, 1))."""

    def __init__(self, kernel: Sequence[float] = BLUR_KERNEL, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        excess = self.kernel.shape[0] - factor
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Downsample(nn.Module):
    """2x FIR downsampling (kernel of 4 taps: pad (1, 1))."""

    def __init__(self, kernel: Sequence[float] = BLUR_KERNEL, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel))
        excess = self.kernel.shape[0] - factor
        self.pad = ((excess + 1) // 2, excess // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv with N(0, 1) weights scaled by 1/sqrt(fan_in) at run time (equalised learning rate)."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = (in_channel * kernel_size**2) ** -0.5
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weight N(0, 1)/lr_mul used as weight·lr_mul/sqrt(in),
    bias filled with `bias_init` and used as bias·lr_mul."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.weight * self.scale, bias=bias)


class FusedLeakyReLU(nn.Module):
    """leaky_relu(x + bias, 0.2) · sqrt(2), with a per-channel bias [1, C, 1, 1]."""

    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channel, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias, LEAKY_SLOPE) * math.sqrt(2)


class ConvLayer(nn.Sequential):
    """[Blur ->] EqualConv2d [-> activation]; indices 0/1(/2) are part of the checkpoint names.

    Downsampling blurs first and convolves with stride 2 and no padding. The conv has a bias only
    without activation; the activation is FusedLeakyReLU (its bias) or, with bias=False, a plain
    leaky ReLU.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        bias: bool = True,
        activate: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            excess = len(blur_kernel) - 2 + kernel_size - 1
            layers.append(Blur(blur_kernel, pad=((excess + 1) // 2, excess // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel) if bias else nn.LeakyReLU(LEAKY_SLOPE))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Encoder residual block halving the resolution: (conv2(conv1(x)) + skip(x)) / sqrt(2)."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = BLUR_KERNEL):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_channel, out_channel, 1, downsample=True, blur_kernel=blur_kernel, bias=False, activate=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled per sample by an affine map of the style
    (`modulation`, bias initialised to 1), optionally demodulated (unit-norm output filters).

    `upsample`: transposed convolution with stride 2, then Blur (pad (1, 1), kernel ×4).
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        if upsample:
            excess = len(blur_kernel) - 2 - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((excess + 1) // 2 + 1, excess // 2 + 1), upsample_factor=2)
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.scale = (in_channel * kernel_size**2) ** -0.5
        self.demodulate, self.upsample = demodulate, upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        _, out_channels, in_channels, k, _ = self.weight.shape
        batch, _, height, width = x.shape
        per_sample = self.scale * self.weight * self.modulation(style)[:, None, :, None, None]  # [B, out, in, k, k]
        if self.demodulate:
            per_sample = per_sample * torch.rsqrt(per_sample.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        x = x.reshape(1, batch * in_channels, height, width)  # one group per sample
        if self.upsample:
            per_sample = per_sample.transpose(1, 2).reshape(batch * in_channels, out_channels, k, k)
            out = F.conv_transpose2d(x, per_sample, stride=2, padding=0, groups=batch)
            return self.blur(out.view(batch, out_channels, *out.shape[2:]))
        out = F.conv2d(x, per_sample.reshape(batch * out_channels, in_channels, k, k), padding=k // 2, groups=batch)
        return out.view(batch, out_channels, *out.shape[2:])


class NoiseInjection(nn.Module):
    """Adds weight·noise; VFA never passes noise, but the `weight` [1] is in every checkpoint."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros([1]))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d -> NoiseInjection -> FusedLeakyReLU."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        demodulate: bool = True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, demodulate, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ConstantInput(nn.Module):
    """A learned [1, C, size, size] tensor repeated over the batch."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)
