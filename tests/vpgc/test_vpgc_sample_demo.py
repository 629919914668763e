"""`python -m vpgc.sample_demo` (make demo's VPGC step) on a small sample: the quick fit trains both
stages, renders the self-reenactment and the cross-identity drive, and says QUICK FIT; bad
arguments are one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.image import read_image
from common.video import video_info
from vpgc import sample_demo

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 12


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vpgc_sample_demo")
    subprocess.run(
        [sys.executable, "-m", "tools.make_sample_data", "--out", str(out), "--frames", str(FRAMES), "--size", "64"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vpgc.sample_demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_held_out_frames_are_whole_groups():
    assert sample_demo.training_frames(48) == 40
    assert sample_demo.training_frames(12) == 8
    assert sample_demo.training_frames(8) == 4


def test_quick_fit_writes_both_reenactments_and_says_so(sample, tmp_path):
    out = tmp_path / "out"
    result = run("--sample", str(sample), "--out", str(out), "--steps", "2", "--max_seconds", "5")
    assert result.returncode == 0, result.stderr
    for part in ("self", "cross"):
        frames = sorted((out / part / "frames").glob("*.png"))
        assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(FRAMES)]
        images = np.stack([read_image(p) for p in frames])
        assert images.shape == (FRAMES, sample_demo.QUICK_SIZE, sample_demo.QUICK_SIZE, 3)
        assert np.ptp(images) > 0
        info = video_info(out / part / "result.mp4")
        assert (info.width, info.height) == (3 * sample_demo.PANEL, sample_demo.PANEL)  # driving | map | result
    readme = (out / "README.txt").read_text()
    assert readme.startswith("QUICK FIT") and "held-out frames 8-11: PSNR" in readme
    assert "driving_2" in readme


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "x.ckpt"], "--checkpoint needs --encoder_path"),
        (["--encoder_path", "Enc.ckpt"], "go with --checkpoint"),
        (["--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(sample, tmp_path, args, message):
    result = run("--sample", str(sample), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_sample_says_how_to_make_one(tmp_path):
    result = run("--sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "tools.make_sample_data" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
