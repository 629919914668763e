"""lsr.layers: the numerics the trained weights depend on."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from numerics import ROUNDING, assert_close

from lsr import layers


def test_scaled_conv_applies_gain_over_sqrt_fan_in_to_the_stored_kernel():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(1, 5, 5, 4)).astype(np.float32)
    conv = layers.Conv2DScaled(2, 3)
    conv.build(x.shape)
    assert conv.padding == "same" and conv.kernel.shape == (3, 3, 4, 2)
    conv.bias.assign([0.5, -1.0])
    kernel = conv.kernel.numpy()
    expected = tf.nn.conv2d(x, kernel * np.float32(np.sqrt(2) / np.sqrt(36)), 1, "SAME") + [0.5, -1]
    # The same product and convolution, possibly by other kernels: rounding only.
    assert_close(conv(x), expected, ROUNDING)
    rgb = layers.Conv2DScaled(3, 3, gain=1.0)
    rgb.build(x.shape)
    assert rgb.runtime_coeff == np.float32(1 / 6)  # 1/sqrt(36) rounded once: exact


def test_scaled_dense_matches_numpy():
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    dense = layers.DenseScaled(3, activation=tf.nn.relu)
    dense.build(x.shape)
    dense.bias.assign([0.1, 0.2, -5.0])
    expected = np.maximum(x @ (dense.kernel.numpy() * np.sqrt(2) / 2) + [0.1, 0.2, -5.0], 0)
    assert_close(dense(x), expected, ROUNDING)
    assert dense(x).numpy()[:, 2].max() == 0  # ReLU of about -5: exactly 0


def test_blur_downscale_is_a_normalised_121_filter_with_stride_2_and_zero_padding():
    # Taps k/16 on ones: every partial sum is a short dyadic fraction, exact in any order.
    odd = layers.downscale2d(np.ones((1, 7, 7, 2), np.float32), 2, "blur").numpy()
    assert odd.shape == (1, 4, 4, 2)
    # 'SAME' pads 7 px by one zero on each side: border outputs lose a 1/4 tap per axis.
    assert odd[0, 1, 1, 0] == 1.0 and odd[0, 0, 1, 1] == 0.75 and odd[0, 3, 3, 0] == 0.5625
    even = layers.downscale2d(np.ones((1, 8, 8, 1), np.float32), 2, "blur").numpy()
    # ... but 8 px only after the last pixel.
    assert even.shape == (1, 4, 4, 1)
    assert even[0, 0, 0, 0] == 1.0 and even[0, 3, 0, 0] == 0.75


def test_box_downscale_halves_step_by_step_and_floors_odd_sizes():
    # Means of small integers over 2x2 windows are multiples of 1/16: exact in any order.
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(1, 8, 8, 2)
    np.testing.assert_array_equal(layers.downscale2d(x, 4).numpy(), x.reshape(1, 2, 4, 2, 4, 2).mean(axis=(2, 4)))
    assert layers.downscale2d(np.zeros((1, 7, 7, 1), np.float32), 2).shape == (1, 3, 3, 1)
    assert layers.downscale2d(np.zeros((1, 9, 9, 1), np.float32), 3).shape == (1, 3, 3, 1)


def test_parameter_free_instance_norm_uses_tfa_epsilon():
    x = np.random.RandomState(1).normal(2, 3, (2, 6, 6, 3)).astype(np.float32)
    norm = layers.norm_factory("instance_norm", param_free=True)()
    y = norm(x).numpy()
    x64 = x.astype(np.float64)  # the reference without rounding of its own
    mean, var = x64.mean(axis=(1, 2), keepdims=True), x64.var(axis=(1, 2), keepdims=True)
    assert_close(y, (x64 - mean) / np.sqrt(var + 1e-3), ROUNDING)
    assert not norm.weights
    assert layers.norm_factory("none") is None
    batch_norm = layers.norm_factory("param_free_batch_norm")()
    batch_norm.build(x.shape)
    assert not batch_norm.trainable_weights and len(batch_norm.non_trainable_weights) == 2


def test_layer_norm_divides_by_std_plus_epsilon():
    x = np.random.RandomState(2).normal(0, 2, (2, 4, 4, 3)).astype(np.float32)
    norm = layers.norm_factory("layer_norm")()
    y = norm(x).numpy()
    assert [w.shape for w in norm.weights] == [(1,), (1,)]
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(1, 2, 3), keepdims=True)
    std = x64.std(axis=(1, 2, 3), keepdims=True)
    assert_close(y, (x64 - mean) / (std + 1e-3), ROUNDING)


def test_style_modulation_scales_and_shifts_the_normalised_features():
    x = np.random.RandomState(3).normal(size=(2, 4, 4, 3)).astype(np.float32)
    z = np.random.RandomState(4).normal(size=(2, 5)).astype(np.float32)
    dense = lambda units, name: layers.DenseScaled(units, name=name)  # noqa: E731
    mod = layers.StyleModulation(dense, layers.norm_factory("instance_norm", param_free=True))
    y = mod(x, z).numpy()
    gb = mod.dense(z).numpy().astype(np.float64).reshape(2, 2, 1, 1, 3)
    x64 = x.astype(np.float64)
    normed = (x64 - x64.mean((1, 2), keepdims=True)) / np.sqrt(x64.var((1, 2), keepdims=True) + 1e-3)
    assert_close(y, normed * (1 + gb[:, 0]) + gb[:, 1], ROUNDING)


def test_unsupported_layer_types_fail_clearly():
    with pytest.raises(ValueError, match="spectral_norm"):
        layers.conv_layer("spectral_norm", 4, 3)
    with pytest.raises(ValueError, match="pixel_norm"):
        layers.norm_factory("pixel_norm")
