"""lsr.preprocessing.landmarks: LSR's landmark-drawing step on a tiny clip (dlib backend)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from common.drawing import draw_landmarks
from common.image import read_image, write_image
from common.landmarks import LandmarkDetector
from common.video import iter_frames, write_video
from lsr.preprocessing import landmarks as L

SIZE = 224
K = 3  # 12 frames: step 12 // 3 + 1 = 5, frames 0, 5, 10 -> exactly k


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """`<person>/<video>/<clip>.mp4` and `<person>/<video>/<clip>/` (frames) of the sample data,
    plus a no-face clip."""
    root = tmp_path_factory.mktemp("lsr_pre")
    subprocess.run(
        [sys.executable, "-m", "tools.make_sample_data", "--out", str(root / "sample"), "--frames", "12"],
        check=True,
        capture_output=True,
    )
    frames = [read_image(p, size=SIZE) for p in sorted((root / "sample" / "driving").glob("*.png"))]
    videos = root / "videos"
    write_video(videos / "id00017" / "vid1" / "00001.mp4", frames)
    write_video(videos / "id00017" / "vid1" / "00002.mp4", [np.zeros_like(f) for f in frames])
    images = root / "images" / "id00017" / "vid1" / "combined"
    for i, frame in enumerate(frames[:4]):
        write_image(images / f"frame_{i * 7:03d}.png", frame)
    write_image(images / "frame_900.png", np.zeros_like(frames[0]))  # no face: dropped, padded
    return root


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector(backend="dlib", main_face="first")


def _run(*argv):
    return L.main(["--backend", "dlib", *map(str, argv)])


def test_frame_rule_is_the_originals():
    assert L.video_frame_indices(12, 3) == [0, 5, 10]
    assert L.video_frame_indices(48, 10) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert L.video_frame_indices(12, 4) == [0, 4, 8]  # 3 != k: such a clip is skipped


def test_videos_mode_layout_names_and_drawings(raw, detector, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run("--data_dir", raw / "videos", "--output_dir", out, "--k", K) == 0
    clip = out / "id00017" / "vid1" / "00001"
    assert sorted(p.name for p in clip.iterdir()) == [
        f"{i:05d}_{kind}.png" for i in (0, 5, 10) for kind in ("contour", "rgb")
    ]
    # The tool's frames and landmarks against the same decode and the same dlib call in this
    # process, so exact, whatever this machine's H.264 encode or dlib rounding.
    decoded = list(iter_frames(raw / "videos" / "id00017" / "vid1" / "00001.mp4"))
    for i in (0, 5, 10):
        rgb = read_image(clip / f"{i:05d}_rgb.png")
        assert rgb.shape == (SIZE, SIZE, 3) and np.array_equal(rgb, decoded[i])
        expected = draw_landmarks(detector.detect(rgb), SIZE, "lsr")
        assert np.array_equal(read_image(clip / f"{i:05d}_contour.png"), expected)
    # the black clip: no output, an empty marker under output_dir
    assert not (out / "id00017" / "vid1" / "00002").exists()
    marker = out / "sanity_fails" / "id00017_vid1_00002"
    assert marker.is_file() and marker.stat().st_size == 0
    assert "1 written" in capsys.readouterr().out
    # resumable: a second run leaves the finished clip alone
    stamp = (clip / "00000_rgb.png").stat().st_mtime_ns
    assert _run("--data_dir", raw / "videos", "--output_dir", out, "--k", K) == 0
    assert (clip / "00000_rgb.png").stat().st_mtime_ns == stamp
    assert "1 exists" in capsys.readouterr().out


def test_clip_without_exactly_k_frames_is_skipped(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run("--data_dir", raw / "videos", "--output_dir", out, "--k", 4) == 0
    assert not (out / "id00017" / "vid1" / "00001").exists()
    assert "1 skipped" in capsys.readouterr().out


def test_images_mode_renames_by_position_and_pads_failures(raw, detector, tmp_path):
    out = tmp_path / "out"
    assert _run("--data_dir", raw / "images", "--output_dir", out, "--mode", "images") == 0
    clip = out / "id00017" / "vid1" / "combined"
    assert sorted(p.name for p in clip.glob("*_rgb.png")) == [f"{i:05d}_rgb.png" for i in range(5)]
    assert len(list(clip.glob("*_contour.png"))) == 5
    sources = [read_image(p) for p in sorted((raw / "images" / "id00017" / "vid1" / "combined").iterdir())]
    for i in range(4):
        assert np.array_equal(read_image(clip / f"{i:05d}_rgb.png"), sources[i])
    # the faceless last frame was dropped and padded with the first pair
    assert np.array_equal(read_image(clip / "00004_rgb.png"), sources[0])
    assert np.array_equal(read_image(clip / "00004_contour.png"), read_image(clip / "00000_contour.png"))
    assert np.array_equal(
        read_image(clip / "00000_contour.png"), draw_landmarks(detector.detect(sources[0]), SIZE, "lsr")
    )
    assert (out / "sanity_fails" / "id00017_vid1_combined").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mode", "frames"], "--mode must be one of videos, images"),
        (["--k", "0"], "--k must be >= 1"),
        (["--data_dir", "/nonexistent/x"], "data directory not found"),
    ],
)
def test_bad_inputs_give_one_line_errors(raw, tmp_path, capsys, argv, message):
    base = ["--data_dir", raw / "videos", "--output_dir", tmp_path / "o"]
    with pytest.raises(SystemExit) as exc:
        _run(*base, *argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_empty_data_dir_and_unreadable_clip(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    with pytest.raises(SystemExit):
        _run("--data_dir", tmp_path / "raw", "--output_dir", tmp_path / "o")
    assert "no <person>/<video>/<clip> video files found" in capsys.readouterr().err
    bad = tmp_path / "raw" / "p" / "v" / "broken.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a video")
    assert _run("--data_dir", tmp_path / "raw", "--output_dir", tmp_path / "o") == 0
    err = capsys.readouterr()
    assert err.err.count("\n") == 1 and "broken.mp4" in err.err and "1 unreadable" in err.out


def test_dlib_backend_imports_no_torch():
    code = 'import sys, lsr.preprocessing.landmarks; print("torch" in sys.modules)'
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
