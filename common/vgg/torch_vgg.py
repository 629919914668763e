"""VGG feature extractor and perceptual loss in PyTorch, with Caffe input conventions.

Weights come from `python -m tools.convert_vgg` (torchvision `features.<i>` or FSTH
`conv_layers.<i>` layout, both accepted). Inputs are RGB tensors in `input_range`; the module
converts them to what Caffe VGG expects (BGR, 0-255, mean subtracted) itself.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from common.checkpoint import load_state_dict_file, load_strict
from common.errors import InputError
from common.vgg.layouts import VGGArch, get_arch


def layer_names(arch: VGGArch) -> dict[str, int]:
    """Feature name ('conv1_1', 'relu1_1', ..., 'pool1', ...) -> index of the producing module."""
    names = {}
    for conv, index in arch.conv_indices.items():
        names[conv] = index
        names[conv.replace("conv", "relu")] = index + 1
    index = -1
    for block, count in enumerate(arch.blocks):
        index += 2 * count + 1
        names[f"pool{block + 1}"] = index
    return names


class VGGFeatures(nn.Module):
    """The convolutional part of a Caffe VGG, numbered like torchvision's `features`."""

    def __init__(self, arch: str | VGGArch = "vgg19"):
        super().__init__()
        self.arch = get_arch(arch) if isinstance(arch, str) else arch
        modules, in_ch, widths = [], 3, iter(self.arch.channels)
        for count in self.arch.blocks:
            for _ in range(count):
                width = next(widths)
                modules += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
                in_ch = width
            modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.names = layer_names(self.arch)
        self.register_buffer("mean_bgr", torch.tensor(self.arch.mean_bgr).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, rgb: torch.Tensor, input_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
        """RGB in `input_range` -> Caffe input: BGR, 0-255, mean subtracted."""
        lo, hi = input_range
        return (rgb.flip(1) - lo) * (255.0 / (hi - lo)) - self.mean_bgr

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Features named in `layers` (already preprocessed input), in the order asked for."""
        unknown = [n for n in layers if n not in self.names]
        if unknown:
            raise InputError(f"unknown VGG layer(s) {unknown}; valid: conv/relu<b>_<i>, pool<b>")
        wanted = {self.names[n]: n for n in layers}
        found, last = {}, max(wanted)
        for index, module in enumerate(self.features[: last + 1]):
            x = module(x)
            if index in wanted:
                found[wanted[index]] = x
        return [found[n] for n in layers]


def load_vgg(path: str | os.PathLike, arch: str | VGGArch = "vgg19") -> VGGFeatures:
    """A frozen `VGGFeatures` with converted Caffe weights read from `path`."""
    model = VGGFeatures(arch)
    if not os.path.isfile(path):
        raise InputError(
            f"{path}: VGG weights not found; convert {model.arch.source} with "
            f"`python -m tools.convert_vgg --arch {model.arch.name} --format torch ...`")
    state = load_state_dict_file(path)
    state = {k.replace("conv_layers.", "features.", 1): v for k, v in state.items()
             if k.startswith(("features.", "conv_layers."))}
    load_strict(model, state, source=path)
    model.eval().requires_grad_(False)
    return model


class PerceptualLoss(nn.Module):
    """Sum over layers of weight * mean |VGG(x) - VGG(y)|, the target's features detached."""

    def __init__(self, weights_path: str | os.PathLike, arch: str | VGGArch = "vgg19",
                 layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                 layer_weights: Sequence[float] | None = None, input_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        self.vgg = load_vgg(weights_path, arch)
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        if len(self.layer_weights) != len(self.layers):
            raise InputError(f"{len(self.layers)} VGG layers but {len(self.layer_weights)} weights")
        self.input_range = input_range

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = self.vgg(self.vgg.preprocess(torch.cat([x, y]), self.input_range), self.layers)
        total = x.new_zeros(())
        for weight, feats in zip(self.layer_weights, both):
            fx, fy = feats.chunk(2)
            total = total + weight * (fx - fy.detach()).abs().mean()
        return total
