"""LPIPS (VGG16 variant) as taming-transformers' stage-1 loss uses it, without torchvision.

The VGG16 `features` are rebuilt by hand and split into `net.slice1..5` keeping torchvision's layer
indices in the key names (`net.slice3.14.weight`). No weights are downloaded: the backbone comes from a
checkpoint (the official stage-1 checkpoint carries it as `loss.perceptual_loss.net.*`) or from
torchvision's VGG16 file (`vgg16_state`), and the lin layers from taming's `vgg.pth`
(`load_lin_weights`) or the same checkpoint. Every parameter is frozen.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from common.checkpoint import load_state_dict_file, mismatch_report
from common.errors import CheckpointMismatchError

FEATURE_CHANNELS = (64, 128, 256, 512, 512)
# torchvision vgg16().features: conv widths per block ('M' = max pool), and the slice boundaries
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_SLICE_ENDS = (4, 9, 16, 23, 30)
_LPIPS_WHERE = (
    "taming-transformers' LPIPS weights (vgg.pth; the VPGC repo ships "
    "Reenactment/taming/modules/autoencoder/lpips/vgg.pth)"
)


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
    """Dropout (active in train mode, as in taming) then a bias-free 1x1 conv to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """Learned perceptual distance of two [-1, 1] image batches -> [B, 1, 1, 1]."""

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
        total = None
        for index, (fx, fy) in enumerate(zip(features_x, features_y)):
            diff = (_unit_channels(fx) - _unit_channels(fy)) ** 2
            layer = getattr(self, f"lin{index}").model(diff).mean([2, 3], keepdim=True)
            total = layer if total is None else total + layer
        return total

    def vgg16_state(self, torchvision_state: dict) -> dict:
        """`net.slice*` entries from a torchvision VGG16 state dict (`features.<i>.weight/bias`, e.g.
        vgg16-397923af.pth); its classifier is not used."""
        renamed = {}
        for number in range(1, len(_SLICE_ENDS) + 1):
            for name in getattr(self.net, f"slice{number}").state_dict():
                renamed[f"net.slice{number}.{name}"] = torchvision_state.get(f"features.{name}")
        return {key: value for key, value in renamed.items() if value is not None}

    def load_lin_weights(self, path: str | os.PathLike) -> None:
        """Load the five lin layers from taming's `vgg.pth` (`lin<i>.model.1.weight`); other keys in the
        file (a full LPIPS state dict) are ignored, missing or mis-shaped lin weights are an error."""
        state = load_state_dict_file(path, where=_LPIPS_WHERE)
        expected = {k: v for k, v in self.state_dict().items() if k.startswith("lin")}
        given = {k: v for k, v in state.items() if k.startswith("lin")}
        report = mismatch_report(expected, given)
        if report:
            raise CheckpointMismatchError(f"{path}: not LPIPS lin weights: {report}")
        self.load_state_dict(given, strict=False)
