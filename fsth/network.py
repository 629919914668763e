"""Generator, Embedder and projection Discriminator, for meta-training and for fine-tuning.

Images x and landmark images y are (n, 3, H, W) in [0, 1] (input_normalize=True) or [0, 255];
E and D see them concatenated, image first, as the original does. With the default configs H and
W must be multiples of 64 (six 'D' blocks), and at least 128 for D, whose final InstanceNorm needs
more than one pixel; the original asserts 256 x 256 (a 4 x 4 final map) in E and D.

Parameter names, registration order and initialisation follow `model/network.py` and
`model/network_finetune.py` of the original, so its state dicts load strictly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fsth import config
from fsth.components import ADAPTIVE, FEATURE_BLOCKS, adain_slices, make_layers
from fsth.config import parse_layer_config


def _encoder_layers(layer_config: Sequence, input_dim: int, embedding_dim: int, name: str) -> nn.ModuleList:
    specs = parse_layer_config(layer_config, input_dim, name)
    if specs[-1].out_channels != embedding_dim:
        raise ValueError(f"{name} ends with {specs[-1].out_channels} channels, not embedding_dim={embedding_dim}")
    return make_layers(specs)


def _pool(x: torch.Tensor) -> torch.Tensor:
    # Global max pooling then ReLU, as the original does (the paper sums).
    return F.relu(x.amax(dim=(2, 3)))


class _AdaINGenerator(nn.Module):
    """The layers of G and the walk through them that hands each adaptive block its AdaIN rows."""

    def __init__(self, G_config: Sequence, normalize: bool, input_dim: int, upsample_mode: str):
        super().__init__()
        self.normalize = normalize
        specs = parse_layer_config(G_config, input_dim, "G_config")
        self.layers = make_layers(specs, upsample_mode)
        self.adain_slices = adain_slices(specs)
        self.adain_param_count = sum(a + b for a, b in self.adain_slices)

    def render(self, y: torch.Tensor, adain: torch.Tensor) -> torch.Tensor:
        """y (n, input_dim, H, W) and adain (n or 1, adain_param_count, 2) -> image (n, 3, H, W).

        adain[..., 0] holds sigma and adain[..., 1] mu; rows are consumed in layer order, each
        adaptive block taking its first AdaIN's channels, then its second's.
        """
        sigma, mu = adain[..., 0], adain[..., 1]
        slices = iter(self.adain_slices)
        start = 0
        x = y
        for layer in self.layers:
            if isinstance(layer, ADAPTIVE):
                dim_1, dim_2 = next(slices)
                first, second = slice(start, start + dim_1), slice(start + dim_1, start + dim_1 + dim_2)
                x = layer(x, sigma[:, first], mu[:, first], sigma[:, second], mu[:, second])
                start += dim_1 + dim_2
            else:
                x = layer(x)
        x = torch.sigmoid(x)
        return x if self.normalize else x * 255.0


class Generator(_AdaINGenerator):
    """Meta-training G: landmark image y and identity embedding e (n, embedding_dim) -> image.

    The projection `P` maps e to 2 * adain_param_count values, interleaved (sigma_j, mu_j).
    """

    def __init__(
        self,
        G_config: Sequence = config.G_config,
        embedding_dim: int = 512,
        normalize: bool = True,
        input_dim: int = 3,
        upsample_mode: str = "bilinear",
    ):
        super().__init__(G_config, normalize, input_dim, upsample_mode)
        self.P = nn.Linear(embedding_dim, 2 * self.adain_param_count, bias=False)
        nn.init.normal_(self.P.weight, 0.0, 0.02)

    def forward(self, y: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.render(y, self.P(e).reshape(e.shape[0], self.adain_param_count, 2))


class FinetuneGenerator(_AdaINGenerator):
    """Fine-tuning G: the AdaIN parameters are a tuned parameter `adain` (1, count, 2), set from
    e_mean @ P.T by `fsth.checkpoint.to_finetune_state`."""

    def __init__(
        self,
        G_config: Sequence = config.G_config,
        normalize: bool = True,
        input_dim: int = 3,
        upsample_mode: str = "bilinear",
    ):
        super().__init__(G_config, normalize, input_dim, upsample_mode)
        self.adain = nn.Parameter(torch.zeros(1, self.adain_param_count, 2))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.render(y, self.adain)


class Embedder(nn.Module):
    """E: (image, landmark image) pairs -> identity embeddings (n, embedding_dim), non-negative."""

    def __init__(self, E_config: Sequence = config.E_config, embedding_dim: int = 512, input_dim: int = 6):
        super().__init__()
        self.layers = _encoder_layers(E_config, input_dim, embedding_dim, "E_config")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat((x, y), dim=1)
        for layer in self.layers:
            h = layer(h)
        return _pool(h)


class DiscriminatorOutput(NamedTuple):
    """features: outputs of every 'D' and 'B' block (feature matching); score: (n,) realism;
    w: the rows W_i (n, embedding_dim) of the video embedding, without w0 (matching loss),
    None for the fine-tuning D."""

    features: list
    score: torch.Tensor
    w: torch.Tensor | None


class _FeatureDiscriminator(nn.Module):
    def __init__(self, V_config: Sequence, embedding_dim: int, input_dim: int):
        super().__init__()
        self.layers = _encoder_layers(V_config, input_dim, embedding_dim, "V_config")

    def features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list, torch.Tensor]:
        """Block outputs and the pooled vector v (n, embedding_dim)."""
        h = torch.cat((x, y), dim=1)
        outputs = []
        for layer in self.layers:
            h = layer(h)
            if isinstance(layer, FEATURE_BLOCKS):
                outputs.append(h)
        return outputs, _pool(h)


class Discriminator(_FeatureDiscriminator):
    """Meta-training projection D: score = v . (W_i + w0) + b, one row W_i of `embedding` per
    training video (`sample_count` videos, indexed like the sorted dataset)."""

    def __init__(
        self, V_config: Sequence = config.V_config, sample_count: int = 1, embedding_dim: int = 512, input_dim: int = 6
    ):
        super().__init__(V_config, embedding_dim, input_dim)
        self.w0 = nn.Parameter(torch.empty(1, embedding_dim).normal_())
        self.b = nn.Parameter(torch.empty(()).normal_())
        self.embedding = nn.Embedding(sample_count, embedding_dim)
        nn.init.uniform_(self.embedding.weight, 0.0, 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor, video_idx: torch.Tensor) -> DiscriminatorOutput:
        features, v = self.features(x, y)
        w = self.embedding(video_idx)
        return DiscriminatorOutput(features, (v * (w + self.w0)).sum(dim=1) + self.b, w)


class FinetuneDiscriminator(_FeatureDiscriminator):
    """Fine-tuning D: one tuned vector `w` (1, embedding_dim), set to w0 + e_mean by
    `fsth.checkpoint.to_finetune_state`; score = v . w + b."""

    def __init__(self, V_config: Sequence = config.V_config, embedding_dim: int = 512, input_dim: int = 6):
        super().__init__(V_config, embedding_dim, input_dim)
        self.w = nn.Parameter(torch.zeros(1, embedding_dim))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DiscriminatorOutput:
        features, v = self.features(x, y)
        return DiscriminatorOutput(features, (v * self.w).sum(dim=1) + self.b, None)
