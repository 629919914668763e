"""fsrt.bench_original: `python -m fsrt.bench --original DIR`, our demo per frame and phase-1 training
step timed beside the original (andrerochow/fsrt) on the same weights and inputs.

The side-by-side tests need the original's git repository (tests/originals.py, $FR_ORIGINALS);
without it they are skipped."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from fsrt_testlib import SMALL_MODEL
from originals import original_git

from common.bench import PARITY_TOLERANCE, Comparison, read_rows_json, relative_difference, write_rows_json
from common.errors import InputError
from fsrt import bench, bench_original
from fsrt.bench_original import find_original

SIZE = 128  # the smallest frame the keypoint detector's hourglass takes


def _fake_checkout(root: Path) -> Path:
    for name in bench_original.REQUIRED_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root


@pytest.mark.parametrize("problem", ["missing", "incomplete", "not_cpu"])
def test_an_unusable_original_is_an_input_error(tmp_path, problem):
    root = _fake_checkout(tmp_path / "checkout")
    assert find_original(root) == root.resolve()
    if problem == "missing":
        root = tmp_path / "nowhere"
    elif problem == "incomplete":
        (root / "srt" / "trainer.py").unlink()
    with pytest.raises(InputError, match="srt/trainer.py" if problem == "incomplete" else ""):
        find_original(root, "cuda" if problem == "not_cpu" else "cpu")


def test_cli_rejects_a_bad_dir_in_one_line_before_benchmarking(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "load_config", lambda *args: pytest.fail("benchmarked before checking --original"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--original", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "andrerochow/fsrt" in err


def test_rows_and_table_carry_both_sides_the_ratio_agreement_and_peaks(tmp_path):
    comparisons = [
        Comparison(
            "demo per 256x256 frame", "inference", "frame", 10.0, 25.0, 3e-6, "frame", {"ours": 900.0, "original": None}
        ),
        Comparison("train step phase 1", "training", "step", 8.0, 7.0, 1e-3, "mse"),
    ]
    rows = bench_original.bench_rows(comparisons, repeats=2)
    _, read = read_rows_json(write_rows_json(tmp_path / "bench.json", rows, "header"))
    assert [(row.stage, row.seconds, row.peak_mb) for row in read] == [
        ("demo per 256x256 frame [original, side by side]", 25.0, None),
        ("demo per 256x256 frame [ours, side by side]", 10.0, 900.0),
        ("train step phase 1 [original, side by side]", 7.0, None),
        ("train step phase 1 [ours, side by side]", 8.0, None),
    ]
    assert "2.50x faster" in read[0].notes and "agree" in read[0].notes and "DIFFER" in read[2].notes
    lines = bench_original.table(comparisons, repeats=2).splitlines()
    assert "| 2.50 | 900 |" in lines[4] and "ours 900, original -" in lines[4] and "| 0.88 |" in lines[5]
    assert bench_original.table([], repeats=2) == ""


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory) -> Path:
    """The original at its HEAD, extracted from the git repository."""
    git = original_git("andrerochow/fsrt")
    root = tmp_path_factory.mktemp("fsrt_original")
    archive = subprocess.run(
        ["git", "-C", str(git), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
    )
    (root / "fsrt.tar").write_bytes(archive.stdout)
    with tarfile.open(root / "fsrt.tar") as tar:
        tar.extractall(root / "checkout", filter="data")
    return find_original(root / "checkout")


def test_side_by_side_with_the_original_agrees(original_checkout):
    """SMALL_MODEL at 128 x 128, one timed round: both stages timed on both sides with outputs equal
    to the parity tolerance, and nothing of the original (or of its stand-ins) left behind."""
    path, cuda_calls = list(sys.path), (torch.Tensor.cuda, torch.nn.Module.cuda)
    comparisons = bench_original.compare(original_checkout, size=SIZE, repeats=1, model=SMALL_MODEL, memory=False)
    assert [c.stage for c in comparisons] == [
        "demo per 128x128 frame, 1 source(s)",
        "train step phase 1, batch 1 (4096 px)",
    ]
    for c in comparisons:
        assert c.agrees, f"{c.stage}: {c.worst_output} differs by {c.worst:.3g} of its magnitude"
        assert 0 < c.ours < 60 and 0 < c.original < 60
    assert not any(name.split(".")[0] in ("demo", "srt", "modules", "torchvision", "ffmpeg") for name in sys.modules)
    assert sys.path == path and (torch.Tensor.cuda, torch.nn.Module.cuda) == cuda_calls


def test_peak_memory_of_one_side_in_its_own_process(original_checkout):
    peak = bench_original.measure_peak(original_checkout, "original", "inference", "vox256", SIZE, SMALL_MODEL)
    assert peak is not None and 100 < peak < 8000


def test_the_frame_comparison_catches_a_perturbed_weight(original_checkout):
    """The tolerance is no blanket: the original's first render layer scaled by 1.01 puts its frame out of it."""
    cfg = bench_original._config("vox256", SMALL_MODEL)
    sources, driving = bench_original.demo_inputs(SIZE, 1, 2)
    detector, ours = bench_original.build_ours(cfg["model"])
    frame = bench_original.ours_per_frame(detector, ours, sources, driving, 1, 8192)()
    with bench_original.original_modules(original_checkout) as original:
        kp, theirs = bench_original.build_original(original, cfg["model"], detector, ours)
        with torch.no_grad():
            theirs.decoder.render_mlp[0].weight.mul_(1.01)
        perturbed = bench_original.original_per_frame(original, kp, theirs, cfg["model"], sources, driving)()
    assert relative_difference(frame, perturbed) > 10 * PARITY_TOLERANCE
