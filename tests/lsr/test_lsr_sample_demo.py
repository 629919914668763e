"""lsr.sample_demo on an 8-frame sample: the committed demo model renders the self and cross
parts with run.json and a labelled README; bad arguments are one-line errors (the quick fit:
test_lsr_sample_demo_quick_fit.py). Runs as subprocesses, so that importing the demo
can be checked to load neither framework and a run to import no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.image import list_images, read_image
from common.video import read_video

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
SIZE = 64  # the recipe's --train_resolution


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    result = _run("-m", "tools.make_sample_data", "--out", str(out), "--frames", "8", "--size", "128")
    assert result.returncode == 0, result.stderr
    return out


def _demo(sample: Path, out: Path, *extra: str):
    code = (
        "import sys; from lsr import sample_demo; "
        f"sample_demo.main(['--sample', {str(sample)!r}, '--out', {str(out)!r}, *{list(extra)!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _check_parts(sample: Path, out: Path, model: str) -> dict:
    stems = [p.stem for p in list_images(sample / "driving")]
    info = json.loads((out / "run.json").read_text())
    assert (info["method"], info["model"], info["size"]) == ("lsr", model, SIZE)
    assert info["seconds_per_frame"] > 0
    for part, photo in (("self", "source.png"), ("cross", "source_2.png")):
        frames = sorted((out / part / "frames").glob("*.png"))
        assert [p.stem for p in frames] == stems
        assert all(read_image(p).shape == (SIZE, SIZE, 3) for p in frames)
        assert info["parts"][part] == {
            "frames": f"{part}/frames",
            "source": str(sample / photo),
            "driving": str(sample / "driving"),
            "identity": str(sample / photo),
        }
        assert len(read_video(out / part / "result.mp4")) == len(stems)
    return info


def test_sample_tool_imports_no_framework():
    code = (
        "import sys, tools.make_sample_data, lsr.sample_demo; "
        "print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_demo_model_renders_self_and_cross(sample, tmp_path):
    out = tmp_path / "lsr"
    result = _demo(sample, out)
    info = _check_parts(sample, out, "demo model")
    assert info["checkpoint"].endswith(os.path.join("lsr", "demo_model"))
    text = (out / "README.txt").read_text()
    assert text.startswith("DEMO MODEL trained on the sample by `make demo-models` (recipe lsr/runs/sample.flags)")
    assert text in result.stdout
    # The two parts share the driver but not the identity.
    self_frame, cross_frame = (read_image(out / part / "frames" / "00000.png") for part in ("self", "cross"))
    assert np.abs(self_frame.astype(int) - cross_frame).mean() > 2


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
        (["--checkpoint", "missing_ckpt"], "missing_ckpt: checkpoint folder not found"),
        (["--quick_fit", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["--quick_fit", "--max_seconds", "0"], "--max_seconds must be positive, got 0.0"),
    ],
)
def test_bad_arguments_are_one_line_errors(sample, tmp_path, args, message):
    args = [str(tmp_path / a) if a == "missing_ckpt" else a for a in args]
    result = _run("-m", "lsr.sample_demo", "--sample", str(sample), "--out", str(tmp_path / "out"), *args, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
