"""fsth.bench_original: `python -m fsth.bench --original DIR`, our networks and training step timed
beside the original re-implementation (bowen-xiao96/reenact) on the same weights and inputs.

The side-by-side test needs a git repository of the original: `$REENACT_GIT`, else the read-only
git repository of the original (tests/originals.py, $FR_ORIGINALS); without one it is skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from originals import original_git

from common.bench import Comparison, read_rows_json, write_rows_json
from common.errors import InputError
from fsth import bench, bench_original
from fsth.bench_original import find_face_dir


def _fake_checkout(root: Path) -> Path:
    for name in bench_original.REQUIRED_FILES:
        (root / "face" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "face" / name).touch()
    return root


def test_checkout_is_found_from_the_root_or_face(tmp_path):
    root = _fake_checkout(tmp_path)
    assert find_face_dir(root) == root / "face"
    assert find_face_dir(root / "face") == root / "face"


@pytest.mark.parametrize("problem", ["missing", "empty", "incomplete", "not_cpu"])
def test_an_unusable_original_is_an_input_error(tmp_path, problem):
    root = _fake_checkout(tmp_path / "checkout")
    device_type = "cuda" if problem == "not_cpu" else "cpu"
    if problem == "missing":
        root = tmp_path / "nowhere"
    elif problem == "empty":
        root = tmp_path
    elif problem == "incomplete":
        (root / "face" / "meta_train.py").unlink()
    with pytest.raises(InputError):
        find_face_dir(root, device_type)


def test_cli_rejects_a_missing_dir_in_one_line_before_benchmarking(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench", lambda *args: pytest.fail("benchmarked before checking --original"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--original", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err


def test_rows_carry_both_sides_the_ratio_and_the_agreement(tmp_path):
    comparisons = [
        Comparison("G forward, batch 1", "inference", "frame", 0.5, 0.6, 1e-7, "output"),
        Comparison("meta-training step, batch 1, T = 8", "training", "step", 20.0, 18.0, 1e-3, "x_hat"),
    ]
    assert comparisons[0].speedup == pytest.approx(1.2) and comparisons[0].agrees
    assert not comparisons[1].agrees
    rows = bench_original.bench_rows(comparisons, repeats=3)
    _, read = read_rows_json(write_rows_json(tmp_path / "bench.json", rows, "header"))
    assert [(row.stage, row.seconds) for row in read] == [
        ("G forward, batch 1 [original, side by side]", 0.6),
        ("G forward, batch 1 [ours, side by side]", 0.5),
        ("meta-training step, batch 1, T = 8 [original, side by side]", 18.0),
        ("meta-training step, batch 1, T = 8 [ours, side by side]", 20.0),
    ]
    assert "1.20x faster" in read[0].notes and "agree" in read[0].notes and "DIFFER" in read[2].notes
    lines = bench_original.table(comparisons, repeats=3)
    assert len(lines) == 3 and "1.20x" in lines[1] and "0.90x" in lines[2]
    assert bench_original.table([], repeats=3) == []


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory) -> Path:
    """face/ of the original at its HEAD, extracted from the git repository."""
    git = original_git("bowen-xiao96/reenact")
    root = tmp_path_factory.mktemp("reenact")
    archive = subprocess.run(
        ["git", "-C", str(git), "archive", "--format=tar", "HEAD", "face"], capture_output=True, check=True
    ).stdout
    (root / "face.tar").write_bytes(archive)
    with tarfile.open(root / "face.tar") as tar:
        tar.extractall(root, filter="data")
    return root


def test_side_by_side_with_the_original_agrees(original_checkout, small):
    """The SMALL networks at 32 x 32, T = 2, one timed round: every stage timed on both sides,
    identical outputs to the parity tolerance, and the original's modules gone afterwards."""
    path, cuda_env, cuda_calls = list(sys.path), os.environ.get("CUDA_VISIBLE_DEVICES"), torch.Tensor.cuda
    comparisons = bench_original.compare(find_face_dir(original_checkout), 1, **small, input_size=32, metatrain_T=2)
    assert [c.stage for c in comparisons] == [
        "G forward, batch 1",
        "E forward, 2 frames",
        "meta-training step, batch 1, T = 2",
    ]
    for c in comparisons:
        assert c.agrees, f"{c.stage}: {c.worst_output} differs by {c.worst:.3g} of its magnitude"
        assert 0 < c.ours < 60 and 0 < c.original < 60
    assert "meta_train" not in sys.modules and "config" not in sys.modules
    assert sys.path == path and os.environ.get("CUDA_VISIBLE_DEVICES") == cuda_env
    assert torch.Tensor.cuda is cuda_calls
