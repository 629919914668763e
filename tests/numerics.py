"""Float comparisons whose tolerance follows the magnitude of the compared data.

float32 results move in their last bits between CPUs and thread counts: the SIMD width, the
blocking of oneDNN / BLAS kernels and the split of a reduction over threads change the order in
which sums are accumulated. The rounding error of a sum is relative to the magnitude of its
terms, and so, after a few layers, to the magnitude of the tensor they produce: an element near 0
of a tensor whose values reach 20 carries an error of order 20 * 1e-7 * depth, not 0. A fixed
absolute tolerance is therefore too tight for large tensors and meaningless for small ones, and
an element-wise relative one fails on every near-zero element. Here a tolerance is a fraction
`rel` of the largest magnitude of the expected tensor, applied to every element.

Levels used across the suite (fractions of max |expected|):

* `ROUNDING`: one or a few float32 operations computed two ways (a sum in another order, a
  scaled copy, a batch against its items). Float32's epsilon is 1.2e-7; 1e-5 is ~100 ulps.
* `FORWARD`: whole networks against the original's recorded outputs, on any CPU or kernel
  path. Worst cases measured, as fractions of the tensor's largest magnitude: 6.1e-6 (FSRT
  render, ATEN_CPU_CAPABILITY=default and one thread), 6.3e-6 (LSR discriminator logits, a sum
  of features 20 times larger than itself, oneDNN off), 1.6e-6 (LSR segmentation logits on an
  AVX-512 machine). 5e-5 leaves an eightfold margin, while a 1% change of one weight tensor
  moves the outputs more than ten times further than that (each parity test checks that it
  then fails).
"""

from __future__ import annotations

import numpy as np

ROUNDING = 1e-5
FORWARD = 5e-5


def as_array(value) -> np.ndarray:
    """A float64 NumPy copy of an array, a torch tensor (any device, with grad) or a TF tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    return np.asarray(value, dtype=np.float64)


def mismatch(actual, expected, rel: float) -> str | None:
    """None when every element of `actual` is within `rel * max|expected|` of `expected`, else a
    one-line account of the worst element."""
    actual, expected = as_array(actual), as_array(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    if not np.isfinite(actual).all():
        return f"{np.count_nonzero(~np.isfinite(actual))} non-finite values"
    scale = float(np.abs(expected).max(initial=0.0))
    diff = np.abs(actual - expected)
    worst = float(diff.max(initial=0.0))
    if worst <= rel * scale:
        return None
    where = np.unravel_index(int(diff.argmax()), diff.shape)
    off = int(np.count_nonzero(diff > rel * scale))
    return (
        f"max |diff| {worst:.3g} at {tuple(map(int, where))} is {worst / max(scale, 1e-300):.3g} of "
        f"max |expected| {scale:.3g} (allowed {rel:g}); {off} of {diff.size} elements off"
    )


def assert_close(actual, expected, rel: float, name: str = "") -> None:
    """Assert `actual` equals `expected` to `rel` times the largest magnitude of `expected`."""
    problem = mismatch(actual, expected, rel)
    assert problem is None, f"{name + ': ' if name else ''}{problem}"
