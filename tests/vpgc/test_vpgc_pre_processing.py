"""vpgc.pre_processing on a short real video: the repository sample's astronaut photo animated by
tools.make_sample_data's warp (mouth, blink, head motion; static background), 160x160 frames,
one frame without a face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import InputError
from common.landmarks import LandmarkDetector
from common.video import write_video
from tools.make_sample_data import Motion, anchor_ring, animate, warp
from vpgc.data import LandmarkGroups, list_pairs, read_landmarks
from vpgc.pre_processing import CropBox, crop_box, crop_frame, crop_video, fill_missing, held_out, main, to_crop

FACE = np.load(Path(__file__).parent / "data" / "original_drawing.npz")["vpgc68/face/points"]  # dlib, astronaut
SIDE, FACELESS = 160, 3


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector("dlib", upsample=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """9 frames: 8 animated ones with a uniform grey frame (no face) put in at index 3."""
    from skimage import data

    crop = (60.0, 0.0, 320.0)
    points = np.concatenate([FACE, anchor_ring(FACE, crop)])
    keep = [i for i in range(len(points)) if i not in range(60, 68)]  # coincident inner lips left out
    motion = Motion(frames=8, blink_frame=5, blink_len=2)
    photo, centre = data.astronaut(), FACE.mean(0)
    frames = [warp(photo, points[keep], animate(points, t, motion, centre, 1.0)[keep], crop, SIDE) for t in range(8)]
    frames.insert(FACELESS, np.full_like(frames[0], 128))
    path = tmp_path_factory.mktemp("video") / "portrait.mp4"
    write_video(path, frames, fps=25, crf=12)
    return path, np.stack(frames)


def test_a_video_becomes_the_original_layout(clip, detector, tmp_path):
    video, _ = clip
    out = tmp_path / "Subject"
    summary = crop_video(video, out, size=64, test_frames=2, detector=detector)
    pairs = {split: list_pairs(out, split) for split in ("train", "test")}
    assert [p.stem for p, _ in pairs["train"]] == [f"{i:05d}" for i in range(7)]
    assert [p.stem for p, _ in pairs["test"]] == ["00007", "00008"]
    assert summary["missing_faces"] == [FACELESS] and summary["train"] == 7 and summary["test"] == 2
    assert json.loads((out / "preprocess.json").read_text()) == summary
    box = CropBox(**summary["crop"])
    landmarks = np.stack([read_landmarks(path) for split in pairs.values() for _, path in split])
    assert landmarks.min() > 0 and landmarks.max() < 64  # the face is inside the crop
    # landmarks of the faceless frame are the mean of its neighbours'; the others are the detections
    assert np.allclose(landmarks[FACELESS], (landmarks[FACELESS - 1] + landmarks[FACELESS + 1]) / 2)
    from common.video import iter_frames

    first = next(iter(iter_frames(video)))
    assert np.allclose(landmarks[0], to_crop(detector.detect(first), box, 64))
    maps, images = LandmarkGroups(out, "train")[0]
    assert maps.shape == (4, 7, 64, 64) and images.shape == (4, 3, 64, 64)
    assert not list(tmp_path.glob(".Subject*"))  # no staging folder left


def test_the_crop_is_the_median_face_box_times_ratio():
    faces = np.stack([FACE + [dx, 0.0] for dx in (-10.0, 0.0, 2.0)])
    lo, hi = FACE.min(0), FACE.max(0)
    size = float(max(hi - lo))
    box = crop_box(faces, (512, 512), ratio=1.5)
    centre = (lo + hi) / 2  # median over the three frames: the middle one
    assert box == CropBox(
        round(centre[0] - round(1.5 * size) / 2), round(centre[1] - round(1.5 * size) / 2), round(1.5 * size)
    )
    lifted = crop_box(faces, (512, 512), ratio=1.5, lift=0.1)
    assert lifted.y0 == round(centre[1] - 0.1 * size - lifted.side / 2)
    assert crop_box(faces - [200.0, 0.0], (512, 512), 1.5).x0 == 0  # shifted inside the frame
    wide = crop_box(faces, (300, 512), ratio=4.0)  # taller than the frame: centred vertically, padded
    assert wide.side > 300 and wide.y0 == round((300 - wide.side) / 2)


def test_crop_frame_cuts_pads_and_resizes():
    frame = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    np.testing.assert_array_equal(crop_frame(frame, CropBox(5, 3, 30), 30), frame[3:33, 5:35])
    padded = crop_frame(frame, CropBox(-4, 30, 20), 20)
    np.testing.assert_array_equal(padded[:10, 4:], frame[30:40, :16])
    np.testing.assert_array_equal(padded[:10, :4], np.repeat(frame[30:40, :1], 4, axis=1))  # left border
    np.testing.assert_array_equal(padded[10:], np.repeat(padded[9:10], 10, axis=0))  # bottom border
    assert crop_frame(frame, CropBox(0, 0, 40), 16).shape == (16, 16, 3)
    assert crop_frame(frame, CropBox(0, 0, 10), 32).shape == (32, 32, 3)
    # pixel centres onto pixel centres: the crop's corner pixels map to the corner pixels
    assert np.allclose(to_crop([[5.0, 3.0], [34.0, 32.0]], CropBox(5, 3, 30), 30), [[0, 0], [29, 29]])
    assert np.allclose(to_crop([[4.5, 2.5], [34.5, 32.5]], CropBox(5, 3, 30), 60), [[-0.5, -0.5], [59.5, 59.5]])


def test_frames_without_a_face_are_interpolated():
    a, b = np.zeros((68, 2)), np.full((68, 2), 4.0)
    filled, missing = fill_missing([None, a, None, None, b, None])
    assert missing == [0, 2, 3, 5]
    assert filled[:, 0, 0].tolist() == [0.0, 0.0, 4 / 3, 8 / 3, 4.0, 4.0]
    with pytest.raises(InputError, match="no face"):
        fill_missing([None, None])


def test_split_sizes():
    assert held_out(100, 0.1, None) == 10 and held_out(100, 0.1, 7) == 7 and held_out(5, 0.0, None) == 0
    with pytest.raises(InputError, match="training needs at least 4"):
        held_out(10, 0.1, 7)
    with pytest.raises(InputError, match=r"--test_fraction must be in \[0, 1\)"):
        held_out(10, 1.0, None)


def run_cli(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in argv])
    return exit_info.value.code, capsys.readouterr().err


def test_cli_errors_are_one_line_and_write_nothing(clip, capsys, tmp_path):
    video, frames = clip
    code, err = run_cli(capsys, "-i", tmp_path / "missing.mp4", "-o", tmp_path / "A")
    assert code == 2 and err.startswith("error:") and "missing.mp4: video file not found" in err
    assert err.count("\n") == 1 and not (tmp_path / "A").exists()

    faceless = tmp_path / "faceless.mp4"
    write_video(faceless, np.full_like(frames[:4], 90))
    code, err = run_cli(capsys, "-i", faceless, "-o", tmp_path / "B")
    assert code == 2 and "faceless.mp4: no face found in any of its 4 frames" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faceless.mp4"]


def test_an_existing_dataset_is_kept_unless_overwrite(clip, capsys, tmp_path):
    video, _ = clip
    out = tmp_path / "Subject"
    (out / "images/train").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, "-i", video, "-o", out, "--size", 32, "--max_frames", 6)
    assert code == 2 and "already holds a dataset" in err and "--overwrite" in err
    assert main(["-i", str(video), "-o", str(out), "--size", "32", "--max_frames", "6", "--overwrite"]) == 0
    summary = json.loads((out / "preprocess.json").read_text())
    assert summary["frames"] == 6 and summary["test"] == 1 and summary["train"] == 5  # test_fraction 0.1
    assert (out / "notes.txt").read_text() == "mine" and len(list((out / "images/train").iterdir())) == 5
    assert not list(tmp_path.glob(".Subject*"))
