"""Head pose and expression from 68 iBUG-300W landmarks.

Head pose: the rotation of a generic rigid 3-D face that projects onto six landmarks (nose tip, chin, outer
eye corners, mouth corners), found by OpenCV's `solvePnP` with a pinhole camera of focal length equal to
the image width and its principal point at the image centre, no lens distortion (the usual "head pose from
landmarks" recipe, e.g. OpenCV's PnP tutorial). Pose error, the mean absolute difference of yaw, pitch and
roll, compares driving and generated heads as papers do with a learned pose estimator (e.g. Hopenet); this
estimate needs no weights beyond dlib's landmarks.

Expression error: the inner-face landmarks (17..67: brows, nose, eyes, mouth) of one frame are aligned to
the other's by the best similarity transform (Procrustes: translation, rotation, uniform scale), and the
mean remaining point distance is divided by the reference's inter-ocular distance (outer eye corners, the
300-W normalisation), so head pose and face size do not count, only the shape of the expression.
"""

from __future__ import annotations

import numpy as np

from common.errors import InputError

# Generic face in camera axes (x right, y down, z away from the camera), arbitrary units, nose tip at 0:
# iBUG-68 index -> 3-D point. 36/48 are the eye and mouth corners on the image's left of a frontal face.
FACE_MODEL = {
    30: (0.0, 0.0, 0.0),  # nose tip
    8: (0.0, 330.0, 65.0),  # chin
    36: (-225.0, -170.0, 135.0),  # outer eye corners
    45: (225.0, -170.0, 135.0),
    48: (-150.0, 150.0, 125.0),  # mouth corners
    54: (150.0, 150.0, 125.0),
}
INNER_FACE = slice(17, 68)
OUTER_EYE_CORNERS = (36, 45)


def _landmarks(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise InputError(f"expected (68, 2) landmarks, got {points.shape}")
    return points


def _width_height(size: int | tuple[int, int]) -> tuple[float, float]:
    width, height = (size, size) if np.isscalar(size) else size
    return float(width), float(height)


def head_pose(landmarks: np.ndarray, size: int | tuple[int, int]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the head whose 68 landmarks are given, in an image of `size`
    (square side, or (width, height)). All 0 for the generic face seen frontally; roll is positive for a
    clockwise turn in the image, yaw for a turn about the image's vertical axis, pitch about its horizontal
    one. Rotation order: R = Rz(roll) Ry(yaw) Rx(pitch) maps the face model into camera axes."""
    import cv2

    points = _landmarks(landmarks)
    width, height = _width_height(size)
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]])
    model = np.array(list(FACE_MODEL.values()))
    image = points[list(FACE_MODEL)]
    # start from a frontal face at the distance its eye span implies, so the solver cannot settle on the
    # mirrored solution behind the camera
    model_span = FACE_MODEL[45][0] - FACE_MODEL[36][0]
    depth = width * model_span / max(float(np.linalg.norm(image[3] - image[2])), 1e-6)
    start = np.array([(image[0, 0] - width / 2) * depth / width, (image[0, 1] - height / 2) * depth / width, depth])
    ok, rvec, _ = cv2.solvePnP(
        model, image, camera, None, np.zeros(3), start, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        raise InputError("head pose: solvePnP found no solution for these landmarks")
    rotation, _ = cv2.Rodrigues(rvec)
    yaw = np.arctan2(-rotation[2, 0], np.hypot(rotation[2, 1], rotation[2, 2]))
    pitch = np.arctan2(rotation[2, 1], rotation[2, 2])
    roll = np.arctan2(rotation[1, 0], rotation[0, 0])
    return tuple(float(np.degrees(angle)) for angle in (yaw, pitch, roll))


def pose_error(landmarks_a: np.ndarray | None, landmarks_b: np.ndarray | None, size: int | tuple[int, int]) -> float:
    """Mean absolute difference of yaw, pitch and roll (degrees, wrapped to [0, 180]); NaN if either is None."""
    if landmarks_a is None or landmarks_b is None:
        return float("nan")
    difference = np.subtract(head_pose(landmarks_a, size), head_pose(landmarks_b, size))
    return float(np.mean(np.abs((difference + 180) % 360 - 180)))


def expression_error(reference: np.ndarray | None, landmarks: np.ndarray | None) -> float:
    """Mean distance of the inner-face points of `landmarks`, similarity-aligned onto `reference`, in units
    of the reference's inter-ocular distance; NaN if either is None."""
    if reference is None or landmarks is None:
        return float("nan")
    reference, landmarks = _landmarks(reference), _landmarks(landmarks)
    target, moving = reference[INNER_FACE], landmarks[INNER_FACE]
    target_centred = target - target.mean(0)
    moving_centred = moving - moving.mean(0)
    # Procrustes without reflection: rotation from the SVD of the cross-covariance, then the scale
    u, singular, vt = np.linalg.svd(moving_centred.T @ target_centred)
    sign = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, sign]) @ vt
    scale = (singular[0] + sign * singular[1]) / np.sum(moving_centred**2)
    aligned = scale * moving_centred @ rotation + target.mean(0)
    interocular = np.linalg.norm(reference[OUTER_EYE_CORNERS[0]] - reference[OUTER_EYE_CORNERS[1]])
    return float(np.mean(np.linalg.norm(aligned - target, axis=1)) / interocular)
