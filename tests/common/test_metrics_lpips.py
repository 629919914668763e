"""common.metrics.lpips: the distance's arithmetic by hand, and its properties with random weights built
from the key names of the two official files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numerics import ROUNDING, assert_close

from common.errors import InputError
from common.metrics import WEIGHTS_ENV
from common.metrics import lpips as metric


def test_layer_distance_by_hand():
    """Two pixels, two channels: (3, 4) vs (0, 1) normalise to (.6, .8) vs (0, 1), squared difference
    (.36, .04), weighted by (1, 2): 0.44; the second pixel is equal: 0; the image average is 0.22."""
    fx = torch.tensor([[3.0, 1.0], [4.0, 0.0]])[None, :, None, :]  # [1, C=2, H=1, W=2]
    fy = torch.tensor([[0.0, 1.0], [1.0, 0.0]])[None, :, None, :]
    head = torch.nn.Conv2d(2, 1, kernel_size=1, bias=False)
    head.weight.data = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    distance = metric.layer_distance(fx, fy, head)
    assert distance.shape == (1, 1, 1, 1)
    assert_close(distance.item(), 0.22, ROUNDING, "layer distance")


def test_scaling_layer_constants():
    scaled = metric.ScalingLayer()(torch.zeros(1, 3, 1, 1)).flatten()
    assert_close(scaled, [0.030 / 0.458, 0.088 / 0.448, 0.188 / 0.450], ROUNDING, "scaled zero image")


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """vgg.pth and vgg16-397923af.pth with random values under the official key names (He-scaled convs,
    positive heads as the trained ones are, plus torchvision's classifier that LPIPS ignores)."""
    folder = tmp_path_factory.mktemp("lpips_weights")
    generator = torch.Generator().manual_seed(0)
    vgg16, in_ch, index = {}, 3, 0
    for item in metric._VGG16_LAYOUT:
        if item == "M":
            index += 1
            continue
        std = math.sqrt(2 / (9 * in_ch))
        vgg16[f"features.{index}.weight"] = torch.randn(item, in_ch, 3, 3, generator=generator) * std
        vgg16[f"features.{index}.bias"] = torch.randn(item, generator=generator) * 0.01
        in_ch, index = item, index + 2
    vgg16["classifier.0.weight"] = torch.zeros(8, 8)
    lins = {
        f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
        for i, c in enumerate(metric.FEATURE_CHANNELS)
    }
    torch.save(vgg16, folder / metric.VGG16_FILE)
    torch.save(lins, folder / metric.LIN_FILE)
    return folder


def test_distance_properties(weight_files, astronaut):
    paths = metric.find_lpips_weights(weight_files)
    assert paths == (weight_files / metric.LIN_FILE, weight_files / metric.VGG16_FILE)
    lpips = metric.LPIPS(*paths)
    assert torch.equal(getattr(lpips.network.net.slice3, "14").weight, torch.load(paths[1])["features.14.weight"])
    a, b = astronaut[:48, 200:248], astronaut[100:148, 200:248]
    assert lpips(a, a) == 0.0
    forward, backward = lpips(a, b), lpips(b, a)
    assert forward > 0
    assert_close(backward, forward, ROUNDING, "symmetry")
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    assert 0 < lpips(a, noisy) < forward  # a little noise is closer than another part of the photo


def test_missing_files_are_one_line_errors_naming_their_source(weight_files, tmp_path, monkeypatch):
    lin, vgg16 = weight_files / metric.LIN_FILE, weight_files / metric.VGG16_FILE
    with pytest.raises(InputError, match=r"missing/vgg\.pth: LPIPS lin weights not found; .*pip package lpips"):
        metric.LPIPS(tmp_path / "missing" / metric.LIN_FILE, vgg16)
    with pytest.raises(InputError, match=r"vgg16-397923af\.pth: VGG16 weights not found; .*download\.pytorch\.org"):
        metric.LPIPS(lin, tmp_path / metric.VGG16_FILE)
    with pytest.raises(InputError, match="not a torchvision VGG16 state dict: 26 missing: net.slice1.0.weight"):
        metric.LPIPS(lin, lin)
    assert metric.find_lpips_weights(tmp_path) is None
    monkeypatch.setenv(WEIGHTS_ENV, str(weight_files))
    assert metric.find_lpips_weights() == (lin, vgg16)
