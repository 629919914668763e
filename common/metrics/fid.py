"""Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium"), computed as pytorch-fid computes it; imports torch.

Features: the 2048-d pool3 activations of the TensorFlow Inception-v3 graph of 2015-12-05 that the original
FID code used, in pytorch-fid's port. That network differs from torchvision's Inception-v3 in its blocks'
pooling: the average pools of the Mixed_5*, Mixed_6b-e and Mixed_7b blocks ignore the zero padding, and
Mixed_7c max-pools. Images are resized to 299x299 (bilinear, no corner alignment) from [0, 1] and mapped to
[-1, 1]. Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, loaded strictly under its own key
names (torchvision's: `Mixed_6b.branch7x7_2.conv.weight`, ...), from a local file only.

FID is biased upwards for small sets (pytorch-fid recommends at least 2048 images): compare numbers
computed on sets of the same size only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.checkpoint import load_state_dict_file, load_strict, require_file
from common.errors import InputError
from common.metrics import weights_dir

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_FILE}"
FID_WHERE = f"pytorch-fid's FID Inception weights, {FID_URL}"
FEATURES = 2048
INPUT_SIZE = 299


# ------------------------------------------------------------------------------- Frechet distance
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps=1e-6) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    As pytorch-fid: when the product's square root is not finite (a singular product), `eps` is added to
    both diagonals; an imaginary part of the root from rounding is dropped, a large one (> 1e-3 on the
    diagonal) is an error."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise InputError(
            f"Frechet distance: statistics of different sizes {mu1.shape} {sigma1.shape}, {mu2.shape} {sigma2.shape}"
        )
    root, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(root).all():
        offset = np.eye(len(mu1)) * eps
        root, _ = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset), disp=False)
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise InputError(
                f"Frechet distance: the covariance product's square root has an imaginary part of "
                f"{np.abs(root.imag).max():.3g} (degenerate statistics: too few samples?)"
            )
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, features in columns) of an [N, D] feature array, N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise InputError(f"FID needs an [N, D] feature array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two [N, D] feature sets (the Frechet distance of their Gaussian fits)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


# ------------------------------------------------------------------------------ Inception network
class BasicConv2d(nn.Module):
    """Bias-free convolution, batch norm (TensorFlow's epsilon 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _same_average(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pool, stride 1, that averages only the pixels inside the image (TensorFlow's SAME pool)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pooled 1x1 branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch5x5_1, self.branch5x5_2),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_same_average(x)),
            ],
            1,
        )


class InceptionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): strided 3x3, double 3x3 and max-pool branches."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            1,
        )


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b-e): 1x1, factorised 7x7, double factorised 7x7 and pooled 1x1 branches."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        row, column = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **column)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **column)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **column)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4)
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                _chain(x, *double, self.branch7x7dbl_5),
                self.branch_pool(_same_average(x)),
            ],
            1,
        )


class InceptionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 3x3, factorised 7x7 then 3x3, and max-pool branches."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                _chain(x, self.branch3x3_1, self.branch3x3_2),
                _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            1,
        )


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, 7c): 1x1, split 3x3, double split 3x3 and pooled 1x1 branches. The pool is the
    padding-free average in Mixed_7b and a 3x3 max pool in Mixed_7c, as in the TensorFlow graph."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _same_average(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(single),
                self.branch3x3_2b(single),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """Inception-v3 up to its global average pool: [N, 3, 299, 299] images in [-1, 1] -> [N, 2048]."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        for param in self.parameters():
            param.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a)
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)
        x = _chain(x, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean(dim=(2, 3))


def network_input(image: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 RGB image as pytorch-fid feeds it: [0, 1], bilinearly resized to 299x299 without
    corner alignment, then mapped to [-1, 1] -> [1, 3, 299, 299]."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"FID: expected HxWx3 uint8 RGB images, got {image.dtype} {image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    tensor = F.interpolate(tensor, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * tensor - 1


def find_fid_weights(directory: str | os.PathLike | None = None) -> Path | None:
    """pt_inception-2015-12-05-6726825d.pth in `directory` (default $FR_METRICS_WEIGHTS or
    checkpoints/metrics/), None when it is not there, so a report can leave FID out."""
    path = weights_dir(directory) / FID_FILE
    return path if path.is_file() else None


class InceptionFID:
    """FID with pytorch-fid's Inception weights (`weights`: a local pt_inception-2015-12-05-6726825d.pth).

    The file's 1008-way classifier (`fc.*`) is not part of the network: FID reads the pool features before
    it. A file saved without BatchNorm's `num_batches_tracked` counters (older torch) loads too; they only
    count training steps.
    """

    def __init__(self, weights: str | os.PathLike, device: str = "cpu", batch_size: int = 16):
        self.device, self.batch_size = torch.device(device), batch_size
        path = require_file(weights, "FID Inception weights", FID_WHERE)
        network = FIDInceptionV3()
        state = load_state_dict_file(path, where=FID_WHERE)
        if not any(key.endswith("num_batches_tracked") for key in state):
            state.update({k: v for k, v in network.state_dict().items() if k.endswith("num_batches_tracked")})
        load_strict(network, state, source=path, ignore=("fc.",))
        self.network = network.eval().to(self.device)

    @torch.no_grad()
    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """[N, 2048] float64 pool features of HxWx3 uint8 RGB images (sizes may differ)."""
        batches = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.cat([network_input(image) for image in images[start : start + self.batch_size]])
            batches.append(self.network(batch.to(self.device)).double().cpu().numpy())
        return np.concatenate(batches) if batches else np.zeros((0, FEATURES))

    def fid(self, images_a: Sequence[np.ndarray], images_b: Sequence[np.ndarray]) -> float:
        """FID of two image sets (at least two images each)."""
        return fid_from_features(self.features(images_a), self.features(images_b))
