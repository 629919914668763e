"""`python -m fsrt.sample_demo` (make demo's FSRT step) on a small sample: the committed demo model
writes the self and cross frames, run.json and a README that says DEMO MODEL; --quick_fit still
trains and says QUICK FIT; a checkpoint is used as fsrt.demo does; a missing sample is a one-line
error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fsrt_testlib import small_checkpoints
from numerics import FORWARD

from common.image import read_image
from common.video import video_info
from fsrt import animate, demo_model, sample_demo
from fsrt.checkpoint import load_pretrained

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 12  # training_count(12) = 8: enough for the quick fit, which never sees frames 8-11


@pytest.fixture(scope="module")
def sample(make_small_sample) -> Path:
    # 128 px: the smallest size the released 5-block keypoint detector of the checkpoint path takes
    return make_small_sample(FRAMES, 128)


def check_output(out: Path, count: int, size: int, kind: str) -> dict[str, list[Path]]:
    """Both parts' frames (named after the driving frames), videos and run.json; returns the frames."""
    info = json.loads((out / "run.json").read_text())
    assert (info["method"], info["model"], info["size"]) == ("fsrt", kind, size)
    assert info["seconds_per_frame"] > 0 and set(info["parts"]) == {"self", "cross"}
    written = {}
    for part in ("self", "cross"):
        entry = info["parts"][part]
        assert entry["frames"] == f"{part}/frames" and Path(entry["driving"]).name == "driving"
        assert entry["source"] == entry["identity"]
        assert Path(entry["source"]).name == {"self": "source.png", "cross": "source_2.png"}[part]
        frames = sorted((out / part / "frames").glob("*.png"))
        assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(count)]
        assert all(read_image(p).shape == (size, size, 3) for p in frames)
        video = video_info(out / part / "result.mp4")
        assert (video.width, video.height) == (2 * size, size)  # [driving | result]
        assert video.frames in (None, count)
        assert np.ptp(read_image(frames[0])) > 0  # rendered, not a blank canvas
        written[part] = frames
    return written


def test_demo_model_is_the_default(sample, tmp_path, monkeypatch):
    # a process of its own, as make demo runs it; no official files under this working directory
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "fsrt.sample_demo", "--sample", str(sample), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    check_output(out, FRAMES, demo_model.SIZE, "demo model")
    readme = (out / "README.txt").read_text()
    assert readme.startswith("DEMO MODEL trained on the sample by `make demo-models` (recipe fsrt/runs/sample.yaml)")
    assert readme in result.stdout


def test_quick_fit_writes_every_frame_and_says_so(sample, tmp_path):
    # a process of its own, as make demo runs it
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "fsrt.sample_demo", "--sample", str(sample), "--out", str(out)]
        + ["--quick_fit", "--steps", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    check_output(out, FRAMES, sample_demo.QUICK_SIZE, "quick fit")
    readme = (out / "README.txt").read_text()
    assert readme.startswith("QUICK FIT on the sample, NOT the official model")
    assert "for 2 steps" in readme and "random" in readme and readme in result.stdout


def test_checkpoint_is_used_as_fsrt_demo_does(sample, tmp_path, monkeypatch, capsys):
    ckpt = small_checkpoints(tmp_path / "ckpt")
    monkeypatch.setattr(animate, "SIZE", 128)  # the small model is fast enough at 128 px only
    out = tmp_path / "out"
    sample_demo.main(
        [
            "--sample",
            str(sample),
            "--out",
            str(out),
            "--checkpoint",
            str(ckpt["checkpoint"]),
            "--kp_checkpoint",
            str(ckpt["kp_checkpoint"]),
            "--config",
            str(ckpt["config"]),
            "--frames",
            "2",
        ]
    )
    frames = check_output(out, 2, 128, "official")["self"]
    readme = (out / "README.txt").read_text()
    assert f"checkpoint {ckpt['checkpoint']}" in readme and "QUICK FIT" not in readme
    assert readme in capsys.readouterr().out
    # the same frames as fsrt.demo's own pipeline with --relative --adapt_scale from frame 0
    detector, model = load_pretrained(ckpt["config"], ckpt["checkpoint"], ckpt["kp_checkpoint"])
    source = animate.to_tensor([animate.prepare(read_image(sample / "source.png"))])
    driving = animate.to_tensor([animate.prepare(read_image(sample / "driving" / f"{i:05d}.png")) for i in range(2)])
    expected = animate.animate(model, detector, source, driving, relative=True, adapt_scale=True)
    got = np.stack([read_image(p) for p in frames]).astype(np.float32) / 255
    # PNG frames round to 1/255; sample_demo batches the frames as fsrt.demo.main, not as animate,
    # so the [0, 1] values may differ by a network's rounding (FORWARD) before that
    assert np.abs(got - expected.permute(0, 2, 3, 1).numpy()).max() <= 0.5 / 255 + FORWARD


def test_missing_sample_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample_demo.main(["--sample", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "make_sample_data" in err and "\n" not in err
