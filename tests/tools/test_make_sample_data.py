"""tools.make_sample_data builds a real, consistent sample: frames, landmarks, labels, video."""
import json

import numpy as np
import pytest

from common.image import read_image
from tools.make_sample_data import Motion, animate, main


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
