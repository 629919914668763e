"""The suite's float comparison: a tolerance that is a fraction of the expected tensor's magnitude."""

import numpy as np
import pytest
from numerics import ROUNDING, assert_close, mismatch


def test_error_near_zero_is_judged_against_the_tensor_magnitude():
    expected = np.array([20.0, -3.0, 1e-4], np.float32)
    actual = expected + np.float32(3e-5)  # ~1.5e-6 of the range, on every element
    assert mismatch(actual, expected, ROUNDING) is None
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose, actual, expected, 1e-5, 1e-5)


def test_a_deviation_above_the_fraction_is_reported_with_its_place():
    expected = np.zeros((2, 3))
    expected[0, 0] = 10.0
    actual = expected.copy()
    actual[1, 2] = 2e-3  # 2e-4 of the magnitude
    problem = mismatch(actual, expected, ROUNDING)
    assert "at (1, 2)" in problem and "1 of 6 elements" in problem
    with pytest.raises(AssertionError, match="logits: max"):
        assert_close(actual, expected, ROUNDING, "logits")


def test_shape_and_non_finite_values_fail():
    assert "shape" in mismatch(np.zeros(3), np.zeros((3, 1)), ROUNDING)
    assert "non-finite" in mismatch(np.array([1.0, np.nan]), np.ones(2), ROUNDING)
    assert mismatch(np.zeros(4), np.zeros(4), 0.0) is None


def test_torch_tensors_with_grad():
    import torch

    value = torch.ones(3, requires_grad=True) * 2
    assert_close(value, np.full(3, 2.0), ROUNDING)
