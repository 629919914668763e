"""common.metrics.keypoints: dlib landmarks and AKD, by hand and on a real face moved by a known shift."""

from __future__ import annotations

import math

import numpy as np
from numerics import ROUNDING, assert_close

from common.landmarks import LandmarkDetector
from common.metrics import keypoints


def test_akd_by_hand():
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    b = np.array([[3.0, 4.0], [1.0, 1.0]])  # one point 5 px away, one in place
    assert_close(keypoints.akd(a, b), 2.5, ROUNDING, "akd")
    assert keypoints.akd(a, a) == 0.0
    assert math.isnan(keypoints.akd(a, None)) and math.isnan(keypoints.akd(None, b))


def test_shifted_face_moves_the_landmarks_by_the_shift(astronaut):
    face = astronaut[:224, 120:344]
    original = keypoints.detect_landmarks(face)
    shifted = keypoints.detect_landmarks(np.roll(face, 5, axis=1))
    assert original.shape == (68, 2) and shifted.shape == (68, 2)
    # dlib's points are whole pixels and a few move by one pixel more or less than the image
    assert abs(keypoints.akd(original, shifted) - 5) < 1
    assert np.abs(np.mean(shifted - original, axis=0) - [5, 0]).max() < 0.5


def test_no_face_is_none():
    assert keypoints.detect_landmarks(np.full((128, 128, 3), 128, dtype=np.uint8)) is None


def test_small_frames_are_upscaled_for_detection(astronaut):
    """The face at a quarter size (56 px): HOG alone finds no face that small; the upscaled detection
    gives the full-size points divided by 4, within the predictor's jitter at this size."""
    import cv2

    face = astronaut[:224, 120:344]
    small = cv2.resize(face, (56, 56), interpolation=cv2.INTER_AREA)
    assert LandmarkDetector(backend="dlib").detect_all(small) == []
    full, reduced = keypoints.detect_landmarks(face), keypoints.detect_landmarks(small)
    assert reduced is not None and keypoints.akd(reduced, full / 4) < 1.0
