"""LPIPS, the learned perceptual distance of Zhang et al. 2018 ("The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric"), version 0.1, VGG16 variant; imports torch.

Images in [-1, 1] are shifted and scaled per channel (`ScalingLayer`), passed through VGG16's features up to
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each feature vector is scaled to unit length over its
channels, the squared differences are weighted per channel by a bias-free 1x1 convolution ("lin" head),
averaged over the image and summed over the five layers.

The VGG16 features are rebuilt by hand (no torchvision) and split into `net.slice1..5` keeping torchvision's
layer indices in the key names (`net.slice3.14.weight`). Nothing is downloaded: the backbone comes from
torchvision's ImageNet file vgg16-397923af.pth (`features.<i>.*`) and the heads from the `lpips` package's
weights/v0.1/vgg.pth (`lin<i>.model.1.weight`). VPGC's perceptual loss (`vpgc.model.lpips`) is this network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.checkpoint import load_state_dict_file, mismatch_report, require_file
from common.errors import CheckpointMismatchError
from common.metrics import weights_dir
from common.metrics.pixel import as_float_pair

FEATURE_CHANNELS = (64, 128, 256, 512, 512)
# torchvision vgg16().features: conv widths per block ('M' = max pool), and the slice boundaries
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_SLICE_ENDS = (4, 9, 16, 23, 30)

LIN_FILE = "vgg.pth"
VGG16_FILE = "vgg16-397923af.pth"
LIN_WHERE = f"it is weights/v0.1/{LIN_FILE} inside the pip package lpips (pip download lpips, then unzip)"
VGG16_WHERE = f"torchvision's ImageNet VGG16, https://download.pytorch.org/models/{VGG16_FILE}"


def _vgg16_features() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = item
    return layers


class VGG16Slices(nn.Module):
    """VGG16 features up to relu5_3, returned after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3."""

    def __init__(self):
        super().__init__()
        layers, start = _vgg16_features(), 0
        for number, end in enumerate(_SLICE_ENDS, start=1):
            part = nn.Sequential()
            for index in range(start, end):
                part.add_module(str(index), layers[index])
            setattr(self, f"slice{number}", part)
            start = end

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for number in range(1, len(_SLICE_ENDS) + 1):
            x = getattr(self, f"slice{number}")(x)
            outputs.append(x)
        return outputs


class ScalingLayer(nn.Module):
    """Maps [-1, 1] images to the statistics LPIPS's VGG expects."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """Dropout (active in train mode only, as in the original) then a bias-free 1x1 conv to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


def unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each pixel's feature vector divided by its length over the channels (+ eps against zero vectors)."""
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


def layer_distance(features_x: torch.Tensor, features_y: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """One layer's term: squared difference of unit-normalised features, weighted by `head`, averaged over
    the image -> [B, 1, 1, 1]."""
    return head((unit_channels(features_x) - unit_channels(features_y)) ** 2).mean([2, 3], keepdim=True)


class LPIPSNetwork(nn.Module):
    """Learned perceptual distance of two [-1, 1] image batches -> [B, 1, 1, 1]; every parameter frozen."""

    lin_where = LIN_WHERE  # where the lin weights come from, for the missing-file error

    def __init__(self):
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = VGG16Slices()
        for index, channels in enumerate(FEATURE_CHANNELS):
            setattr(self, f"lin{index}", NetLinLayer(channels))
        for param in self.parameters():
            param.requires_grad = False

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        features_x = self.net(self.scaling_layer(x))
        features_y = self.net(self.scaling_layer(y))
        terms = [
            layer_distance(fx, fy, getattr(self, f"lin{index}").model)
            for index, (fx, fy) in enumerate(zip(features_x, features_y))
        ]
        return sum(terms)  # left to right, as the original accumulates the layers

    def vgg16_state(self, torchvision_state: dict) -> dict:
        """`net.slice*` entries from a torchvision VGG16 state dict (`features.<i>.weight/bias`, e.g.
        vgg16-397923af.pth); its classifier is not used."""
        renamed = {}
        for number in range(1, len(_SLICE_ENDS) + 1):
            for name in getattr(self.net, f"slice{number}").state_dict():
                renamed[f"net.slice{number}.{name}"] = torchvision_state.get(f"features.{name}")
        return {key: value for key, value in renamed.items() if value is not None}

    def load_vgg16(self, path: str | os.PathLike) -> None:
        """Load the backbone from torchvision's VGG16 file; a missing or mis-shaped conv is an error."""
        state = self.vgg16_state(load_state_dict_file(path, where=VGG16_WHERE))
        self._load_part(path, "net.", state, "not a torchvision VGG16 state dict")

    def load_lin_weights(self, path: str | os.PathLike) -> None:
        """Load the five lin layers from the LPIPS `vgg.pth` (`lin<i>.model.1.weight`); other keys in the
        file (a full LPIPS state dict) are ignored, missing or mis-shaped lin weights are an error."""
        state = load_state_dict_file(path, where=self.lin_where)
        self._load_part(path, "lin", {k: v for k, v in state.items() if k.startswith("lin")}, "not LPIPS lin weights")

    def _load_part(self, path, prefix: str, given: dict, what: str) -> None:
        expected = {k: v for k, v in self.state_dict().items() if k.startswith(prefix)}
        report = mismatch_report(expected, given)
        if report:
            raise CheckpointMismatchError(f"{path}: {what}: {report}")
        self.load_state_dict(given, strict=False)


def find_lpips_weights(directory: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """(lin heads `vgg.pth`, backbone `vgg16-397923af.pth`) in `directory`, default $FR_METRICS_WEIGHTS or
    checkpoints/metrics/; None when either is missing, so a report can leave LPIPS out."""
    folder = weights_dir(directory)
    lin, vgg16 = folder / LIN_FILE, folder / VGG16_FILE
    return (lin, vgg16) if lin.is_file() and vgg16.is_file() else None


class LPIPS:
    """LPIPS v0.1 (VGG) between two HxWx3 uint8 RGB images: `LPIPS(lin, vgg16)(a, b)` -> float >= 0.

    `lin_weights`: the lpips package's weights/v0.1/vgg.pth; `vgg16_weights`: torchvision's
    vgg16-397923af.pth. A missing file is a one-line InputError naming it and where to get it.
    """

    def __init__(self, lin_weights: str | os.PathLike, vgg16_weights: str | os.PathLike, device: str = "cpu"):
        self.device = torch.device(device)
        network = LPIPSNetwork()
        network.load_lin_weights(require_file(lin_weights, "LPIPS lin weights", LIN_WHERE))
        network.load_vgg16(require_file(vgg16_weights, "VGG16 weights", VGG16_WHERE))
        self.network = network.eval().to(self.device)

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(self.device)

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = as_float_pair(a, b)
        return float(self.network(self._tensor(a), self._tensor(b)).item())
