"""common.metrics.pixel against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from common.metrics import pixel

C1 = (0.01 * 255) ** 2


def constant(value: int, size: int) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def luminance(x: float, y: float) -> float:
    """SSIM of two flat images: no variance, so only the luminance term differs from 1."""
    return (2 * x * y + C1) / (x * x + y * y + C1)


def test_identical_images_are_perfect(astronaut):
    image = astronaut[:200, 150:350]
    assert pixel.psnr(image, image) == math.inf
    assert pixel.l1(image, image) == 0.0
    assert_close(pixel.ssim(image, image), 1.0, ROUNDING, "ssim")
    assert_close(pixel.ms_ssim(image, image), 1.0, ROUNDING, "ms_ssim")


def test_constant_offset_gives_closed_form_psnr_and_l1():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 246, (32, 24, 3), dtype=np.uint8)
    b = a + np.uint8(10)  # MSE = 100, mean |diff| = 10
    assert_close(pixel.psnr(a, b), 20 * math.log10(255 / 10), ROUNDING, "psnr")
    assert_close(pixel.l1(a, b), 10 / 255, ROUNDING, "l1")


def test_l1_hand_value():
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    b = np.array([[0, 51], [102, 255]], dtype=np.uint8)[..., None].repeat(3, axis=2)
    assert_close(pixel.l1(a, b), (0 + 51 + 102 + 255) / 4 / 255, ROUNDING, "l1")  # 0.4


def test_ssim_of_flat_images_is_the_luminance_term():
    assert_close(pixel.ssim(constant(100, 32), constant(120, 32)), luminance(100, 120), ROUNDING, "ssim")


@pytest.mark.parametrize(("size", "scales"), [(256, 5), (128, 4), (64, 3)])
def test_ms_ssim_of_flat_images_weights_the_coarsest_scale(size, scales):
    """Flat images have contrast-structure 1 at every scale, so MS-SSIM = luminance ** (last weight),
    the weights renormalised over the scales that fit."""
    weights = pixel.MS_SSIM_WEIGHTS[:scales]
    assert pixel.ms_ssim_scales(size, size) == scales
    expected = luminance(100, 120) ** (weights[-1] / sum(weights))
    assert_close(pixel.ms_ssim(constant(100, size), constant(120, size)), expected, ROUNDING, "ms_ssim")


def test_single_scale_ms_ssim_is_scikit_image_ssim():
    """Below 22 pixels only one scale fits: our SSIM terms then reproduce structural_similarity."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 17, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert pixel.ms_ssim_scales(20, 17) == 1
    assert_close(pixel.ms_ssim(a, b), pixel.ssim(a, b), ROUNDING, "ms_ssim")


def test_more_noise_scores_worse(astronaut):
    rng = np.random.default_rng(2)
    image = astronaut[:256, 128:384]
    noisy = [np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8) for sigma in (5, 30)]
    for metric in (pixel.ssim, pixel.ms_ssim, pixel.psnr):
        assert metric(image, noisy[0]) > metric(image, noisy[1]), metric.__name__
    assert pixel.l1(image, noisy[0]) < pixel.l1(image, noisy[1])


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError, match="differ in size"):
        pixel.psnr(constant(0, 8), constant(0, 9))
    with pytest.raises(InputError, match="HxWx3 uint8"):
        pixel.l1(constant(0, 8).astype(np.float32), constant(0, 8))
    with pytest.raises(InputError, match="smaller than the 11-pixel"):
        pixel.ms_ssim(constant(0, 10), constant(0, 10))
