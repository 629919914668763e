"""`python -m vpgc.sample_demo` (make demo's VPGC step) on a small sample: with the committed demo
model it only renders (self/ and cross/ frames named after the driving frames, run.json, a README
that says DEMO MODEL); --quick_fit trains both stages and says QUICK FIT; bad arguments are
one-line errors with exit status 2."""

from __future__ import annotations

import json
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
DEMO_SIZE = 64


@pytest.fixture(scope="module")
def sample(make_small_sample) -> Path:
    return make_small_sample(FRAMES, 64)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vpgc.sample_demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def check_parts(out: Path, size: int) -> None:
    for part in ("self", "cross"):
        frames = sorted((out / part / "frames").glob("*.png"))
        assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(FRAMES)]
        images = np.stack([read_image(p) for p in frames])
        assert images.shape == (FRAMES, size, size, 3)
        assert np.ptp(images) > 0
        info = video_info(out / part / "result.mp4")
        assert (info.width, info.height) == (3 * sample_demo.PANEL, sample_demo.PANEL)  # driving | map | result


def test_demo_model_renders_both_parts_and_says_so(sample, tmp_path):
    out = tmp_path / "out"
    result = run("--sample", str(sample), "--out", str(out))
    assert result.returncode == 0, result.stderr
    check_parts(out, DEMO_SIZE)
    info = json.loads((out / "run.json").read_text())
    assert (info["method"], info["model"], info["size"]) == ("vpgc", "demo model", DEMO_SIZE)
    assert "demo_model" in info["checkpoint"] and info["seconds_per_frame"] > 0
    assert info["parts"]["self"] == {
        "frames": "self/frames",
        "source": str(sample / "source.png"),
        "driving": str(sample / "driving"),
        "identity": str(sample / "source.png"),
    }
    assert info["parts"]["cross"]["driving"] == str(sample / "driving_2")
    assert info["parts"]["cross"]["identity"] == str(sample / "source.png")
    readme = (out / "README.txt").read_text()
    assert readme.startswith("DEMO MODEL trained on the sample by `make demo-models`")
    assert "held-out frames 8-11: PSNR" in readme


def test_quick_fit_is_behind_its_flag_and_says_so(sample, tmp_path):
    out = tmp_path / "out"
    result = run("--sample", str(sample), "--out", str(out), "--quick_fit", "--steps", "1", "--max_seconds", "5")
    assert result.returncode == 0, result.stderr
    check_parts(out, sample_demo.QUICK_SIZE)
    assert json.loads((out / "run.json").read_text())["model"] == "quick fit"
    assert (out / "README.txt").read_text().startswith("QUICK FIT")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "x.ckpt"], "--checkpoint needs --encoder_path"),
        (["--encoder_path", "Enc.ckpt"], "go with --checkpoint"),
        (["--quick_fit", "--steps", "0"], "--steps must be at least 1"),
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
