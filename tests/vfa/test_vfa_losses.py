"""vfa.losses on hand-computed cases: the Charbonnier depth terms, the anti-aliased pyramid, the
VGG19 slices (random weights in torchvision's file layout) and the distillation terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numerics import ROUNDING, assert_close
from vfa_train_testlib import write_random_vgg19

from common.errors import InputError
from vfa.losses import (
    AntiAliasDownsample,
    VGGPyramidLoss,
    charbonnier,
    depth_losses,
    distillation_losses,
    gaussian_kernel,
    load_vgg19,
    smoothness_loss,
    stage1_losses,
    structure_preserving_loss,
)

EPS = 1e-6


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    return write_random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19-dcbb9e9d.pth")


@pytest.fixture(scope="module")
def vgg_loss(vgg_file):
    return VGGPyramidLoss(load_vgg19(vgg_file))


def step_target(value: float = 1.0) -> torch.Tensor:
    """5x5 depth: 0 in columns 0-1, `value` in columns 2-4 (float64)."""
    target = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    target[..., 2:] = value
    return target


def test_charbonnier_is_the_mean_of_sqrt_d2_plus_eps():
    x = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    expected = (math.sqrt(EPS) + math.sqrt(1 + EPS) + math.sqrt(4 + EPS)) / 3
    assert charbonnier(x, torch.zeros(3, dtype=torch.float64)).item() == pytest.approx(expected, rel=1e-12)


def test_structure_preserving_on_a_step_edge():
    # Central differences (zero padding) of the step: |dx| = 1 in columns 1, 2 and 4 (the padded
    # border), |dy| = 1 in rows 0 and 4 of columns 2-4; every 5x5 max-pool window reaches one, so
    # the pooled target is 1 everywhere and a half-height recon's is 0.5 everywhere.
    target = step_target()
    expected = 2 * math.sqrt(0.25 + EPS)
    assert structure_preserving_loss(0.5 * target, target).item() == pytest.approx(expected, rel=1e-12)
    assert structure_preserving_loss(target, target).item() == pytest.approx(2 * math.sqrt(EPS), rel=1e-12)


def test_structure_preserving_ignores_recon_edges_where_the_target_is_flat():
    target = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    recon = step_target()
    assert structure_preserving_loss(recon, target).item() == pytest.approx(2 * math.sqrt(EPS), rel=1e-12)


def test_smoothness_counts_only_flat_pixels():
    # Flat pixels of the step: column 0 and rows 1-3 of column 3; the target's Laplacian is 0 there.
    # A bump of 0.3 at (2, 0) gives Laplacian 1.2 there and -0.3 at (1, 0) and (3, 0); its other
    # neighbour (2, 1) is an edge pixel and masked. The other 22 pixels contribute sqrt(eps).
    target = step_target()
    recon = torch.zeros_like(target)
    recon[0, 0, 2, 0] = 0.3
    expected = (math.sqrt(1.44 + EPS) + 2 * math.sqrt(0.09 + EPS) + 22 * math.sqrt(EPS)) / 25
    assert smoothness_loss(recon, target).item() == pytest.approx(expected, rel=1e-12)


def test_a_difference_of_exactly_0_1_is_flat():
    # The original tests |d| < 0.1 on the already edge-masked differences, so |d| = 0.1 is flat:
    # a 0.1 step has no edges at all and the whole Laplacian difference counts.
    target = step_target(0.1)
    recon = torch.zeros_like(target)
    recon[0, 0, 2, 1] = 0.3
    laplacian = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    diff = F.conv2d(recon - target, laplacian.view(1, 1, 3, 3), padding=1)
    assert smoothness_loss(recon, target).item() == pytest.approx(torch.sqrt(diff**2 + EPS).mean().item(), rel=1e-12)
    assert structure_preserving_loss(recon, target).item() == pytest.approx(2 * math.sqrt(EPS), rel=1e-12)


def test_depth_losses_weights():
    target = step_target()
    recon = 0.5 * target
    losses = depth_losses(recon, target)
    assert list(losses) == ["l1_loss", "smooth_loss", "structure_preserve_loss"]
    assert losses["l1_loss"].item() == pytest.approx(200 * 0.5 * 15 / 25, rel=1e-12)
    assert losses["structure_preserve_loss"].item() == pytest.approx(50 * 2 * math.sqrt(0.25 + EPS), rel=1e-12)
    assert losses["smooth_loss"].item() == pytest.approx(200 * smoothness_loss(recon, target).item(), rel=1e-12)


@pytest.mark.parametrize(("scale", "size", "sigma"), [(0.5, 5, 0.5), (0.25, 13, 1.5), (0.125, 29, 3.5)])
def test_gaussian_kernel(scale, size, sigma):
    kernel = gaussian_kernel(scale).double()
    taps = np.arange(size) - (size - 1) / 2
    line = np.exp(-(taps**2) / (2 * sigma**2))
    expected = np.outer(line, line) / np.outer(line, line).sum()
    assert kernel.shape == (size, size)
    assert_close(kernel, expected, ROUNDING, f"kernel {scale}")


def test_downsampling_samples_the_blurred_image_every_nth_pixel():
    image = torch.zeros(1, 3, 8, 8)
    image[:, :, 2, 2] = 1.0
    out = AntiAliasDownsample(3, 0.5)(image)
    kernel = gaussian_kernel(0.5)  # 5x5, centred on the impulse at (2, 2)
    assert out.shape == (1, 3, 4, 4)
    # output (i, j) is pixel (2i, 2j), at offset (2i − 2, 2j − 2) from the impulse
    assert_close(out[0, 0, :3, :3], kernel[::2, ::2], ROUNDING, "impulse response")
    assert out[0, 0, 3].abs().max() < 1e-12 and out[0, 0, :, 3].abs().max() < 1e-12  # beyond the radius
    assert torch.equal(AntiAliasDownsample(3, 1.0)(image), image)


def test_pyramid_scales(vgg_loss):
    image = torch.zeros(1, 3, 128, 128)
    assert [d(image).shape[-1] for d in vgg_loss.downsamplers] == [128, 64, 32, 16]


def test_vgg_slices_end_at_relu_n_1(vgg_file, vgg_loss):
    state = torch.load(vgg_file)
    x = torch.rand(1, 3, 32, 32) * 2.4 - 1.2  # beyond [-1, 1]: clamped first
    features = vgg_loss.features(x)
    assert [tuple(f.shape[1:]) for f in features] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (512, 2, 2),
    ]

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (x.clamp(-1, 1) / 2 + 0.5 - mean) / std

    def conv(h, index):
        return F.relu(F.conv2d(h, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))

    relu1_1 = conv(h, 0)
    relu2_1 = conv(F.max_pool2d(conv(relu1_1, 2), 2), 5)
    relu3_1 = conv(F.max_pool2d(conv(relu2_1, 7), 2), 10)
    for got, expected, name in zip(features, (relu1_1, relu2_1, relu3_1), ("relu1_1", "relu2_1", "relu3_1")):
        assert_close(got, expected, ROUNDING, name)


def test_vgg_loss_sums_ten_times_the_mean_differences(vgg_loss):
    recon, target = torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1
    expected = 0.0
    for down in vgg_loss.downsamplers:
        for a, b in zip(vgg_loss.features(down(recon)), vgg_loss.features(down(target))):
            expected += 10 * (a - b).abs().mean().item()
    assert vgg_loss(recon, target).item() == pytest.approx(expected, rel=1e-5)
    assert vgg_loss(target, target).item() == 0.0


def test_vgg_loss_has_no_gradient_through_the_target(vgg_loss):
    recon = (torch.rand(1, 3, 128, 128) * 2 - 1).requires_grad_()
    target = (torch.rand(1, 3, 128, 128) * 2 - 1).requires_grad_()
    vgg_loss(recon, target).backward()
    assert recon.grad.abs().sum() > 0 and target.grad is None


def test_missing_vgg_file_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match=r"vgg19-dcbb9e9d\.pth.*download\.pytorch\.org") as info:
        load_vgg19(tmp_path / "absent.pth")
    assert "\n" not in str(info.value)


def fake_vgg(recon, target):
    return (recon - target).abs().mean()


def test_stage1_losses_split_rgb_and_depth():
    target = torch.zeros(1, 4, 8, 8)
    recon = torch.zeros(1, 4, 8, 8)
    recon[:, :3] = 0.5  # RGB off by 0.5, depth exact
    losses = stage1_losses(fake_vgg, recon, target)
    assert list(losses) == ["l1_loss", "smooth_loss", "structure_preserve_loss", "vgg_loss"]
    assert losses["l1_loss"].item() == 0.0 and losses["vgg_loss"].item() == pytest.approx(0.5)


def test_distillation_losses():
    teacher = torch.ones(1, 4, 8, 8)
    student = {"out_inpaint": torch.zeros(1, 3, 8, 8), "out_warp": torch.full((1, 3, 8, 8), 2.0)}
    student["mask"] = torch.full((1, 1, 8, 8), 0.5)
    losses = distillation_losses(fake_vgg, teacher, student)
    assert list(losses) == ["l1_loss", "vgg_loss", "l1_loss_warp", "vgg_loss_warp"]
    assert losses["l1_loss"].item() == pytest.approx(200.0)
    assert losses["vgg_loss"].item() == pytest.approx(1.0)
    assert losses["l1_loss_warp"].item() == pytest.approx(200 * 0.5)  # |2·0.5 − 1·0.5|
    assert losses["vgg_loss_warp"].item() == pytest.approx(0.5)


def test_the_demo_recipes_loss_weights():
    """vfa.train's Losses with --lambda_loss_vgg and --lambda_loss_rgb_l1 (ours): the perceptual terms
    scaled or left out, an L1 term on stage 1's RGB; the defaults are the original's terms."""
    from vfa.train import Losses

    target = torch.zeros(1, 4, 8, 8)
    recon = torch.zeros(1, 4, 8, 8)
    recon[:, :3] = 0.5
    assert Losses(fake_vgg).stage1(recon, target).keys() == stage1_losses(fake_vgg, recon, target).keys()
    halved = Losses(fake_vgg, lambda_vgg=0.5).stage1(recon, target)
    assert halved["vgg_loss"].item() == pytest.approx(0.25)
    without = Losses(None, lambda_vgg=0.0, lambda_rgb_l1=200.0).stage1(recon, target)
    assert list(without) == ["l1_loss", "smooth_loss", "structure_preserve_loss", "rgb_l1_loss"]
    assert without["rgb_l1_loss"].item() == pytest.approx(100.0)  # 200 · |0.5 − 0|
    teacher = torch.ones(1, 4, 8, 8)
    student = {"out_inpaint": torch.zeros(1, 3, 8, 8), "out_warp": torch.full((1, 3, 8, 8), 2.0)}
    student["mask"] = torch.full((1, 1, 8, 8), 0.5)
    distilled = Losses(fake_vgg, lambda_vgg=0.0).distillation(teacher, student)
    assert list(distilled) == ["l1_loss", "l1_loss_warp"] and distilled["l1_loss"].item() == pytest.approx(200.0)
