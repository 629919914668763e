"""Sinusoidal codes of pixel positions and keypoints, and the pixel query grid."""

from __future__ import annotations

import math

import torch
from torch import nn


def pixel_grid(height: int, width: int, device=None) -> torch.Tensor:
    """Pixel centres of an HxW frame as (x = column, y = row) in (-1, 1): [H, W, 2], float32.

    Each axis is `(i + 0.5 - n/2) / (n/2)` evaluated in float32 like the original, which gives
    exactly -255/256 ... 255/256 for 256 pixels. The original divides the column index by the
    height and the row index by the width; for the square frames the released models take, the
    two are the same.
    """

    def axis(n: int) -> torch.Tensor:
        half = n / 2.0
        return (torch.arange(n, dtype=torch.float32, device=device) + 0.5 - half) / half

    rows, cols = torch.meshgrid(axis(height), axis(width), indexing="ij")
    return torch.stack([cols, rows], dim=-1)


class PositionalEncoding(nn.Module):
    """[..., D] coordinates -> [..., 2*D*num_octaves] features `[sines | cosines]`.

    The argument of every sine/cosine is `coord * 2**o * pi` for o = start_octave, ...,
    start_octave + num_octaves - 1; within each half the features are coordinate-major (all
    octaves of coordinate 0, then of coordinate 1, ...). There is no raw-coordinate term.
    """

    def __init__(self, num_octaves: int, start_octave: int):
        super().__init__()
        self.num_octaves = num_octaves
        self.start_octave = start_octave

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        octaves = torch.arange(self.start_octave, self.start_octave + self.num_octaves, device=coords.device).to(
            coords.dtype
        )
        # Same float recipe as the original (2**o, times pi, times coord): on a 256 grid the high
        # octaves are exact multiples of pi, so their values are pure rounding noise that any other
        # order of operations would change.
        multipliers = torch.pow(2.0, octaves) * math.pi
        angles = (coords.unsqueeze(-1) * multipliers).flatten(-2)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def extra_repr(self) -> str:
        return f"num_octaves={self.num_octaves}, start_octave={self.start_octave}"


class FSRTPosEncoder(nn.Module):
    """Keypoint code followed by pixel code: the positional part of every encoder/decoder input.

    With the defaults, 10 keypoints (20 numbers) give 160 features and a pixel gives 64. The
    negative start octave keeps keypoints in [-2, 2] (out-of-frame augmentation) unambiguous.
    """

    def __init__(
        self, kp_octaves: int = 4, kp_start_octave: int = -1, pix_start_octave: int = -1, pix_octaves: int = 16
    ):
        super().__init__()
        self.kp_encoding = PositionalEncoding(kp_octaves, kp_start_octave)
        self.pix_encoding = PositionalEncoding(pix_octaves, pix_start_octave)

    def image(self, pixels: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """Channels-first code of whole frames: pixels [B, H, W, 2], flat keypoints [B, 2K] ->
        [B, C_kp + C_pix, H, W], the keypoint code repeated at every pixel."""
        _, height, width, _ = pixels.shape
        pix = self.pix_encoding(pixels).permute(0, 3, 1, 2)
        kp = self.kp_encoding(keypoints)[:, :, None, None].expand(-1, -1, height, width)
        return torch.cat([kp, pix], dim=1)
