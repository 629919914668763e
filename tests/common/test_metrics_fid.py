"""common.metrics.fid: the Frechet distance in closed-form cases, and the Inception network's key names,
strict loading and feature shape with random weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numerics import FORWARD, ROUNDING, assert_close

from common.errors import InputError
from common.metrics import fid


def test_frechet_distance_closed_forms():
    # 1-D: (0 - 3)^2 + 4 + 1 - 2 sqrt(4 * 1) = 10
    assert_close(fid.frechet_distance(0.0, 4.0, 3.0, 1.0), 10.0, ROUNDING, "1-D")
    # diagonal covariances: per axis (mean difference)^2 + (sqrt(var1) - sqrt(var2))^2
    mu1, mu2 = np.array([1.0, 2.0]), np.array([1.0, 5.0])
    var1, var2 = np.array([9.0, 1.0]), np.array([1.0, 4.0])
    expected = np.sum((mu1 - mu2) ** 2 + (np.sqrt(var1) - np.sqrt(var2)) ** 2)  # 9 + 4 + 1 = 14
    assert_close(fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)), expected, ROUNDING, "diagonal")


def test_fid_of_a_set_with_itself_and_with_a_shifted_copy():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16))  # correlated features
    assert abs(fid.fid_from_features(features, features)) < 1e-8 * np.trace(np.cov(features, rowvar=False))
    shift = rng.normal(size=16)
    # same covariance, means apart by `shift`: only |shift|^2 is left
    assert_close(fid.fid_from_features(features, features + shift), shift @ shift, 1e-6, "shifted copy")


def test_gaussian_sets_with_identity_covariance_and_a_mean_shift():
    """Samples of N(0, I) and N(d e1, I) in 4 dimensions: FID ~ d^2 = 9, up to the sampling error of the
    covariances (of order dims / N)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 4))
    b = rng.normal(size=(20000, 4)) + [3.0, 0, 0, 0]
    assert abs(fid.fid_from_features(a, b) - 9.0) < 0.1


def test_singular_covariances_and_bad_shapes():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 32)), rng.normal(size=(5, 32))  # fewer samples than dimensions
    value = fid.fid_from_features(a, b)
    assert math.isfinite(value) and value > 0
    with pytest.raises(InputError, match="N >= 2"):
        fid.fid_from_features(a[:1], b)
    with pytest.raises(InputError, match="different sizes"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_network_has_torchvisions_inception_names_and_shapes():
    """pytorch-fid's file holds torchvision's Inception-v3 names: 94 conv + batch-norm units (5 stem convs,
    7 per InceptionA, 4 in B, 10 per C, 6 in D, 9 per E) and the fc layer, which is not loaded."""
    state = fid.FIDInceptionV3().state_dict()
    assert len([key for key in state if key.endswith(".conv.weight")]) == 5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9
    assert len(state) == 94 * 6  # conv weight, bn weight, bias, running mean, running var, batch count
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7a.branch7x7x3_4.conv.weight"].shape == (192, 192, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    """Random weights under the network's names (He-scaled convs, unit-ish batch norms), with pytorch-fid's
    1008-way classifier and without the batch counters, as an older torch saved them."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, value in fid.FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("conv.weight"):
            value = torch.randn(value.shape, generator=generator) * math.sqrt(2 / value[0].numel())
        elif key.endswith(("running_var", "bn.weight")):
            value = 1 + 0.1 * torch.rand(value.shape, generator=generator)
        else:
            value = 0.1 * torch.randn(value.shape, generator=generator)
        state[key] = value
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path_factory.mktemp("fid") / fid.FID_FILE
    torch.save(state, path)
    return path


def test_features_with_random_weights(weight_file, astronaut):
    inception = fid.InceptionFID(weight_file, batch_size=2)
    loaded = torch.load(weight_file)["Mixed_6b.branch7x7_2.conv.weight"]
    assert torch.equal(inception.network.Mixed_6b.branch7x7_2.conv.weight, loaded)
    images = [astronaut[:128, 192:320], astronaut[::4, ::4]]  # sizes may differ
    features = inception.features(images)
    assert features.shape == (2, fid.FEATURES) and features.dtype == np.float64
    assert np.isfinite(features).all() and features.std() > 0
    assert_close(inception.features(images[1:]), features[1:], FORWARD, "a batch against its item")


def test_missing_and_mismatched_weight_files(weight_file, tmp_path):
    with pytest.raises(InputError, match=rf"{fid.FID_FILE}: FID Inception weights not found; .*releases/download"):
        fid.InceptionFID(tmp_path / fid.FID_FILE)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="partial.pth: does not match FIDInceptionV3: 469 missing"):
        fid.InceptionFID(tmp_path / "partial.pth")
    assert fid.find_fid_weights(tmp_path) is None and fid.find_fid_weights(weight_file.parent) == weight_file
