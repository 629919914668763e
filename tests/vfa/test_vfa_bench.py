"""`python -m vfa.bench` runs its smallest path (small meshes, training at 128, in one process) and
reports every row, the inference ones also in bf16; a folder that is not the original's checkout
is a one-line error."""

from __future__ import annotations

import json
import re

import pytest

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
