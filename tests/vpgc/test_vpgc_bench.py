"""`python -m vpgc.bench` runs (at its --tiny sizes), and the fast inference paths it times compute
exactly what the literal formulas compute."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import FORWARD, ROUNDING
from originals import original_git
from vpgc_testlib import SMALL_DDCONFIG, make_frames

from vpgc import bench
from vpgc.model import GRID_WINDOW, Decoder, Encoder, GridQuantizer


def test_tiny_bench_writes_every_row(tmp_path, capsys):
    """The default run on the CPU: every fp32 row, and stage-2 inference again in bfloat16."""
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--quick", "--in_process", "--device", "cpu", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    stages = [row["stage"] for row in report["rows"]]
    assert stages[0] == "stage-1 forward, 4 frames" and stages[-1] == "stage-2 training step"
    for row in report["rows"]:
        assert row["ours"] > 0 and row["peak_mib"] > 0, row
        assert row["stage"] in table
    assert "error" not in json.dumps(report["results"])
    standard = report["standard_rows"]
    kinds = ["inference", "other", "inference", "inference", "training", "training"]
    assert [row["kind"] for row in standard] == kinds
    for row in standard:
        assert row["seconds"] > 0 and row["peak_mb"] > 0, row
    stage2, reduced = standard[2], standard.pop(3)
    assert all(row["notes"] == "" for row in standard)
    assert stage2["gflop"] > 0 and stage2["achieved_gflops"] == stage2["gflop"] / stage2["seconds"]
    assert reduced["stage"] == stage2["stage"] + " [bf16]" and reduced["gflop"] == stage2["gflop"]
    pattern = r"x(\d+\.\d\d) vs fp32; frames vs fp32 (\d+\.\d) dB PSNR, max (\d+) levels"
    match = re.fullmatch(pattern, reduced["notes"])
    assert match and float(match[1]) == pytest.approx(stage2["seconds"] / reduced["seconds"], abs=0.006), reduced
    # bfloat16 keeps 8 significant bits (0.2% rounding); through these random networks and the soft
    # lookup the frames moved by 37.5 dB PSNR, max 24 levels (the trained demo model: 54.7 dB, max 3)
    assert float(match[2]) > 30, reduced


TIMED = {"seconds": 2.0, "peak_mib": 10.0, "baseline_mib": 5.0}
TIMED_RESULTS = {
    **{name: TIMED for name in ("stage1_forward", "hard_quantiser", "stage1_train_step", "stage2_train_step")},
    "stage1_train_frames": 4,
    "stage2_inference": dict(TIMED, gflop=3.0),
}


def test_reduced_precision_rows_only_when_measured():
    """`--precisions fp32` gives no "precisions" results, and so exactly the fp32 rows."""
    results = {name: dict(value) if isinstance(value, dict) else value for name, value in TIMED_RESULTS.items()}
    fp32_only = [row.stage for row in bench.standard_rows(results, "cpu")]
    results["stage2_inference"]["precisions"] = {"bf16": {"seconds": 0.5, "psnr_db": 45.04, "max_levels": 3}}
    rows = bench.standard_rows(results, "cpu")
    assert [row.stage for row in rows] == [*fp32_only[:3], fp32_only[2] + " [bf16]", *fp32_only[3:]]
    assert rows[3].notes == "x4.00 vs fp32; frames vs fp32 45.0 dB PSNR, max 3 levels" and rows[3].gflop == 3.0
    assert [row["stage"] for row in bench.build_rows(results)][2:4] == [fp32_only[2], fp32_only[2] + " [bf16]"]


def test_fp16_on_the_cpu_is_a_one_line_error_before_any_stage(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_stage", lambda *args: pytest.fail("a stage ran before --precisions was checked"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--tiny", "--precisions", "fp16", "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error:") and err.count("\n") == 1 and "fp16" in err


def test_hard_lookup_is_bit_identical_to_the_literal_distance():
    """Coarse values make many exact and near ties: the component-wise sum must give the original's
    `sum((z - c)**2, -1)` bit for bit, so the first-index argmin agrees everywhere."""
    generator = torch.Generator().manual_seed(0)
    quantiser = GridQuantizer(chunk_rows=8)
    with torch.no_grad():
        quantiser.embedding.copy_(torch.randint(-8, 9, quantiser.embedding.shape, generator=generator) / 8)
    z = torch.randint(-8, 9, (2, 256, 16, 16), generator=generator) / 8 + torch.randn(2, 256, 16, 16) * 1e-3
    _, _, (_, _, indices) = quantiser(z)
    bank = quantiser.candidates()
    vectors = z.permute(0, 2, 3, 1).reshape(2, 256, 64, 4)
    for cells in (slice(0, 3), slice(100, 102), slice(254, 256)):
        literal = torch.sum((vectors[:, cells, :, None, :] - bank[None, cells, None]) ** 2, -1).argmin(-1)
        assert torch.equal(indices[:, cells], literal)


def test_inference_paths_are_bit_identical_to_the_autograd_paths():
    """Without autograd swish and the residual sums run in place: the same numbers, bit for bit."""
    torch.manual_seed(0)
    frames = make_frames(3, 64)
    encoder, decoder = Encoder(**SMALL_DDCONFIG), Decoder(**SMALL_DDCONFIG)
    latent = encoder(frames)
    decoded = decoder(latent)
    assert latent.requires_grad and decoded.requires_grad
    with torch.no_grad():
        assert torch.equal(encoder(frames), latent)
        assert torch.equal(decoder(latent), decoded)


def test_the_scikit_learn_stand_in_replays_the_window_table():
    centres = (np.stack(np.meshgrid(np.arange(16), np.arange(16)), -1).reshape(-1, 2) + 0.5) / 16
    distances, table = bench.GridNeighbours(16).fit(centres).kneighbors(centres)
    assert np.array_equal(table, np.asarray(GRID_WINDOW)) and np.all(np.diff(distances, axis=1) >= -1e-12)


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory) -> Path:
    """Reenactment/ of the original at its HEAD, extracted from the git repository."""
    git = original_git("uniBruce/VPGC_Pytorch")
    root = tmp_path_factory.mktemp("vpgc_original")
    command = ["git", "-C", str(git), "archive", "--format=tar", "--prefix=Reenactment/", "HEAD:Reenactment"]
    archive = subprocess.run(command, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


def test_training_step_beside_the_original_agrees(original_checkout):
    """At the --tiny sizes, in a child process (the original's modules and shims stay there): the
    original's own optimize_parameters and our train_step, same weights, maps, frames and dropout
    seed, give the same first loss; both sides are timed."""
    opt = argparse.Namespace(original=str(original_checkout), tiny=True, repeats=1, device="cpu", in_process=False)
    result = bench.run_stage("compare_stage2_training", opt)
    assert "error" not in result, result.get("error")
    assert result["ours"] > 0 and result["original"] > 0
    # one forward and loss, the same operations on both sides: float rounding
    assert result["relative_difference"] < ROUNDING, result["losses"]
    rows = bench.build_rows({**TIMED_RESULTS, "compare_stage2_training": result})
    assert rows[-1]["stage"] == "stage-2 training step beside the original"
    assert rows[-1]["ratio"] == result["original"] / result["ours"]


def test_inference_beside_the_original_agrees(original_checkout):
    """Stage-2 inference part by part through the same assembled original (its parts in eval mode):
    every part timed on both sides, frames equal to the parity tolerance."""
    opt = argparse.Namespace(original=str(original_checkout), tiny=True, repeats=1, device="cpu", in_process=False)
    result = bench.run_stage("compare_stage2", opt)
    assert "error" not in result, result.get("error")
    parts = ["encoder", "PriorTrans", "soft", "decoder"]
    assert all(list(result["parts"][side]) == parts for side in ("ours", "original"))
    assert result["relative_difference"] < FORWARD
