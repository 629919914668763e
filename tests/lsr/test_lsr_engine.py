"""lsr.engine.EvalMetrics: the eval metrics of `--run_mode=eval`, computed as the original does
(images clipped to [-1, 1] before mapping to [0, 255])."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from lsr import engine


def _summary_values(metrics: engine.EvalMetrics) -> dict:
    return {key: float(np.mean(values)) for key, values in metrics.values.items()}


@pytest.fixture
def images():
    """A real image in range and a generated one that overshoots [-1, 1] on both sides."""
    rng = np.random.default_rng(0)
    real = rng.uniform(-1.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
    fake = (real + rng.normal(0.0, 0.8, real.shape)).astype(np.float32)
    fake[:, :8] = 1.7  # well above 1: a saturated band
    fake[:, -8:] = -2.5
    assert (fake > 1).mean() > 0.2 and (fake < -1).mean() > 0.2
    return real, fake


def test_eval_metrics_clip_images_before_denormalising(images):
    real, fake = images
    losses = {"loss_g": np.array([0.5, 1.5], np.float32)}
    raw, clipped = engine.EvalMetrics(), engine.EvalMetrics()
    raw.update(real, fake, losses)
    clipped.update(real, np.clip(fake, -1.0, 1.0), losses)
    got, want = _summary_values(raw), _summary_values(clipped)
    assert got.keys() == want.keys() == {"mean_absolute_error", "mean_psnr", "mean_ssim", "losses/loss_g"}
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key

    # The values themselves: L1 and PSNR of the clipped images on [0, 255].
    r, f = ((np.clip(x, -1, 1) + 1) * 127.5 for x in (real, fake))
    assert got["mean_absolute_error"] == pytest.approx(np.abs(r - f).mean(), rel=1e-5)
    mse = ((r - f) ** 2).mean(axis=(1, 2, 3))
    assert got["mean_psnr"] == pytest.approx(np.mean(10 * np.log10(255.0**2 / mse)), rel=1e-5)
    # Unclipped, the overshoot would count: the L1 would be larger.
    unclipped_l1 = np.abs((real + 1) * 127.5 - (fake + 1) * 127.5).mean()
    assert unclipped_l1 > got["mean_absolute_error"] + 10


def test_eval_metrics_clip_the_ground_truth_too(images):
    real, fake = images
    out_of_range = real.copy()
    out_of_range[:, :4] = 3.0
    a, b = engine.EvalMetrics(), engine.EvalMetrics()
    a.update(out_of_range, fake, {})
    b.update(np.clip(out_of_range, -1.0, 1.0), fake, {})
    assert _summary_values(a) == pytest.approx(_summary_values(b), rel=1e-6)


def test_denormalize_maps_the_model_range_to_0_255():
    x = tf.constant([-3.0, -1.0, 0.0, 1.0, 4.0])
    np.testing.assert_allclose(engine.denormalize(x).numpy(), [0.0, 0.0, 127.5, 255.0, 255.0])
