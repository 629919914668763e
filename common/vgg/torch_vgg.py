"""Caffe VGG feature extractor and perceptual loss in PyTorch.

Weights come from `python -m tools.convert_vgg` (torchvision `features.<i>` or FSTH
`conv_layers.<i>` layout, both accepted). Inputs are RGB tensors in `input_range`; the module
turns them into what Caffe VGG expects (BGR, 0-255, mean subtracted) itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.checkpoint import load_state_dict_file, load_strict, require_file, save_checkpoint
from common.errors import InputError
from common.vgg.layouts import VGGArch, get_arch

DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def layer_names(arch: VGGArch) -> dict[str, int]:
    """Feature name ('conv1_1', 'relu1_1', ..., 'pool1', ...) -> index of the module producing it."""
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
        modules, in_ch = [], 3
        widths = iter(self.arch.channels)
        for count in self.arch.blocks:
            for _ in range(count):
                width = next(widths)
                modules += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
                in_ch = width
            modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.names = layer_names(self.arch)
        # not persistent: converted files hold weights only, like the originals' checkpoints
        self.register_buffer("mean_bgr", torch.tensor(self.arch.mean_bgr).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, rgb: torch.Tensor, input_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
        """RGB in `input_range` -> Caffe input: BGR, 0-255, mean subtracted."""
        lo, hi = input_range
        return (rgb.flip(1) - lo) * (255.0 / (hi - lo)) - self.mean_bgr

    def check_layers(self, layers: Sequence[str]) -> None:
        unknown = [n for n in layers if n not in self.names]
        if unknown:
            raise InputError(
                f"unknown VGG layer(s) {unknown} for {self.arch.name}; valid: conv<b>_<i>, relu<b>_<i>, pool<b>"
            )

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """The features named in `layers` of a preprocessed input, in the order asked for."""
        self.check_layers(layers)
        wanted = {self.names[n]: n for n in layers}
        found = {}
        for index, module in enumerate(self.features[: max(wanted) + 1]):
            x = module(x)
            if index in wanted:
                found[wanted[index]] = x
        return [found[n] for n in layers]


def save_state_dict(state: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write a NumPy state dict (from `common.vgg.convert.torch_state`) as a torch file, atomically."""
    return save_checkpoint({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, path)


def load_vgg(path: str | os.PathLike, arch: str | VGGArch = "vgg19") -> VGGFeatures:
    """A frozen, eval-mode `VGGFeatures` with converted Caffe weights read from `path`."""
    model = VGGFeatures(arch)
    require_file(
        path,
        "VGG weights",
        f"download {model.arch.source} and run `python -m tools.convert_vgg "
        f"--caffemodel <that file> --arch {model.arch.name} --format torch --out {path}`",
    )
    state = load_state_dict_file(path)
    # The fc layers are not needed for features; FSTH-layout files name the convolutions differently.
    state = {
        k.replace("conv_layers.", "features.", 1): v
        for k, v in state.items()
        if k.startswith(("features.", "conv_layers."))
    }
    load_strict(model, state, source=path)
    return model.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """Sum over `layers` of weight * mean |VGG(x) - VGG(y)|, no gradient through the target y.

    x and y are RGB in `input_range`; e.g. FSRT: relu1_1..relu5_1 weighted 0.01 each on [0, 1]
    input; FSTH: relu1_1..relu4_1 and conv5_1 (its in-place ReLU leaves the deepest layer
    pre-activation).
    """

    def __init__(
        self,
        weights_path: str | os.PathLike,
        arch: str | VGGArch = "vgg19",
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
    ):
        super().__init__()
        self.vgg = load_vgg(weights_path, arch)
        self.layers = tuple(layers)
        self.vgg.check_layers(self.layers)
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        if len(self.layer_weights) != len(self.layers):
            raise InputError(f"{len(self.layers)} VGG layers but {len(self.layer_weights)} layer weights")
        self.input_range = input_range

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.vgg(self.vgg.preprocess(x, self.input_range), self.layers)
        with torch.no_grad():
            fy = self.vgg(self.vgg.preprocess(y, self.input_range), self.layers)
        total = x.new_zeros(())
        for weight, a, b in zip(self.layer_weights, fx, fy):
            total = total + weight * (a - b).abs().mean()
        return total
