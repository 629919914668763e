"""`python -m vfa.bench` runs its smallest path (small meshes, training at 128, in one process) and
reports every row, the inference ones also in bf16; a folder that is not the original's checkout
is a one-line error; beside the original (where $FR_ORIGINALS has it) a training step agrees."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from numerics import ROUNDING
from originals import original_git

from vfa import bench


def test_tiny_bench_writes_every_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--quick", "--in_process", "--threads", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    stages = [row["stage"] for row in report["rows"]]
    assert stages[0] == "inference per frame (Animator.animate)" and stages[-1].startswith("stage-2 training step")
    for row in report["rows"]:
        assert row["ours"] > 0, row
        assert row["stage"] in table
    assert "error" not in json.dumps(report["results"])
    assert report["results"]["inference"]["tracked"] > 0
    standard = report["standard_rows"]
    assert [row["kind"] for row in standard] == ["inference"] * 4 + ["other"] * 2 + ["training"] * 2
    for row in standard:
        assert row["seconds"] > 0 and row["peak_mb"] > 0 and row["unit"] in ("frame", "call", "step"), row
    animate, generator = standard[:2]
    assert animate["gflop"] == generator["gflop"] > 0
    # the default --precisions fp32 bf16: the same two stages again under bf16 autocast
    assert [row["stage"] for row in standard[2:4]] == [animate["stage"] + " [bf16]", generator["stage"] + " [bf16]"]
    note = r"x\d+\.\d\d vs fp32; frames vs fp32 \d+\.\d dB PSNR, max \d+ levels"
    for row in standard[2:4]:
        assert row["gflop"] == animate["gflop"] and re.fullmatch(note, row["notes"]), row


def test_original_must_be_a_checkout(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--tiny", "--original", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "networks/generator.py" in capsys.readouterr().err


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory) -> Path:
    """The original's trainer and networks at its HEAD, extracted from the git repository."""
    git = original_git("why986/VFA")
    root = tmp_path_factory.mktemp("vfa_original")
    command = ["git", "-C", str(git), "archive", "--format=tar", "HEAD", "trainer.py", "vgg19.py", "networks"]
    archive = subprocess.run(command, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.mark.parametrize("distilling", [False, True], ids=["stage1", "stage2"])
def test_training_step_beside_the_original_agrees(original_checkout, distilling):
    """At 128 px, in a child process (the original's modules and shims stay there): its own
    Trainer.gen_update and our train_step, same weights, frames and VGG19, give the same first loss."""
    opt = argparse.Namespace(original=str(original_checkout), train_size=128, repeats=1, threads=1, in_process=False)
    result = bench.run_stage("original_train_step", opt, {"distilling": distilling})
    assert "error" not in result, result.get("error")
    assert result["ours"] > 0 and result["original"] > 0
    # one forward and loss, the same operations in float32 on both sides: float rounding
    assert result["relative_difference"] < ROUNDING, result["losses"]
    rows = bench.build_rows(
        {
            "inference": {},
            "weights_fast": {},
            "weights_faithful": {},
            "train": {},
            "original_train": {"stage2" if distilling else "stage1": result},
        },
        opt,
    )
    assert rows[-1]["ratio"] == result["original"] / result["ours"] and "ours vs original" in rows[-1]["stage"]
