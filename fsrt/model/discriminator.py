"""Keypoint-conditioned patch discriminator (FOMM style), used from training phase 3 on."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fsrt.model.keypoint_detector import make_coordinate_grid


def kp2gaussian(kp: torch.Tensor, spatial_size: Sequence[int], kp_variance: float) -> torch.Tensor:
    """Isotropic Gaussian bump per keypoint on the [-1, 1] endpoint grid: [..., K, 2] -> [..., K, H, W]."""
    grid = make_coordinate_grid(*spatial_size, dtype=kp.dtype, device=kp.device)
    squared = ((grid - kp[..., None, None, :]) ** 2).sum(-1)
    return torch.exp(-0.5 * squared / kp_variance)


class DownBlock2d(nn.Module):
    """Unpadded conv -> optional InstanceNorm -> LeakyReLU(0.2) -> optional 2x2 average pooling."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        norm: bool = False,
        kernel_size: int = 4,
        pool: bool = False,
        sn: bool = False,
    ):
        super().__init__()
        conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
        self.conv = nn.utils.spectral_norm(conv) if sn else conv
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, 2) if self.pool else out


class Discriminator(nn.Module):
    """Pix2Pix-like discriminator on 256x256 RGB plus, with `use_kp`, one Gaussian heatmap per keypoint.

    Returns the feature maps of every block (for feature matching) and a 1-channel patch map
    (26x26 with the defaults). Inputs are resized to 256x256 first, as in the original.
    """

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 64,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = False,
        use_kp: bool = True,
        num_kp: int = 10,
        kp_variance: float = 0.01,
    ):
        super().__init__()

        def width(level: int) -> int:
            return min(max_features, block_expansion * 2**level)

        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                num_channels + num_kp * use_kp if i == 0 else width(i),
                width(i + 1),
                norm=i != 0,
                kernel_size=4,
                pool=i != num_blocks - 1,
                sn=sn,
            )
            for i in range(num_blocks)
        )
        conv = nn.Conv2d(width(num_blocks), 1, kernel_size=1)
        self.conv = nn.utils.spectral_norm(conv) if sn else conv
        self.use_kp = use_kp
        self.kp_variance = kp_variance

    def forward(self, x: torch.Tensor, kp: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x [B, C, H, W], kp [B, K, 2] -> ([block outputs], prediction map [B, 1, h, w])."""
        out = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=True)
        if self.use_kp:
            out = torch.cat([out, kp2gaussian(kp, out.shape[2:], self.kp_variance)], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
    """One `Discriminator` per image-pyramid scale, stored as `discs['<scale>']` ('.' -> '-')."""

    def __init__(self, scales: Sequence[float] = (1,), **kwargs):
        super().__init__()
        self.discs = nn.ModuleDict({str(scale).replace(".", "-"): Discriminator(**kwargs) for scale in scales})

    def forward(
        self, pyramid: dict[str, torch.Tensor], kp: torch.Tensor | None = None, detach: bool = False
    ) -> dict[str, object]:
        """{'prediction_<scale>': image} -> {'feature_maps_<scale>': [...], 'prediction_map_<scale>': map}.

        `detach` stops gradients into the images (the discriminator's own update).
        """
        out: dict[str, object] = {}
        for key, disc in self.discs.items():
            scale = key.replace("-", ".")
            image = pyramid[f"prediction_{scale}"]
            feature_maps, prediction_map = disc(image.detach() if detach else image, kp)
            out[f"feature_maps_{scale}"] = feature_maps
            out[f"prediction_map_{scale}"] = prediction_map
        return out
