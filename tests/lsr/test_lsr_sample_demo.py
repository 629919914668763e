"""lsr.sample_demo on a 4-frame sample: a quick fit of a few steps writes labelled io tuples and
a video; bad arguments are one-line errors. Runs as subprocesses, so that importing the demo can
be checked to load neither framework and the quick fit to import no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.image import read_image
from common.video import read_video

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    result = _run("-m", "tools.make_sample_data", "--out", str(out), "--frames", "4")
    assert result.returncode == 0, result.stderr
    return out


def test_sample_tool_imports_no_framework():
    code = (
        "import sys, tools.make_sample_data, lsr.sample_demo; "
        "print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_quick_fit_writes_io_tuples_video_and_label(sample, tmp_path):
    out = tmp_path / "lsr"
    code = (
        "import sys; from lsr import sample_demo; "
        f"sample_demo.main(['--sample', {str(sample)!r}, '--out', {str(out)!r}, "
        "'--steps', '2']); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"sample-lsr_demo-driving_{i:05d}_io_tuple.png" for i in range(4)]
    for name in names:
        assert read_image(out / name).shape == (64, 5 * 64, 3)
    video = read_video(out / "result.mp4")
    assert len(video) == 4 and np.asarray(video[0]).shape[:2] == (64, 64)
    text = (out / "README.txt").read_text()
    assert "QUICK FIT on the sample, NOT the official model" in text
    assert "trained from scratch for 2 steps" in text and "Losses used: gan, l1" in text
    assert "VGG" in text and text in result.stdout


def test_missing_sample_is_a_one_line_error(tmp_path):
    result = _run(
        "-m", "lsr.sample_demo", "--sample", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope' / 'source.png'} not found (run python -m "
        f"tools.make_sample_data --out {tmp_path / 'nope'})"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train_dir", "missing_ckpt"], "missing_ckpt: checkpoint folder not found"),
        (["--steps", "0"], "--steps must be at least 1, got 0"),
        (["--max_seconds", "0"], "--max_seconds must be positive, got 0.0"),
    ],
)
def test_bad_arguments_are_one_line_errors(sample, tmp_path, args, message):
    args = [str(tmp_path / a) if a == "missing_ckpt" else a for a in args]
    result = _run("-m", "lsr.sample_demo", "--sample", str(sample), "--out", str(tmp_path / "out"), *args, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
