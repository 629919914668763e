"""Identity preservation: dlib's 128-D face descriptor (the ResNet of dlib's face recognition example,
99.38% on LFW), the Euclidean distance of two descriptors (AED, as in FOMM's evaluation, which used a
re-identification network's features) and their cosine similarity (CSIM, as in the Few-Shot Talking Heads
paper, which used ArcFace descriptors instead of dlib's).
"""

from __future__ import annotations

import numpy as np

from common.errors import NoFaceError
from common.metrics.keypoints import upscaled

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold: descriptors of one person are closer than this


def descriptor(image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray | None:
    """dlib's 128-D descriptor of the main face of an HxWx3 uint8 RGB image, None without a face.

    `landmarks` (68, 2) skip the detection (e.g. those `keypoints.detect_landmarks` already found).
    Small frames are upscaled as for detection (`keypoints.upscaled`), so that dlib's 150-px face chip
    is cut from a bicubic image rather than a coarse one.
    """
    from common.landmarks import face_descriptor

    large, factor = upscaled(image)
    try:
        return face_descriptor(large, None if landmarks is None else np.asarray(landmarks) * factor)
    except NoFaceError:
        return None


def aed(descriptor_a: np.ndarray | None, descriptor_b: np.ndarray | None) -> float:
    """Euclidean distance of two descriptors; NaN if either is None."""
    if descriptor_a is None or descriptor_b is None:
        return float("nan")
    return float(np.linalg.norm(np.asarray(descriptor_a, np.float64) - np.asarray(descriptor_b, np.float64)))


def csim(descriptor_a: np.ndarray | None, descriptor_b: np.ndarray | None) -> float:
    """Cosine similarity of two descriptors in [-1, 1]; NaN if either is None."""
    if descriptor_a is None or descriptor_b is None:
        return float("nan")
    a, b = np.asarray(descriptor_a, np.float64), np.asarray(descriptor_b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
