"""tools.extract_landmarks end to end with the real dlib models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.image import read_image, write_image
from tools.extract_landmarks import main

ROOT = Path(__file__).resolve().parents[2]
# dlib's points are whole pixels that may move by a pixel with another CPU, build or H.264 encode
# (x264's output depends on its thread count), so tolerances are fractions of the face's size:
# the astronaut's 68 points span 93 px in x.
ASTRONAUT_FACE = 93


@pytest.fixture
def photos(tmp_path, astronaut):
    from skimage import data

    folder = tmp_path / "photos"
    write_image(folder / "astronaut.png", astronaut)
    write_image(folder / "camera.png", np.repeat(data.camera()[..., None], 3, axis=2))  # no face
    return folder


def test_folder_with_a_face_and_a_no_face_image(photos, tmp_path, astronaut, capsys):
    out = tmp_path / "out"
    assert main(["--input", str(photos), "--output", str(out)]) == 0
    lm = np.load(out / "astronaut.npy")
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    np.testing.assert_allclose(lm[36:42].mean(0), (203, 102), atol=0.03 * ASTRONAUT_FACE)  # (203.2, 101.5) here
    preview = read_image(out / "preview" / "astronaut.png")
    assert preview.shape == (512, 512, 3) and np.any(preview != astronaut)
    assert not (out / "camera.npy").exists() and not (out / "preview" / "camera.png").exists()
    assert (out / "no_face.txt").read_text() == "camera\n"
    captured = capsys.readouterr()
    assert "wrote 1 landmark file(s)" in captured.out
    assert captured.err.strip().splitlines()[-1].startswith("no face in 1 frame(s)")

    (photos / "camera.png").unlink()  # a run where every frame has a face empties the list
    assert main(["--input", str(photos), "--output", str(out), "--no_preview"]) == 0
    assert (out / "no_face.txt").read_text() == ""


def test_single_image(photos, tmp_path):
    out = tmp_path / "single"
    assert main(["--input", str(photos / "astronaut.png"), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.npy", "no_face.txt", "preview"]


def test_video_frames_are_named_by_frame_index(tmp_path, astronaut):
    from common.video import write_video

    video = write_video(tmp_path / "clip.mp4", [astronaut[40:296, 96:352]] * 5)  # 256x256 around the face
    out = tmp_path / "out"
    assert main(["--input", str(video), "--output", str(out), "--every_k", "2", "--no_preview"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.npy", "00002.npy", "00004.npy", "no_face.txt"]
    # one still frame five times: encodes with 1-8 x264 threads and crf 15-20 moved points by at most
    # 1 px; 2.5% of the face is 2.3 px
    np.testing.assert_allclose(np.load(out / "00002.npy"), np.load(out / "00000.npy"), atol=0.025 * ASTRONAUT_FACE)


def test_missing_input_is_one_line_error_exit_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.extract_landmarks",
            "--input",
            str(tmp_path / "nope.mp4"),
            "--output",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.mp4'}: input not found\n"
    assert not (tmp_path / "out").exists()


def test_face_alignment_without_weights_exits_2(photos, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(SystemExit) as exit_info:
        main(["--input", str(photos), "--output", str(tmp_path / "out"), "--backend", "face_alignment"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "2DFAN4-11f355bf06.pth.tar" in err and "--backend dlib" in err
