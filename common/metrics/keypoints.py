"""Average keypoint distance (AKD): mean Euclidean distance between corresponding facial landmarks.

The protocol of FOMM's evaluation (Siarohin et al. 2019, there with FAN landmarks): landmarks of the generated
frame and of the ground truth come from one detector, here dlib's 68-point iBUG-300W predictor behind its HOG
face detector (`common.landmarks`), and AKD is in pixels of the compared frames. Frames smaller than
DETECTION_SIDE are upscaled (bicubic) before detection and the points scaled back: HOG finds no face of
about 30 px (a 64-px demo frame) and the predictor places points coarsely on one.
"""

from __future__ import annotations

import functools

import numpy as np

from common.errors import NoFaceError

DETECTION_SIDE = 256  # the protocol's frame size; smaller frames are upscaled to it for detection


def upscaled(image: np.ndarray, side: int = DETECTION_SIDE) -> tuple[np.ndarray, float]:
    """(image resized bicubically so that its shorter side is at least `side`, the scale factor)."""
    factor = side / min(image.shape[:2])
    if factor <= 1:
        return image, 1.0
    import cv2

    size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), factor


@functools.cache
def _detector():
    from common.landmarks import LandmarkDetector

    return LandmarkDetector(backend="dlib")


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(68, 2) float32 (x, y) landmarks of the main face of an HxWx3 uint8 RGB image, None without a face."""
    large, factor = upscaled(image)
    try:
        return (_detector().detect(large) / factor).astype(np.float32)
    except NoFaceError:
        return None


def akd(landmarks_a: np.ndarray | None, landmarks_b: np.ndarray | None) -> float:
    """Mean distance between corresponding points of two (N, 2) landmark sets; NaN if either is None."""
    if landmarks_a is None or landmarks_b is None:
        return float("nan")
    a, b = np.asarray(landmarks_a, dtype=np.float64), np.asarray(landmarks_b, dtype=np.float64)
    return float(np.mean(np.linalg.norm(a - b, axis=1)))
