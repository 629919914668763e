"""FSRT encoder: source images with their keypoints and expressions -> set-latent tokens z."""

from __future__ import annotations

import torch
from torch import nn

from fsrt.model.mlp import scaled
from fsrt.model.positional_encoding import FSRTPosEncoder
from fsrt.model.transformer import Transformer


class SRTConvBlock(nn.Module):
    """conv3x3 (stride 1) -> ReLU -> conv3x3 (stride 2) -> ReLU, no biases; halves the resolution."""

    def __init__(self, idim: int, hdim: int | None = None, odim: int | None = None):
        super().__init__()
        hdim = hdim or idim
        odim = odim or 2 * hdim
        self.layers = nn.Sequential(
            nn.Conv2d(idim, hdim, kernel_size=3, stride=1, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hdim, odim, kernel_size=3, stride=2, padding=1, bias=False),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ImprovedFSRTEncoder(nn.Module):
    """Per-pixel [RGB | keypoint code | pixel code | expression] -> CNN (stride 8) -> 768-d tokens
    (row-major per image, images concatenated source-major) -> self-attention transformer.

    Defaults are the released construction (483 input channels, 3 conv blocks, 5 attention blocks).
    `width_scale` multiplies the conv widths and the token width (768, 12 heads kept) for small
    models; 1 is the released size.
    """

    def __init__(
        self,
        num_conv_blocks: int = 3,
        num_att_blocks: int = 5,
        pix_octaves: int = 16,
        pix_start_octave: int = -1,
        num_kp: int = 10,
        expression_size: int = 256,
        encode_with_expression: bool = True,
        kp_octaves: int = 4,
        kp_start_octave: int = -1,
        width_scale: float = 1.0,
    ):
        super().__init__()
        self.positional_encoder = FSRTPosEncoder(
            kp_octaves=kp_octaves,
            kp_start_octave=kp_start_octave,
            pix_start_octave=pix_start_octave,
            pix_octaves=pix_octaves,
        )
        self.encode_with_expression = encode_with_expression
        in_dim = 3 + 4 * pix_octaves + 4 * num_kp * kp_octaves + (expression_size if encode_with_expression else 0)
        hidden = scaled(96, width_scale)
        blocks, width = [SRTConvBlock(in_dim, hdim=hidden)], 2 * hidden
        for _ in range(1, num_conv_blocks):
            blocks.append(SRTConvBlock(width))
            width *= 2
        self.conv_blocks = nn.Sequential(*blocks)
        self.latent_dim = scaled(768, width_scale)
        self.per_patch_linear = nn.Conv2d(width, self.latent_dim, kernel_size=1)
        self.transformer = Transformer(
            self.latent_dim, depth=num_att_blocks, heads=12, dim_head=self.latent_dim // 12, mlp_dim=2 * self.latent_dim
        )

    def forward(
        self,
        images: torch.Tensor,
        keypoints: torch.Tensor,
        pixels: torch.Tensor,
        expression_vector: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        images [B, S, 3, H, W] in [0, 1]; keypoints [B, S, K, 2]; pixels [B, S, H, W, 2] or one
        [H, W, 2] grid for all (`pixel_grid`); expression_vector [B, S, E] (ignored when
        `encode_with_expression` is False). Returns z [B, S * H/8 * W/8, 768].
        """
        batch, num_images, _, height, width = images.shape
        pixels = pixels.expand(batch, num_images, height, width, 2).flatten(0, 1)
        parts = [images.flatten(0, 1), self.positional_encoder.image(pixels, keypoints.flatten(2).flatten(0, 1))]
        if self.encode_with_expression:
            if expression_vector is None:
                raise ValueError("this encoder was built with encode_with_expression=True: pass expression_vector")
            parts.append(expression_vector.flatten(0, 1)[:, :, None, None].expand(-1, -1, height, width))
        patches = self.per_patch_linear(self.conv_blocks(torch.cat(parts, dim=1)))
        tokens = patches.flatten(2).transpose(1, 2)  # [B*S, h*w, C]
        return self.transformer(tokens.reshape(batch, -1, tokens.shape[-1]))
