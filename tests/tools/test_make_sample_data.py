"""tools.make_sample_data builds a real, consistent sample: frames, landmarks, labels, video."""

import json

import numpy as np
import pytest

from common.errors import InputError
from common.image import read_image
from tools.make_sample_data import UPPER_LIDS, Motion, animate, main, make_sample, merge_coincident, warp


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    main(["--out", str(out), "--frames", "12"])
    return out


def test_layout_and_sizes(sample):
    meta = json.loads((sample / "meta.json").read_text())
    assert meta["frames"] == 12 and meta["size"] == 256
    for name in ("source.png", "source_2.png", "driving/00000.png", "driving/00011.png"):
        assert read_image(sample / name).shape == (256, 256, 3)
    assert len(list((sample / "driving").glob("*.png"))) == 12
    assert np.load(sample / "landmarks" / "driving" / "00011.npy").shape == (68, 2)
    labels = read_image(sample / "parsing" / "source.png")[..., 0]
    assert set(np.unique(labels)) >= {0, 1, 2, 4, 5, 6, 7, 11, 12}  # bg, skin, nose, eyes, brows, lips


def test_second_identity_clip(sample):
    """driving_2 is source_2 moving: its landmarks are source_2's at the motion's frame 6 (half of 12)."""
    from common.sample import second_identity_frames

    frames = second_identity_frames(sample)
    assert len(frames) == 12 and all(f.landmarks.is_file() and f.parsing.is_file() for f in frames)
    hopper = read_image(sample / "source_2.png").astype(float)
    first = read_image(frames[0].image).astype(float)
    assert first.shape == hopper.shape and 0 < np.abs(first - hopper).mean() < 40  # same face, moved
    still = np.load(sample / "landmarks" / "source_2.npy")
    moved = np.load(frames[6].landmarks)  # motion frame 0: the rest pose plus the phase-0 head shift
    assert np.abs(moved - still).max() < 0.1 * np.ptp(still[:, 0])


def test_video_matches_the_lossless_frames(sample):
    from common.video import read_video

    frames = read_video(sample / "driving.mp4")
    assert frames.shape == (12, 256, 256, 3)
    mse = np.mean((frames[5].astype(float) - read_image(sample / "driving" / "00005.png")) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35


def test_driving_landmarks_are_where_a_detector_finds_them(sample):
    from common.landmarks import LandmarkDetector

    detector = LandmarkDetector(backend="dlib")
    for t in (0, 4):
        known = np.load(sample / "landmarks" / "driving" / f"{t:05d}.npy")
        found = detector.detect(read_image(sample / "driving" / f"{t:05d}.png"))
        assert np.median(np.linalg.norm(found - known, axis=1)) < 4.0  # pixels at 256


def test_frames_move(sample):
    first = read_image(sample / "driving" / "00000.png").astype(float)
    later = read_image(sample / "driving" / "00003.png").astype(float)
    assert np.abs(first - later).mean() > 2.0


def test_animation_is_rigid_plus_local_expression():
    points = np.random.default_rng(0).uniform(0, 100, (80, 2))
    motion = Motion(frames=8, mouth_px=0.0, blink_frame=-100)
    moved = animate(points, 2, motion, points.mean(0), px=1.0)
    # without expression every pairwise distance scales by the same factor: a similarity
    d0 = np.linalg.norm(points[0] - points[1:], axis=1)
    d1 = np.linalg.norm(moved[0] - moved[1:], axis=1)
    assert np.allclose(d1 / d0, (d1 / d0)[0])
    still = animate(points, 0, Motion(frames=8, blink_frame=-100), points.mean(0), px=1.0)
    assert not np.allclose(still, points)  # frame 0 already carries scale/shift phase offsets


def test_coincident_targets_are_merged_and_distinct_ones_kept():
    src = np.array([[0.0, 0], [10, 0], [10.02, 0.01], [0, 10], [10, 10], [10, 10]])
    dst = src + [1.0, 2.0]
    merged_src, merged_dst = merge_coincident(src, dst, min_gap=0.1)
    assert len(merged_dst) == 4
    np.testing.assert_array_equal(merged_dst[1], [11.01, 2.005])  # mean of the close pair
    np.testing.assert_array_equal(merged_src[3], [10, 10])
    apart = src[:2], dst[:2]
    assert merge_coincident(*apart, min_gap=0.1)[1] is apart[1]


def test_warp_through_duplicated_control_points(astronaut):
    """A closed mouth from a detector: inner-lip targets exactly on each other."""
    rng = np.random.default_rng(0)
    src = rng.uniform(100, 400, (30, 2))
    dst = src + rng.normal(0, 3, src.shape)
    crop = (50.0, 50.0, 400.0)
    reference = warp(astronaut, src, dst, crop, 64)
    doubled = warp(astronaut, np.concatenate([src, src[:5]]), np.concatenate([dst, dst[:5]]), crop, 64)
    np.testing.assert_array_equal(doubled, reference)


def test_collinear_control_points_are_a_one_line_error(astronaut):
    line = np.stack([np.linspace(100, 400, 10), np.full(10, 200.0)], 1)
    with pytest.raises(InputError, match="no usable warp"):
        warp(astronaut, line, line + 1, (50.0, 50.0, 400.0), 32)


class ClosedFaceDetector:
    """dlib's landmarks with the mouth and both eyes closed, as other CPUs' dlib can return them:
    the inner lower lip on the inner upper lip, each upper lid on the lid below it."""

    def __init__(self):
        from common.landmarks import LandmarkDetector

        self.dlib = LandmarkDetector(backend="dlib")

    def detect(self, image):
        points = self.dlib.detect(image).copy()
        points[[67, 66, 65]] = points[[61, 62, 63]]
        for upper, lower in UPPER_LIDS.items():
            points[upper] = points[lower]
        return points


def test_a_sample_from_closed_mouths_and_eyes(tmp_path):
    meta = make_sample(tmp_path, size=64, motion=Motion(frames=4), detector=ClosedFaceDetector())
    assert meta["frames"] == 4
    frames = [read_image(tmp_path / "driving" / f"{t:05d}.png") for t in range(4)]
    assert all(frame.shape == (64, 64, 3) and frame.std() > 20 for frame in frames)
    assert read_image(tmp_path / "source_2.png").std() > 20
