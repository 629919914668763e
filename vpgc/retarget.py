"""Cross-identity driving: another person's landmark sequence moved onto the subject's face.

VPGC's models are person-specific: the landmark maps must have the subject's face shape and sit
where the subject's face sits in the crop. Driving a subject with someone else's landmarks (the
original's open issue #4) therefore needs retargeting, which the original does not provide.

`retarget(driver, driver_neutral, subject_neutral)` works with 2-D similarity transforms
(scale, rotation, translation; no reflection) fitted by least squares (the 2-D Umeyama/Procrustes
closed form) on the STABLE points, which a talking face does not move: the upper jaw line
(0-3, 13-16), the nose (27-35) and the eye corners (36, 39, 42, 45). For driver frame i:

1. pose   P_i: the similarity carrying the driver's neutral stable points onto frame i's;
2. expression e_i = P_i^-1(driver_i) - driver_neutral: the frame's shape change with its head
   motion undone, in the driver's neutral pose;
3. S: the similarity carrying driver_neutral's stable points onto subject_neutral's, with linear
   part L = s R (s, R: its scale and rotation);
4. result_i = Q_i(subject_neutral + L e_i), where Q_i = S P_i S^-1 is the driver's head motion
   expressed in the subject's frame (same rotation and relative scale, translation scaled by s).

So the subject keeps its own face shape and place in the crop; expressions and head motion are
those of the driver relative to its neutral frame, scaled by the ratio of face sizes. A driver
that is a similar copy of the subject (driver_i = T(subject_i) for one similarity T) gives the
subject's sequence back exactly (up to rounding), and a driver equal to the subject gives itself.

Degenerate point sets do not break it: stable points that all coincide have no scale or
rotation, so a fit from them is a pure translation (scale 1); a fit ONTO coincident points has
scale 0, and when that is a driver frame's pose (P_i not invertible) the frame's expression is
taken as zero. Collinear points are fine (the 2-D closed form needs no matrix inverse).

`neutral_frame(landmarks)` picks a driver's (or subject's) neutral frame, see its docstring.
"""

from __future__ import annotations

import numpy as np

from common.errors import InputError

STABLE = (0, 1, 2, 3, 13, 14, 15, 16, *range(27, 36), 36, 39, 42, 45)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper and lower inner lip, left to right
OUTER_EYE_CORNERS = (36, 45)
CLOSED_MARGIN = 0.05  # mouth openings within 5% of the eye distance of the smallest count as closed


def _as_shapes(points, what: str, batch: bool) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    expected = (68, 2) if not batch else (points.shape[0] if points.ndim == 3 else -1, 68, 2)
    if points.shape != expected:
        layout = "[N, 68, 2]" if batch else "[68, 2]"
        raise InputError(f"{what}: expected {layout} landmarks, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise InputError(f"{what}: landmarks hold NaN or infinite values")
    return points


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(scale, angle, translation) of the similarity x -> scale * R(angle) x + translation that
    carries the (K, 2) `source` points closest to `target` in least squares (no reflection).

    A source without spread (all points equal) gives scale 1 and angle 0.
    """
    source_mean, target_mean = source.mean(0), target.mean(0)
    a, b = source - source_mean, target - target_mean
    spread = float((a**2).sum())
    if spread <= 1e-12 * max(1.0, float(np.abs(source).max()) ** 2):
        return 1.0, 0.0, target_mean - source_mean
    dot = float((a * b).sum())
    cross = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum())
    angle = float(np.arctan2(cross, dot))
    scale = float(np.hypot(dot, cross)) / spread
    return scale, angle, target_mean - scale * _rotation(angle) @ source_mean


def _rotation(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _apply(linear: np.ndarray, translation: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ linear.T + translation


def retarget(driver, driver_neutral, subject_neutral) -> np.ndarray:
    """float64 [N, 68, 2]: the driver's per-frame expression and head motion relative to
    `driver_neutral`, carried onto `subject_neutral` (see the module docstring)."""
    driver = _as_shapes(driver, "driver", batch=True)
    driver_neutral = _as_shapes(driver_neutral, "driver_neutral", batch=False)
    subject_neutral = _as_shapes(subject_neutral, "subject_neutral", batch=False)
    stable = list(STABLE)
    s, angle, t = fit_similarity(driver_neutral[stable], subject_neutral[stable])
    to_subject = s * _rotation(angle)
    result = np.empty_like(driver)
    for i, frame in enumerate(driver):
        p, pose_angle, pose_shift = fit_similarity(driver_neutral[stable], frame[stable])
        pose = p * _rotation(pose_angle)
        if p > 0:
            # P_i^-1(frame) = pose^-1 (frame - shift); pose^-1 = R(-angle) / p
            expression = _apply(_rotation(-pose_angle) / p, np.zeros(2), frame - pose_shift) - driver_neutral
        else:
            expression = np.zeros_like(frame)
        shape = subject_neutral + expression @ to_subject.T
        # Q_i(y) = S P_i S^-1 y = pose (y - t) + t + s R shift  (2-D rotations commute)
        result[i] = _apply(pose, t + to_subject @ pose_shift, shape - t)
    return result


def mouth_opening(landmarks) -> np.ndarray:
    """[N] mean gap of the three inner-lip point pairs, in units of the outer-eye-corner distance
    (a frame with coincident eye corners is measured in pixels)."""
    landmarks = _as_shapes(landmarks, "landmarks", batch=True)
    gaps = np.mean([np.linalg.norm(landmarks[:, i] - landmarks[:, j], axis=-1) for i, j in INNER_LIP_PAIRS], axis=0)
    eyes = np.linalg.norm(landmarks[:, OUTER_EYE_CORNERS[0]] - landmarks[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return gaps / np.where(eyes > 0, eyes, 1.0)


def neutral_frame(landmarks) -> int:
    """Index of a neutral frame of a [N, 68, 2] sequence: among the frames whose mouth opening
    (`mouth_opening`) is within 0.05 eye distances of the smallest, the one closest (root mean
    square over the 68 points, in place: pose counts) to the sequence's per-point median shape;
    the first one on ties. A closed mouth in the typical pose and expression of the sequence."""
    landmarks = _as_shapes(landmarks, "landmarks", batch=True)
    if len(landmarks) == 0:
        raise InputError("landmarks: an empty sequence has no neutral frame")
    opening = mouth_opening(landmarks)
    closed = np.flatnonzero(opening <= opening.min() + CLOSED_MARGIN)
    median = np.median(landmarks, axis=0)
    distance = np.sqrt(((landmarks[closed] - median) ** 2).sum(-1).mean(-1))
    return int(closed[np.argmin(distance)])
