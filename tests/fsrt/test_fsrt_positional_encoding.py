"""Positional codes and the pixel grid, checked against the published formula by hand."""

from __future__ import annotations

import math

import torch
from numerics import ROUNDING, assert_close

from fsrt.model import FSRTPosEncoder, PositionalEncoding, pixel_grid


def test_layout_is_sines_then_cosines_coordinate_major():
    # 2 coordinates, octaves -1..2: multipliers pi/2, pi, 2pi, 4pi.
    code = PositionalEncoding(num_octaves=4, start_octave=-1)(torch.tensor([[0.3, -0.7]]))
    assert code.shape == (1, 16)
    by_hand = [
        math.sin(0.3 * math.pi / 2),
        math.sin(0.3 * math.pi),
        math.sin(0.6 * math.pi),
        math.sin(1.2 * math.pi),
        math.sin(-0.7 * math.pi / 2),
        math.sin(-0.7 * math.pi),
        math.sin(-1.4 * math.pi),
        math.sin(-2.8 * math.pi),
        math.cos(0.3 * math.pi / 2),
        math.cos(0.3 * math.pi),
        math.cos(0.6 * math.pi),
        math.cos(1.2 * math.pi),
        math.cos(-0.7 * math.pi / 2),
        math.cos(-0.7 * math.pi),
        math.cos(-1.4 * math.pi),
        math.cos(-2.8 * math.pi),
    ]
    # float32 arguments up to 2.8 pi carry ~1e-6 of rounding, so ROUNDING of the codes' magnitude (1)
    assert_close(code[0], by_hand, ROUNDING)


def test_pixel_grid_centres_and_axes():
    grid = pixel_grid(256, 256)
    assert grid.shape == (256, 256, 2) and grid.dtype == torch.float32
    assert grid[0, 0].tolist() == [-255 / 256, -255 / 256]  # exact in float32
    assert grid[0, 255].tolist() == [255 / 256, -255 / 256]  # x follows the column
    assert grid[17, 3].tolist() == [(2 * 3 + 1 - 256) / 256, (2 * 17 + 1 - 256) / 256]
    wide = pixel_grid(2, 4)
    assert wide[:, :, 0].tolist() == [[-0.75, -0.25, 0.25, 0.75]] * 2
    assert wide[:, 0, 1].tolist() == [-0.5, 0.5]


def test_high_octaves_follow_the_float32_recipe():
    # On the 256 grid octave 14 is an exact multiple of pi, so its sine is float32 rounding
    # noise; matching the original needs float32(2^o) * pi, then times the coordinate.
    x = -255 / 256
    code = PositionalEncoding(num_octaves=16, start_octave=-1)(torch.tensor([[x]]))
    # The argument's rounding sets the value (~1e-3); another order of the products moves the
    # argument by an ulp (4e-3 at 5e4) and so the value by its own size. SIMD and scalar sines may
    # differ in the result's last bit: ROUNDING of the value itself.
    float32_recipe = torch.sin(torch.tensor(x) * (torch.tensor(2.0**14) * math.pi))
    assert_close(code[0, 15], float32_recipe, ROUNDING)
    assert abs(math.sin(x * 2**14 * math.pi)) < 1e-9 < abs(code[0, 15].item())
    assert_close(code[0, 16 + 9], -1.0, ROUNDING)  # octave 8: cos of an odd multiple of pi


def test_image_code_puts_keypoints_first_and_repeats_them():
    encoder = FSRTPosEncoder()
    pixels = pixel_grid(8, 8)[None]
    keypoints = torch.linspace(-1.5, 1.5, 20)[None]
    code = encoder.image(pixels, keypoints)
    assert code.shape == (1, 160 + 64, 8, 8)
    assert torch.equal(code[0, :160, 2, 5], code[0, :160, 7, 0])  # same keypoint code everywhere (a copy)
    # keypoint feature 4 (sine of coordinate 1, octave -1) and pixel feature 17 (sine of y, octave 0);
    # sines and cosines: ROUNDING of 1
    y, x = pixels[0, 6, 1, 1].item(), pixels[0, 6, 1, 0].item()
    assert_close(
        torch.stack([code[0, 4, 0, 0], code[0, 160 + 17, 6, 1], code[0, 160 + 32, 6, 1]]),
        [math.sin(keypoints[0, 1].item() * math.pi / 2), math.sin(y * math.pi), math.cos(x * math.pi / 2)],
        ROUNDING,
    )
