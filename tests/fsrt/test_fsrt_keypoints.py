"""FOMM keypoint detector: endpoint grid, soft-argmax, anti-aliased downsampling, output shapes."""
from __future__ import annotations

import math

import pytest
import torch

from fsrt.model import KPDetector, make_coordinate_grid, soft_argmax
from fsrt.model.keypoint_detector import AntiAliasInterpolation2d


def test_grid_endpoints_are_exactly_plus_minus_one():
    grid = make_coordinate_grid(58, 58)
    assert grid.shape == (58, 58, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0] and grid[57, 57].tolist() == [1.0, 1.0]
    assert grid[10, 40].tolist() == pytest.approx([2 * 40 / 57 - 1, 2 * 10 / 57 - 1], abs=1e-7)


def test_delta_heatmap_gives_its_grid_coordinate():
    heatmap = torch.zeros(1, 2, 58, 58)
    heatmap[0, 0, 10, 40] = 1.0  # row 10, column 40
    heatmap[0, 1, 57, 0] = 1.0
    kp = soft_argmax(heatmap)
    assert kp[0, 0].tolist() == pytest.approx([2 * 40 / 57 - 1, 2 * 10 / 57 - 1], abs=1e-7)
    assert kp[0, 1].tolist() == [-1.0, 1.0]
    halves = torch.zeros(1, 1, 58, 58)
    halves[0, 0, 0, 0] = halves[0, 0, 0, 57] = 0.5
    assert soft_argmax(halves)[0, 0].tolist() == [0.0, -1.0]


class _Logits(torch.nn.Module):
    """Stands in for the 7x7 `kp` conv: logit 1 at one position per keypoint, 0 elsewhere."""

    def __init__(self, positions):
        super().__init__()
        self.positions = positions

    def forward(self, feature_map):
        logits = torch.zeros(feature_map.shape[0], len(self.positions), 58, 58)
        for k, (row, col) in enumerate(self.positions):
            logits[:, k, row, col] = 1.0
        return logits


def test_detector_softmax_uses_the_temperature():
    detector = KPDetector().eval()
    detector.kp = _Logits([(0, 0), (29, 13)])
    kp, maps = detector(torch.rand(1, 3, 128, 128))
    # softmax(logits / 0.1): the peak weighs e^10 against 1 for each of the other 3363 positions
    peak = math.e ** 10 / (math.e ** 10 + 3363)
    assert maps["heatmap"].shape == (1, 2, 1, 58, 58)
    assert maps["heatmap"][0, 0, 0, 0, 0].item() == pytest.approx(peak, rel=1e-5)
    assert maps["heatmap"][0, 1, 0, 29, 13].item() == pytest.approx(peak, rel=1e-5)
    rest = (1 - peak) / 3363  # weight of every other position; over the whole grid x and y sum to 0
    for k, (row, col) in enumerate([(0, 0), (29, 13)]):
        at = torch.tensor([2 * col / 57 - 1, 2 * row / 57 - 1])
        torch.testing.assert_close(kp[0, k], peak * at - rest * at, rtol=1e-5, atol=1e-6)


def test_anti_alias_kernel_and_downsampling():
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    assert down.weight[0].sum().item() == pytest.approx(1.0, abs=1e-6)
    # Gaussian with sigma 1.5: neighbouring taps of the centre row relate as exp(-1/4.5)
    ratio = (down.weight[0, 0, 6, 7] / down.weight[0, 0, 6, 6]).item()
    assert ratio == pytest.approx(math.exp(-1 / 4.5), rel=1e-6)
    image = torch.zeros(1, 3, 256, 256)
    image[0, 1, 100, 40] = 1.0  # a kept pixel (multiples of 4) maps to the kernel centre
    out = down(image)
    assert out.shape == (1, 3, 64, 64)
    assert out[0, 1, 25, 10].item() == pytest.approx(down.weight[0, 0, 6, 6].item(), rel=1e-6)
    assert out[0, 0].abs().max() == 0
    flat = down(torch.ones(1, 3, 256, 256))
    torch.testing.assert_close(flat[..., 2:-2, 2:-2], torch.ones(1, 3, 60, 60))


def test_detector_outputs_at_256():
    torch.manual_seed(0)
    kp, maps = KPDetector().eval()(torch.rand(2, 3, 256, 256))
    assert kp.shape == (2, 10, 2) and kp.abs().max() <= 1
    assert maps["feature_map"].shape == (2, 35, 64, 64)
    assert maps["heatmap"].shape == (2, 10, 1, 58, 58)
    torch.testing.assert_close(maps["heatmap"].sum(dim=(-1, -2)), torch.ones(2, 10, 1))
    assert not kp.requires_grad  # frozen: the forward runs without autograd
