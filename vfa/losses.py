"""VFA's training losses: the VGG19 pyramid perceptual loss on RGB and the three depth terms.

Stage 1 compares the teacher's RGBD output with the driving frame: the perceptual loss on the RGB
channels, and on the depth channel an L1 term (x200), a structure-preserving term (x50) on the
strong edges and a smoothness term (x200) on the flat parts, both Charbonnier penalties. Stage 2
compares the student with the frozen teacher's RGB (`distillation_losses`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.checkpoint import load_state_dict_file, load_strict, require_file
from common.vgg.torch_vgg import VGGFeatures

VGG19_FILE = Path("checkpoints/vfa/vgg19-dcbb9e9d.pth")
VGG19_WHERE = (
    "it is torchvision's ImageNet VGG19 (download.pytorch.org/models/vgg19-dcbb9e9d.pth, the file "
    "torchvision.models.vgg19(pretrained=True) caches under ~/.cache/torch/hub/checkpoints/); pass --vgg PATH"
)
PYRAMID_SCALES = (1.0, 0.5, 0.25, 0.125)
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_WEIGHTS = (10.0, 10.0, 10.0, 10.0, 10.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHARBONNIER_EPS = 1e-6
EDGE_THRESHOLD = 0.1

# 3x3 filters of the depth terms: central differences along x and y, and the 4-neighbour Laplacian.
_GRADIENT_X = ((0.0, 0.0, 0.0), (1.0, 0.0, -1.0), (0.0, 0.0, 0.0))
_GRADIENT_Y = ((0.0, 1.0, 0.0), (0.0, 0.0, 0.0), (0.0, -1.0, 0.0))
_LAPLACIAN = ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0))


def gaussian_kernel(scale: float) -> torch.Tensor:
    """The normalised 2-D Gaussian [k, k] of FOMM's anti-aliased downsampling to `scale`:
    sigma = (1/scale - 1) / 2, k = 2·round(4·sigma) + 1, centred at (k - 1) / 2."""
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    taps = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    line = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = line[:, None] * line[None, :]
    return kernel / kernel.sum()


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (depthwise, zero padding) then every (1/scale)-th pixel; identity at scale 1."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale, self.step = scale, int(1 / scale)
        kernel = gaussian_kernel(scale) if scale != 1 else torch.ones(1, 1)
        self.pad = kernel.shape[0] // 2  # odd kernels: the same padding on both sides
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        blurred = F.conv2d(F.pad(x, (self.pad,) * 4), self.weight.to(x.dtype), groups=x.shape[1])
        return blurred[:, :, :: self.step, :: self.step]


def load_vgg19(path: str | os.PathLike = VGG19_FILE) -> VGGFeatures:
    """Frozen, eval-mode VGG19 features from torchvision's `vgg19-dcbb9e9d.pth` (`features.N` keys;
    the classifier is not needed). A missing file is a one-line error saying where it comes from."""
    path = require_file(path, "VGG19 weights (torchvision vgg19-dcbb9e9d.pth)", VGG19_WHERE)
    state = load_state_dict_file(path)
    model = VGGFeatures("vgg19")
    load_strict(model, {k: v for k, v in state.items() if k.startswith("features.")}, source=path)
    return model.eval().requires_grad_(False)


class VGGPyramidLoss(nn.Module):
    """Σ over scales 1, 1/2, 1/4, 1/8 and over relu1_1 … relu5_1 of 10 · mean |VGG(x) − VGG(y)|.

    Inputs are RGB in [-1, 1] (clamped to it), mapped to [0, 1] and standardised with the ImageNet
    mean and std; no gradient flows through the target's features. `vgg` is a `VGGFeatures` in
    torchvision's layout (`load_vgg19`)."""

    def __init__(self, vgg: VGGFeatures, scales=PYRAMID_SCALES, layer_weights=VGG_WEIGHTS):
        super().__init__()
        self.vgg = vgg.eval().requires_grad_(False)
        self.downsamplers = nn.ModuleList(AntiAliasDownsample(3, s) for s in scales)
        self.layer_weights = tuple(layer_weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1 … relu5_1 of an RGB image in [-1, 1]."""
        unit = image.clamp(-1, 1) / 2 + 0.5
        return self.vgg((unit - self.mean.to(image.dtype)) / self.std.to(image.dtype), VGG_LAYERS)

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros(())
        for down in self.downsamplers:
            recon_features = self.features(down(recon))
            with torch.no_grad():
                target_features = self.features(down(target))
            for weight, a, b in zip(self.layer_weights, recon_features, target_features):
                total = total + weight * (a - b).abs().mean()
        return total


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """mean sqrt((x − y)² + eps)."""
    diff = x - y
    return torch.sqrt(diff * diff + eps).mean()


def _filter(image: torch.Tensor, taps) -> torch.Tensor:
    weight = torch.tensor(taps, dtype=image.dtype, device=image.device).view(1, 1, 3, 3)
    return F.conv2d(image, weight, padding=1)


def _target_edges(target: torch.Tensor) -> list[torch.Tensor]:
    """Per axis (x, y): where the target's central difference exceeds 0.1 in magnitude."""
    return [_filter(target, taps).abs() > EDGE_THRESHOLD for taps in (_GRADIENT_X, _GRADIENT_Y)]


def structure_preserving_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Depth edges: per axis, the central differences of both maps where the target's exceeds 0.1
    in magnitude (zero elsewhere), |.| max-pooled over 5x5, Charbonnier; x + y. Depth [B, 1, H, W]."""
    total = recon.new_zeros(())
    for taps, edges in zip((_GRADIENT_X, _GRADIENT_Y), _target_edges(target)):
        edges = edges.to(recon.dtype)
        pooled = [F.max_pool2d((_filter(d, taps) * edges).abs(), 5, stride=1, padding=2) for d in (recon, target)]
        total = total + charbonnier(*pooled)
    return total


def smoothness_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Flat depth: the Laplacians of both maps where neither target difference is an edge (both
    at most 0.1 in magnitude: the original tests the already edge-masked differences), zero
    elsewhere; Charbonnier. Depth [B, 1, H, W]."""
    edges_x, edges_y = _target_edges(target)
    flat = (~edges_x & ~edges_y).to(recon.dtype)
    return charbonnier(_filter(recon, _LAPLACIAN) * flat, _filter(target, _LAPLACIAN) * flat)


def depth_losses(
    recon: torch.Tensor, target: torch.Tensor, lambda_l1: float = 200.0, lambda_sp: float = 50.0, lambda_sm=200.0
) -> dict[str, torch.Tensor]:
    """The stage-1 depth terms, weighted, on depth maps [B, 1, H, W]."""
    return {
        "l1_loss": F.l1_loss(recon, target) * lambda_l1,
        "smooth_loss": smoothness_loss(recon, target) * lambda_sm,
        "structure_preserve_loss": structure_preserving_loss(recon, target) * lambda_sp,
    }


def stage1_losses(
    vgg_loss, recon: torch.Tensor, target: torch.Tensor, lambda_l1=200.0, lambda_sp=50.0, lambda_sm=200.0
) -> dict[str, torch.Tensor]:
    """Teacher RGBD [B, 4, H, W] against the driving frame: the depth terms on channel 3 and the
    perceptual loss on RGB (an RGB-only batch gets the perceptual and an L1 term, as LIA's).
    `vgg_loss` None leaves the perceptual term out."""
    if target.shape[1] > 3:
        losses = depth_losses(recon[:, 3:4], target[:, 3:4], lambda_l1, lambda_sp, lambda_sm)
        if vgg_loss is not None:
            losses["vgg_loss"] = vgg_loss(recon[:, :3], target[:, :3])
        return losses
    losses = {"l1_loss": F.l1_loss(recon, target) * lambda_l1}
    if vgg_loss is not None:
        losses["vgg_loss"] = vgg_loss(recon, target)
    return losses


def distillation_losses(
    vgg_loss: VGGPyramidLoss, teacher: torch.Tensor, student: dict[str, torch.Tensor], lambda_l1: float = 200.0
) -> dict[str, torch.Tensor]:
    """Stage 2: the student's inpainted image and its masked warp against the teacher's RGB
    (masked the same way), each with the perceptual loss and an L1 term. `vgg_loss` None leaves
    the perceptual terms out."""
    target = teacher[:, :3]
    mask = student["mask"]
    inpaint, warp = student["out_inpaint"], student["out_warp"] * mask
    losses = {"l1_loss": F.l1_loss(inpaint, target) * lambda_l1}
    if vgg_loss is not None:
        losses["vgg_loss"] = vgg_loss(inpaint, target)
    losses["l1_loss_warp"] = F.l1_loss(warp, target * mask) * lambda_l1
    if vgg_loss is not None:
        losses["vgg_loss_warp"] = vgg_loss(warp, target * mask)
    return losses
