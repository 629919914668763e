"""fsrt.bench counts the decoder's FLOPs per frame on one chunk of queries: that count, scaled, equals
the count of decoding the whole frame (the keys and values of z are projected once per frame)."""

from __future__ import annotations

import pytest
import torch
from fsrt_testlib import SMALL_MODEL

from common.bench import count_flops
from fsrt.bench import SIZE, decoder_gflop_per_frame, precision_note, range_scaled_agreement
from fsrt.model import FSRT


def test_decoder_gflop_from_one_chunk_equals_the_whole_frame():
    torch.manual_seed(0)
    model = FSRT(**SMALL_MODEL).eval()
    keypoints, expression = torch.rand(1, 10, 2) * 2 - 1, torch.randn(1, 8)
    with torch.inference_mode():
        z = model.encode(torch.rand(1, 1, 3, 64, 64), keypoints[None], expression[None])
        code = model.pixel_code(SIZE, SIZE)
        whole = count_flops(model.decoder.render, z, code, keypoints, expression, 8192)
        per_frame = decoder_gflop_per_frame(model, z, code, keypoints, expression, 8192)
    assert whole > 0 and per_frame == pytest.approx(whole / 1e9, rel=1e-12)


def test_precision_agreement_is_measured_on_the_float32_frames_range():
    """Random weights decode values within about +-0.01: scaled by the float32 frame's own range, a
    change of a tenth of that range is 25.5 levels, not 0."""
    reference = torch.linspace(-0.01, 0.01, 101)
    assert range_scaled_agreement(reference, reference)["max_levels"] == 0
    moved = reference.clone()
    moved[50] += 0.002
    assert range_scaled_agreement(reference, moved)["max_levels"] in (25, 26)
    assert precision_note(10.0, 4.0) == "x2.50 vs fp32"
