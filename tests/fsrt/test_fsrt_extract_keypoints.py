"""`python -m fsrt.extract_keypoints` on the sample clip (dlib backend, offline)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from common.video import write_video
from fsrt.extract_keypoints import main


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from tools.make_sample_data import main as make_sample

    sample = tmp_path_factory.mktemp("kp_sample")
    make_sample(["--out", str(sample), "--frames", "2"])
    folder = tmp_path_factory.mktemp("videos")
    shutil.copy(sample / "driving.mp4", folder / "clip.mp4")
    noise = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    write_video(folder / "noise.mp4", noise)
    return folder, sample


def test_writes_per_video_landmarks_in_256_pixels(videos, tmp_path):
    folder, sample = videos
    assert main(["--folder_in", str(folder), "--folder_out", str(tmp_path / "kp")]) == 0
    clip = np.load(tmp_path / "kp" / "clip.npy")
    assert clip.shape == (2, 68, 2) and clip.dtype == np.float32
    known = np.load(sample / "landmarks" / "driving" / "00000.npy")  # the sample's true landmarks
    # dlib on a decoded H.264 frame, neither bit-exact across builds: a pixel tolerance (measured
    # 0.5 px on average, 1.8 px at most)
    assert np.abs(clip[0] - known).mean() < 5
    assert not np.load(tmp_path / "kp" / "noise.npy").any()  # no face: zeros


def test_empty_folder_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--folder_in", str(tmp_path), "--folder_out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "no .mp4" in capsys.readouterr().err
