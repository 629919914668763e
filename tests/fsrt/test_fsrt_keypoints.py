"""FOMM keypoint detector: endpoint grid, soft-argmax, anti-aliased downsampling, output shapes."""

from __future__ import annotations

import math

import torch
from numerics import FORWARD, ROUNDING, assert_close

from fsrt.model import KPDetector, make_coordinate_grid, soft_argmax
from fsrt.model.keypoint_detector import AntiAliasInterpolation2d


def test_grid_endpoints_are_exactly_plus_minus_one():
    grid = make_coordinate_grid(58, 58)
    assert grid.shape == (58, 58, 2)
    # 2 * (i / 57) - 1 in float32: each op is correctly rounded, so 0 and 57 give -1 and 1 exactly
    assert grid[0, 0].tolist() == [-1.0, -1.0] and grid[57, 57].tolist() == [1.0, 1.0]
    assert_close(grid[10, 40], [2 * 40 / 57 - 1, 2 * 10 / 57 - 1], ROUNDING)  # 1/58 would be off by 2e-2


def test_delta_heatmap_gives_its_grid_coordinate():
    heatmap = torch.zeros(1, 2, 58, 58)
    heatmap[0, 0, 10, 40] = 1.0  # row 10, column 40
    heatmap[0, 1, 57, 0] = 1.0
    kp = soft_argmax(heatmap)
    assert_close(kp[0, 0], [2 * 40 / 57 - 1, 2 * 10 / 57 - 1], ROUNDING)
    # exact: every other product is an exact 0, and the grid's endpoints are exact
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
    peak = math.e**10 / (math.e**10 + 3363)
    assert maps["heatmap"].shape == (1, 2, 1, 58, 58)
    # The softmax divides by a float32 sum of 3364 terms, 3363 of them equal: summed in SIMD lanes
    # its rounding reaches 7e-6 of the peak (measured, ATEN_CPU_CAPABILITY=avx2 and default), so
    # FORWARD of the peak, the heatmap's largest value. Temperature 1 would give a peak of 8e-4.
    assert_close(maps["heatmap"][0, 0, 0, 0, 0], peak, FORWARD)
    assert_close(maps["heatmap"][0, 1, 0, 29, 13], peak, FORWARD)
    rest = (1 - peak) / 3363  # weight of every other position; over the whole grid x and y sum to 0
    # both keypoints at once, relative to the largest coordinate (0.87): the weights carry the
    # peak's error, a y near 0 (row 29 of 58) no less than the rest
    at = torch.tensor([[2 * col / 57 - 1, 2 * row / 57 - 1] for row, col in [(0, 0), (29, 13)]])
    assert_close(kp[0], peak * at - rest * at, FORWARD)


def test_anti_alias_kernel_and_downsampling():
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    assert_close(down.weight[0].sum(), 1.0, ROUNDING)  # normalised: unnormalised would be 14
    # Gaussian with sigma 1.5: neighbouring taps of the centre row relate as exp(-1/4.5)
    # (sigma 2 would give exp(-1/8), 10% off)
    ratio = (down.weight[0, 0, 6, 7] / down.weight[0, 0, 6, 6]).item()
    assert_close(ratio, math.exp(-1 / 4.5), ROUNDING)
    image = torch.zeros(1, 3, 256, 256)
    image[0, 1, 100, 40] = 1.0  # a kept pixel (multiples of 4) maps to the kernel centre
    out = down(image)
    assert out.shape == (1, 3, 64, 64)
    assert_close(out[0, 1, 25, 10], down.weight[0, 0, 6, 6], ROUNDING)  # the output's largest value
    assert out[0, 0].abs().max() == 0  # exact: a linear filter of zeros
    flat = down(torch.ones(1, 3, 256, 256))
    assert_close(flat[..., 2:-2, 2:-2], torch.ones(1, 3, 60, 60), ROUNDING)  # 169 taps summing to 1


def test_detector_outputs_at_256():
    torch.manual_seed(0)
    kp, maps = KPDetector().eval()(torch.rand(2, 3, 256, 256))
    assert kp.shape == (2, 10, 2) and kp.abs().max() <= 1
    assert maps["feature_map"].shape == (2, 35, 64, 64)
    assert maps["heatmap"].shape == (2, 10, 1, 58, 58)
    assert_close(maps["heatmap"].sum(dim=(-1, -2)), torch.ones(2, 10, 1), ROUNDING)  # sums of 3364 terms
    assert not kp.requires_grad  # frozen: the forward runs without autograd
