"""The shared RGBD encoder (LIA's): an appearance code h with multi-scale skip features, and a
purely linear map from h to the 20 motion magnitudes alpha."""

from __future__ import annotations

import math

import torch
from torch import nn

from vfa.model.ops import ConvLayer, EqualConv2d, EqualLinear, ResBlock

# Feature channels per resolution, shared by the encoder and the decoder (channel multiplier 1).
CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
CHANNEL_DIVISORS = (1, 2, 4, 8, 16)  # those that divide every width above


def channels(divisor: int = 1) -> dict[int, int]:
    """CHANNELS divided by `divisor` (1: the official widths; larger: a narrower model of the same
    structure, e.g. the committed demo model), one of CHANNEL_DIVISORS."""
    if divisor not in CHANNEL_DIVISORS:
        raise ValueError(f"channel divisor {divisor}: one of {', '.join(map(str, CHANNEL_DIVISORS))}")
    return {res: width // divisor for res, width in CHANNELS.items()}


class EncoderApp(nn.Module):
    """`convs.0` 1x1 ConvLayer, ResBlocks halving the resolution down to 4x4, `convs.N` a 4x4 valid
    EqualConv2d -> h [B, w_dim]."""

    def __init__(self, size: int, w_dim: int = 512, in_channels: int = 4, channel_divisor: int = 1):
        super().__init__()
        width = channels(channel_divisor)
        self.convs = nn.ModuleList([ConvLayer(in_channels, width[size], 1)])
        channel = width[size]
        for log_res in range(int(math.log2(size)), 2, -1):
            self.convs.append(ResBlock(channel, width[2 ** (log_res - 1)]))
            channel = width[2 ** (log_res - 1)]
        self.convs.append(EqualConv2d(channel, w_dim, 4, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """h [B, w_dim] and the decoder's skip features, coarsest first: the outputs of the layers
        from the 8x8 ResBlock back to `convs.0` (the 4x4 one and h are not skips)."""
        outputs = []
        for conv in self.convs:
            x = conv(x)
            outputs.append(x)
        return x.squeeze(-1).squeeze(-1), outputs[-3::-1]


class Encoder(nn.Module):
    """`net_app` and `fc`, five EqualLinear layers with no activation between them (h -> alpha)."""

    def __init__(self, size: int, dim: int = 512, dim_motion: int = 20, in_channels: int = 4, channel_divisor: int = 1):
        super().__init__()
        self.net_app = EncoderApp(size, dim, in_channels, channel_divisor)
        self.fc = nn.Sequential(*[EqualLinear(dim, dim) for _ in range(4)], EqualLinear(dim, dim_motion))

    def enc_app(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(h, skip features) of one image."""
        return self.net_app(x)

    def enc_motion(self, x: torch.Tensor) -> torch.Tensor:
        """alpha [B, dim_motion] of one image (inference's `h_start` of the start frame)."""
        return self.fc(self.net_app(x)[0])

    def forward(
        self, source: torch.Tensor, driving: torch.Tensor | None, h_start: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, list[torch.Tensor]]:
        """(h_source, alphas, source features). alphas is [alpha_driving] or, with `h_start` (the
        start frame's alpha), [alpha_driving, alpha_source, h_start]; None without a driving frame."""
        h_source, feats = self.net_app(source)
        if driving is None:
            return h_source, None, feats
        alpha_driving = self.fc(self.net_app(driving)[0])
        if h_start is None:
            return h_source, [alpha_driving], feats
        return h_source, [alpha_driving, self.fc(h_source), h_start], feats
