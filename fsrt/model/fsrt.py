"""The FSRT container: encoder, decoder and expression encoder, plus the inference helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fsrt.model.decoder import ImprovedFSRTDecoder
from fsrt.model.encoder import ImprovedFSRTEncoder
from fsrt.model.expression_encoder import ExpressionEncoder
from fsrt.model.keypoint_detector import KPDetector
from fsrt.model.positional_encoding import pixel_grid
from fsrt.model.small_decoder import SmallImprovedFSRTDecoder


class FSRT(nn.Module):
    """Built from the `model` section of a config: `FSRT(**cfg['model'])`.

    Registers `encoder`, `decoder`, `expression_encoder` in this order, which is also the order
    of `parameters()` and hence of the Adam state in official checkpoints. The frozen
    `KPDetector` is kept outside (it has its own checkpoint). `width_scale` (not an official
    config key; 1 = the released sizes) shrinks the hidden widths of all three parts alike.
    """

    def __init__(
        self,
        encoder_kwargs: Mapping[str, Any] | None = None,
        decoder_kwargs: Mapping[str, Any] | None = None,
        small_decoder: bool = False,
        expression_size: int = 256,
        expression_encoder: ExpressionEncoder | None = None,
        width_scale: float = 1.0,
    ):
        super().__init__()
        self.encoder = ImprovedFSRTEncoder(
            expression_size=expression_size, width_scale=width_scale, **(encoder_kwargs or {})
        )
        decoder_class = SmallImprovedFSRTDecoder if small_decoder else ImprovedFSRTDecoder
        self.decoder = decoder_class(expression_size=expression_size, width_scale=width_scale, **(decoder_kwargs or {}))
        if expression_encoder is None:
            expression_encoder = ExpressionEncoder(expression_size=expression_size, width_scale=width_scale)
        self.expression_encoder = expression_encoder
        self._pixel_codes: dict[tuple, torch.Tensor] = {}

    def keypoints_and_expression(
        self, kp_detector: KPDetector, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [N, 3, H, W] in [0, 1] -> (keypoints [N, K, 2], expression vectors [N, E])."""
        keypoints, maps = kp_detector(images)
        return keypoints, self.expression_encoder(maps["feature_map"], maps["heatmap"])

    def encode(self, images: torch.Tensor, keypoints: torch.Tensor, expressions: torch.Tensor) -> torch.Tensor:
        """Set-latent z [B, S*H*W/64, 768] of source images [B, S, 3, H, W] with their keypoints
        [B, S, K, 2] and expression vectors [B, S, E], on the pixel-centre grid."""
        height, width = images.shape[-2:]
        return self.encoder(images, keypoints, pixel_grid(height, width, images.device), expressions)

    def pixel_code(self, height: int, width: int, device=None) -> torch.Tensor:
        """Decoder code of the HxW pixel grid, [H*W, C_pix]; computed once per size and device."""
        key = (height, width, str(device))
        if key not in self._pixel_codes:
            grid = pixel_grid(height, width, device).flatten(0, 1)
            self._pixel_codes[key] = self.decoder.encode_pixels(grid)
        return self._pixel_codes[key]

    def render(
        self,
        z: torch.Tensor,
        keypoints: torch.Tensor,
        expression: torch.Tensor,
        height: int,
        width: int,
        chunk_size: int | None = 8192,
    ) -> torch.Tensor:
        """Full frames [B, 3, H, W] (unclamped) for driving keypoints [B, K, 2] and expressions [B, E].

        `chunk_size` pixels are decoded at a time (None: all at once); the result is the same
        for any chunk size, only speed and peak memory change.
        """
        code = self.pixel_code(height, width, z.device)
        rgb = self.decoder.render(z, code, keypoints, expression, chunk_size)
        return rgb.view(-1, height, width, 3).permute(0, 3, 1, 2)
