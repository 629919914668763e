"""common.sample_demo: shared make-demo arguments, the time-boxed fit and the README."""

import argparse
import json

import numpy as np
import pytest

from common import sample_demo
from common.errors import InputError
from common.image import write_image
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme


def test_arguments_and_their_checks(tmp_path):
    parser = argparse.ArgumentParser()
    add_demo_arguments(parser, steps=30, max_seconds=35.0, checkpoint_flag="--train_dir")
    sample, out = tmp_path / "sample", tmp_path / "out"
    base = ["--sample", str(sample), "--out", str(out)]
    args = parser.parse_args([*base, "--train_dir", "ckpt"])
    assert (args.steps, args.max_seconds, args.seed, str(args.checkpoint)) == (30, 35.0, 0, "ckpt")
    with pytest.raises(InputError, match="source.png not found .run python -m tools.make_sample_data"):
        start_demo(args)
    image = np.zeros((8, 8, 3), np.uint8)
    write_image(sample / "source.png", image)
    write_image(sample / "driving" / "00000.png", image)
    with pytest.raises(InputError, match="--steps must be at least 1, got 0"):
        start_demo(parser.parse_args([*base, "--steps", "0"]))
    with pytest.raises(InputError, match="--max_seconds must be positive"):
        start_demo(parser.parse_args([*base, "--max_seconds", "0"]))
    assert not out.exists()  # nothing is written before every check passed
    frames = start_demo(args)
    assert [f.image.name for f in frames] == ["source.png", "00000.png"] and out.is_dir()


def test_fit_stops_at_the_step_count():
    targets = []
    done, _ = time_boxed_fit(targets.append, steps=25, max_seconds=100.0, first=10)
    assert done == 25 and targets[0] == 10 and targets[-1] == 25 and targets == sorted(targets)


def test_fit_stops_near_the_time_limit(monkeypatch):
    """Steps of 1/64 s (on a fake clock, binary fractions so the arithmetic is exact) and a 0.25 s
    budget: the first call of 5 steps measures the step time, the second runs the 11 that fit."""
    clock = [0.0]
    monkeypatch.setattr(sample_demo.time, "perf_counter", lambda: clock[0])
    targets = []

    def train_until(n):
        clock[0] += (n - (targets[-1] if targets else 0)) / 64
        targets.append(n)

    done, seconds = time_boxed_fit(train_until, steps=10_000, max_seconds=0.25, first=5)
    assert targets == [5, 16] and done == 16 and seconds == 0.25


def test_readme(tmp_path):
    text = write_readme(tmp_path, "QUICK FIT", tmp_path / "sample", "3 frames -> out")
    assert (tmp_path / "README.txt").read_text() == text
    assert text.splitlines() == [
        "QUICK FIT",
        f"source: {tmp_path}/sample/source.png",
        f"driving: {tmp_path}/sample/driving",
        "3 frames -> out",
    ]


def test_official_files_win_over_the_demo_model(tmp_path):
    official, demo = [tmp_path / "ckpt" / "a.pt", tmp_path / "ckpt" / "b.pt"], [tmp_path / "demo" / "a.pt"]
    assert sample_demo.pick_model(official, demo) is None
    demo[0].parent.mkdir()
    demo[0].write_bytes(b"x")
    assert sample_demo.pick_model(official, demo) == (demo, "demo model")
    official[0].parent.mkdir()
    official[0].write_bytes(b"x")  # one official file of two: still the demo model
    assert sample_demo.pick_model(official, demo) == (demo, "demo model")
    official[1].write_bytes(b"x")
    assert sample_demo.pick_model(official, demo) == (official, "official")


def test_run_info(tmp_path):
    parts = {"self": {"frames": "self/frames", "source": tmp_path / "s.png", "driving": tmp_path / "d"}}
    path = sample_demo.write_run_info(tmp_path, "m", "demo model", "m/demo_model/x.pt", 64, parts, 0.25)
    info = json.loads(path.read_text())
    assert info["model"] == "demo model" and info["size"] == 64 and info["seconds_per_frame"] == 0.25
    assert info["parts"]["self"]["source"] == str(tmp_path / "s.png") and info["peak_memory_mb"] > 1
    with pytest.raises(ValueError, match="model must be one of"):
        sample_demo.write_run_info(tmp_path, "m", "mine", "x", 64, parts, 0.25)
