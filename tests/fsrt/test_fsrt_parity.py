"""Our networks reproduce the original code's outputs, stored in data/original_outputs.npz.

That file was written once by running andrerochow/fsrt at b895383 on CPU (torch 2.13) with the
weights of `fsrt_testlib.seeded_state` and the inputs of `make_inputs`: the keypoint detector on
128x128 frames, FSRT at 16x16 with two sources, the small decoder and a narrow discriminator.
Our attention runs through PyTorch's fused kernel, which rounds differently from the original's
matmul-softmax-matmul, and other CPUs and kernel paths round differently again: the largest
differences are a few millionths of each tensor's magnitude (2.8e-6 on an AVX-512 machine, 6.1e-6
with ATEN_CPU_CAPABILITY=default and one thread), hence the tolerance `numerics.FORWARD`.
Scaling one weight tensor by 1.01 moves them far beyond it (`test_a_perturbed_weight_fails`),
so the tolerance still catches a real deviation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fsrt_testlib import DATA, seeded_state
from numerics import FORWARD, assert_close, mismatch

from fsrt.config import load_config
from fsrt.model import FSRT, KPDetector, MultiScaleDiscriminator, SmallImprovedFSRTDecoder, pixel_grid

NARROW_DISC = dict(block_expansion=8, max_features=32)
SEEDS = dict(kp_detector=1, encoder=2, decoder=3, expression_encoder=4, small_decoder=5, discriminator=6)


def make_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Frames for the detector (source 0, source 1, driving) and the two 16x16 source images."""
    generator = torch.Generator().manual_seed(7)
    frames = torch.rand(3, 3, 128, 128, generator=generator)
    sources = torch.rand(1, 2, 3, 16, 16, generator=generator)
    return frames, sources


def _seed(module: torch.nn.Module, name: str) -> torch.nn.Module:
    module.load_state_dict(seeded_state(module.state_dict(), SEEDS[name]))
    return module.eval()


def _scale_first_conv(module: torch.nn.Module, factor: float) -> None:
    with torch.no_grad():
        next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).weight.mul_(factor)


def compute_outputs(perturb: float = 1.0) -> dict[str, torch.Tensor]:
    """Our outputs for the recorded weights and inputs; `perturb` scales the first convolution
    of the keypoint detector and of the discriminator (the two networks every output depends on)."""
    frames, sources = make_inputs()
    detector = _seed(KPDetector(), "kp_detector")
    model = FSRT(**load_config("vox256")["model"])
    for part in ("encoder", "decoder", "expression_encoder"):
        _seed(getattr(model, part), part)
    small = _seed(SmallImprovedFSRTDecoder(), "small_decoder")
    disc = _seed(MultiScaleDiscriminator([1], **NARROW_DISC), "discriminator")
    for network in (detector, disc):
        _scale_first_conv(network, perturb)
    with torch.no_grad():
        keypoints, expression = model.keypoints_and_expression(detector, frames)
        z = model.encode(sources, keypoints[None, :2], expression[None, :2])
        render = model.render(z, keypoints[2:], expression[2:], 16, 16, chunk_size=100)
        queries = pixel_grid(16, 16).flatten(0, 1)[None]
        small_render = small(z, queries, keypoints[2:], expression[2:])
        disc_out = disc({"prediction_1": frames[2:]}, kp=keypoints[2:])
    return {
        "keypoints": keypoints,
        "expression": expression,
        "z": z,
        "render": render.permute(0, 2, 3, 1),  # the original's [B, H, W, 3]
        "small_render": small_render,
        "disc_map": disc_out["prediction_map_1"],
        "disc_features0": disc_out["feature_maps_1"][0][:, :, :8, :8],
    }


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    return compute_outputs()


@pytest.mark.parametrize(
    "name", ["keypoints", "expression", "z", "render", "small_render", "disc_map", "disc_features0"]
)
def test_matches_the_original(outputs, name):
    expected = np.load(DATA / "original_outputs.npz")[name]
    assert np.abs(expected).max() > 1e-2  # a real signal, not an all-zero output
    assert_close(outputs[name], expected, FORWARD, name)


def test_a_perturbed_weight_fails():
    """The tolerance is no blanket: one weight tensor scaled by 1.01, a change far smaller than a
    wrong bias or a swapped channel, puts every output out of it."""
    expected = np.load(DATA / "original_outputs.npz")
    perturbed = compute_outputs(perturb=1.01)
    for name, value in perturbed.items():
        assert mismatch(value, expected[name], FORWARD) is not None, name
