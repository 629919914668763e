"""Latent expression vector from the keypoint detector's feature map and heatmaps."""

from __future__ import annotations

import torch
from torch import nn

from fsrt.model.mlp import mlp, scaled


class ExpressionEncoder(nn.Module):
    """A 7x7 conv gives `expression_size_per_kp` features per keypoint at every heatmap position;
    each keypoint's features are summed under its heatmap, then an MLP maps the K x 32 values to
    the expression vector. `in_channels` defaults to the detector's 35 feature-map channels;
    `width_scale` multiplies the MLP's hidden widths (1: the released 640-1280-640)."""

    def __init__(
        self,
        in_channels: int = 35,
        num_kp: int = 10,
        expression_size_per_kp: int = 32,
        expression_size: int = 256,
        pad: int = 0,
        width_scale: float = 1.0,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.expression_size_per_kp = expression_size_per_kp
        self.expression = nn.Conv2d(in_channels, num_kp * expression_size_per_kp, kernel_size=7, padding=pad)
        hidden = (scaled(w, width_scale) for w in (640, 1280, 640))
        self.expression_mlp = mlp(num_kp * expression_size_per_kp, *hidden, expression_size)

    def forward(self, feature_map: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
        """feature_map [B, C, H, W], heatmap [B, K, h, w] or the detector's [B, K, 1, h, w] -> [B, E]."""
        features = self.expression(feature_map)
        batch, _, height, width = features.shape
        features = features.view(batch, self.num_kp, self.expression_size_per_kp, height, width)
        weights = heatmap.reshape(batch, self.num_kp, 1, height, width)
        pooled = (weights * features).flatten(3).sum(-1)  # [B, K, per_kp]
        return self.expression_mlp(pooled.flatten(1))
