"""common.metrics.pose on landmarks made by projecting the generic face at known angles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from common.metrics import pose

SIZE = 256


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(roll) Ry(yaw) Rx(pitch), angles in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def projected_face(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """68 landmarks: the generic model's six points seen by the metric's camera at 2000 units, the others
    fixed random points of the face area (only the expression error reads them)."""
    points = np.random.default_rng(0).uniform(90, 166, (68, 2))
    model = np.array(list(pose.FACE_MODEL.values())) @ rotation(yaw, pitch, roll).T + [0, 0, 2000]
    points[list(pose.FACE_MODEL)] = model[:, :2] / model[:, 2:] * SIZE + SIZE / 2
    return points


def rotated_in_plane(points: np.ndarray, degrees: float) -> np.ndarray:
    """Turned clockwise on screen (y points down) about the points' centre."""
    angle = np.radians(degrees)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(0)
    return (points - centre) @ turn.T + centre


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (20.0, -10.0, 5.0), (-30.0, 15.0, -12.0)])
def test_head_pose_recovers_the_projected_angles(angles):
    error = np.abs(np.subtract(pose.head_pose(projected_face(*angles), SIZE), angles))
    assert error.max() < 1e-3, error  # exact projections: only the solver's convergence is left


def test_in_plane_rotation_changes_roll_only():
    face = projected_face(yaw=10.0)
    turned = rotated_in_plane(face, 10.0)
    yaw, pitch, roll = np.subtract(pose.head_pose(turned, SIZE), pose.head_pose(face, SIZE))
    assert abs(roll - 10) < 0.5 and abs(yaw) < 1 and abs(pitch) < 1
    assert 10 / 3 - 0.5 < pose.pose_error(face, turned, SIZE) < 10 / 3 + 0.5
    assert pose.expression_error(face, turned) < 1e-9  # a rotation is a similarity: nothing left


def test_identical_landmarks_score_zero():
    face = projected_face(yaw=-15.0, pitch=5.0)
    assert pose.pose_error(face, face, SIZE) == 0.0
    assert pose.expression_error(face, face) < 1e-12


def test_expression_error_ignores_similarity_and_grows_with_the_change():
    face = projected_face()
    mouth = slice(48, 68)

    def opened(by: float) -> np.ndarray:
        points = face.copy()
        points[mouth, 1] += np.linspace(-by, by, 20)
        return points

    small, large = pose.expression_error(face, opened(2)), pose.expression_error(face, opened(6))
    assert 0 < small < large
    moved = 1.7 * rotated_in_plane(opened(6), 25.0) + [30, -12]  # another size, angle and place
    assert_close(pose.expression_error(face, moved), large, ROUNDING, "similarity-invariant")
    # in units of the reference's inter-ocular distance: scaling both sets changes nothing
    assert_close(pose.expression_error(3 * face, 3 * opened(6)), large, ROUNDING, "normalised")


def test_missing_faces_and_bad_shapes():
    face = projected_face()
    assert math.isnan(pose.pose_error(None, face, SIZE)) and math.isnan(pose.expression_error(face, None))
    with pytest.raises(InputError, match=r"expected \(68, 2\) landmarks"):
        pose.head_pose(face[:5], SIZE)
