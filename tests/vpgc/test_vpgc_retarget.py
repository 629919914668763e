"""Cross-identity retargeting of landmark sequences (vpgc.retarget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from vpgc.retarget import STABLE, fit_similarity, mouth_opening, neutral_frame, retarget

RECORDED = np.load(Path(__file__).parent / "data" / "original_drawing.npz")
FACE = RECORDED["vpgc68/face/points"]  # dlib's landmarks of the astronaut photo
LOWER_LIP = [56, 57, 58, 65, 66, 67]


def similarity(points: np.ndarray, scale: float, degrees: float, shift) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + np.asarray(shift)


def talking(face: np.ndarray, frames: int = 6) -> np.ndarray:
    """A sequence: the mouth opens (lower lip and chin move down) while the head turns and moves."""
    sequence = []
    for t in range(frames):
        frame = face.copy()
        frame[LOWER_LIP, 1] += 6.0 * t
        frame[7:10, 1] += 2.0 * t
        sequence.append(similarity(frame - face.mean(0), 1 + 0.01 * t, 2.0 * t, face.mean(0) + [t, -0.5 * t]))
    return np.stack(sequence)


def test_a_driver_equal_to_the_subject_drives_itself():
    sequence = talking(FACE)
    assert_close(retarget(sequence, FACE, FACE), sequence, ROUNDING, "self-driven")
    assert_close(retarget(sequence, sequence[3], sequence[3]), sequence, ROUNDING, "self-driven, other neutral")


@pytest.mark.parametrize(
    "scale, degrees, shift", [(1.0, 0.0, (40.0, -25.0)), (0.5, 0.0, (0.0, 0.0)), (1.7, -20.0, (-90.0, 60.0))]
)
def test_a_similar_copy_of_the_subject_gives_the_subjects_sequence(scale, degrees, shift):
    sequence = talking(FACE)
    driver = similarity(sequence, scale, degrees, shift)
    neutral = similarity(FACE, scale, degrees, shift)
    assert_close(retarget(driver, neutral, FACE), sequence, ROUNDING, "copy-driven")


def test_mouth_opening_transfers_in_proportion_to_face_size():
    driver_neutral = FACE
    driver = FACE.copy()[None]
    driver[0, LOWER_LIP, 1] += 10.0  # opens the mouth; no stable point moves
    rng = np.random.default_rng(0)
    other = FACE + rng.normal(0, 2.0, FACE.shape)  # another face shape...
    subject = similarity(other - FACE.mean(0), 2.0, 0.0, (256.0, 256.0))  # ...twice as large, elsewhere
    result = retarget(driver, driver_neutral, subject)[0]
    ratio, angle, _ = fit_similarity(driver_neutral[list(STABLE)], subject[list(STABLE)])
    assert ratio == pytest.approx(2.0, rel=0.05) and abs(np.rad2deg(angle)) < 3
    moved = result - subject
    drop = similarity(np.array([0.0, 10.0]), ratio, np.rad2deg(angle), (0.0, 0.0))  # 10 px, into the subject's frame
    assert_close(moved[LOWER_LIP], np.tile(drop, (len(LOWER_LIP), 1)), ROUNDING, "lip drop")
    assert np.abs(np.delete(moved, LOWER_LIP, axis=0)).max() < 1e-9  # nothing else moves
    assert np.ptp(result[:, 0]) == pytest.approx(np.ptp(subject[:, 0]))  # the subject's own face width


def test_degenerate_point_sets_give_finite_results():
    rng = np.random.default_rng(1)
    coincident = np.full((68, 2), 100.0)
    collinear = np.stack([np.linspace(0, 50, 68), np.linspace(10, 60, 68)], axis=1)
    sequences = [np.stack([coincident, coincident + 1]), np.stack([collinear, collinear * 1.1]), FACE[None]]
    for driver in sequences:
        for neutral in (coincident, collinear, FACE):
            for subject in (coincident, collinear, FACE + rng.normal(0, 1, FACE.shape)):
                out = retarget(driver, neutral, subject)
                assert out.shape == driver.shape and np.isfinite(out).all()
    # a coincident driver neutral carries only translation: deltas added as they are
    out = retarget(coincident[None] + 5, coincident, FACE)
    assert_close(out[0], FACE + 5, ROUNDING, "translated")
    assert retarget(np.zeros((0, 68, 2)), FACE, FACE).shape == (0, 68, 2)


def test_fit_similarity_recovers_a_transform():
    scale, angle, shift = fit_similarity(FACE, similarity(FACE, 1.3, 25.0, (3.0, 4.0)))
    assert scale == pytest.approx(1.3) and np.rad2deg(angle) == pytest.approx(25.0)
    assert_close(
        similarity(FACE, scale, np.rad2deg(angle), shift), similarity(FACE, 1.3, 25.0, (3.0, 4.0)), ROUNDING, "fit"
    )


def test_neutral_frame_is_closed_mouthed_and_typical():
    sequence = talking(FACE, frames=8)
    assert neutral_frame(sequence) == 0  # the only closed mouth
    assert np.argmin(mouth_opening(sequence)) == 0
    opened = FACE.copy()
    opened[LOWER_LIP, 1] += 20.0
    frames = np.stack(
        [FACE + [30.0, 0.0], FACE + [1.0, 0.0], FACE + [2.0, 0.0], FACE + [3.0, 0.0], opened + [2.0, 0.0]]
    )
    assert neutral_frame(frames) == 2  # the median shape among the closed mouths (frame 4 is open)


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(InputError, match=r"driver: expected \[N, 68, 2\] landmarks, got shape \(68, 2\)"):
        retarget(FACE, FACE, FACE)
    with pytest.raises(InputError, match="subject_neutral: landmarks hold NaN"):
        retarget(FACE[None], FACE, np.full((68, 2), np.nan))
    with pytest.raises(InputError, match="empty sequence"):
        neutral_frame(np.zeros((0, 68, 2)))
