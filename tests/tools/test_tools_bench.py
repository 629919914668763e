"""tools.bench: runs each bench in a subprocess and builds one table; a failing, silent or hung bench
is a row with its one-line error. The package benches are replaced by small scripts that write known
rows (the real ones take minutes); tools.bench_common runs for real on two frames."""

from __future__ import annotations

import json
import textwrap

import pytest

from tools import bench

FAKES = {
    "fake_ok": """
        import sys
        from common.bench import BenchRow, write_rows_json
        rows = [
            BenchRow("ok", "forward per frame", "inference", 0.5, "frame", 100.0, 10.0),
            BenchRow("ok", "train step", "training", 2.0, "step", 300.0, notes="a | b"),
        ]
        write_rows_json(sys.argv[sys.argv.index("--json") + 1], rows, "fake ok, " + " ".join(sys.argv[1:-2]))
    """,
    "fake_fails": """
        print("some progress")
        raise SystemExit("error: weights.pth: file not found")
    """,
    "fake_silent": "print('nothing written')",
    "fake_hangs": "import time; time.sleep(60)",
}


@pytest.fixture
def fake_benches(tmp_path, monkeypatch):
    """BENCHES replaced by the FAKES scripts, importable by the child processes."""
    folder = tmp_path / "fakes"
    folder.mkdir()
    for name, source in FAKES.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    benches = {name.removeprefix("fake_"): bench.Bench(name, ("--full",), ("--quick",)) for name in FAKES}
    monkeypatch.setattr(bench, "BENCHES", benches)


def test_one_table_with_each_failure_as_a_row(tmp_path, fake_benches, capsys):
    out = tmp_path / "out"
    assert bench.main(["--quick", "--out", str(out), "--matmul_size", "64", "--timeout", "3"]) == 0
    report = json.loads((out / "bench.json").read_text())
    peak = report["peaks_gflops"]["cpu"]["float32"]
    assert peak > 0 and report["peaks_gflops"]["cpu"]["bfloat16"] > 0
    forward, step, *failed = report["rows"]
    assert forward["achieved_gflops"] == 20.0 and forward["percent_of_float32_peak"] == pytest.approx(2000 / peak)
    assert step["seconds"] == 2.0 and step["gflop"] is None and step["percent_of_float32_peak"] is None
    assert [(row["method"], row["notes"]) for row in failed] == [
        ("fails", "exit status 1: error: weights.pth: file not found"),
        ("silent", f"no rows: [Errno 2] No such file or directory: '{out / 'raw' / 'silent.json'}'"),
        ("hangs", "timed out after 3 s"),
    ]
    assert report["benches"]["ok"]["header"] == "fake ok, --quick"  # the quick flags were passed
    table = (out / "bench.md").read_text()
    assert "| ok | forward per frame | 0.5 | frame | 100 | 10.0 | 20.0 |" in table
    assert "a \\| b" in table and "timed out after 3 s" in table
    measured = [report["machine"][when]["cpu"]["float32"] for when in ("peaks_before", "peaks_after")]
    assert peak == max(measured) and "before the benches" in table
    said = bench.BF16_SAID[report["machine"]["native_bf16"]]
    assert f"bfloat16 instructions: {said}." in table  # whether --precision bf16 can pay on this CPU
    assert (out / "raw" / "fails.log").read_text().startswith("some progress")
    assert "[4/4] hangs" in capsys.readouterr().err


def test_the_higher_of_the_peak_measurements_counts():
    """Load on a shared machine only lowers a measured rate: per device and dtype the highest is kept."""
    before = {"cpu": {"float32": 181.0, "bfloat16": 58.0}, "cuda": {"float32": 50_000.0, "bfloat16": 9e5}}
    after = {"cpu": {"float32": 342.0, "bfloat16": 55.0}, "cuda": {"float32": 49_000.0, "bfloat16": 1e6}}
    assert bench.higher_peaks(before, after) == {
        "cpu": {"float32": 342.0, "bfloat16": 58.0},
        "cuda": {"float32": 50_000.0, "bfloat16": 1e6},
    }


def test_only_runs_the_named_benches_with_their_full_flags(tmp_path, fake_benches):
    out = tmp_path / "out"
    assert bench.main(["--only", "ok", "--out", str(out), "--matmul_size", "64"]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert list(report["benches"]) == ["ok"] and report["benches"]["ok"]["header"] == "fake ok, --full"
    assert sorted(path.name for path in (out / "raw").iterdir()) == ["ok.json", "ok.log"]


def test_bench_common_runs_for_real(tmp_path, monkeypatch):
    monkeypatch.setitem(bench.BENCHES, "bench_common", bench.Bench("tools.bench_common", ("--frames", "2")))
    out = tmp_path / "out"
    assert bench.main(["--only", "bench_common", "--out", str(out), "--matmul_size", "64", "--threads", "1"]) == 0
    rows = json.loads((out / "bench.json").read_text())["rows"]
    stages = [row["stage"] for row in rows]
    assert stages[:4] == [
        "H.264 encode 256x256",
        "H.264 decode 256x256",
        "H.264 encode 512x512",
        "H.264 decode 512x512",
    ]
    assert all(row["seconds"] > 0 and row["peak_mb"] > 0 and row["unit"] == "frame" for row in rows)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "fsrt,nope"], "unknown bench 'nope'"),
        (["--only", ","], "unknown bench '(none)'"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--timeout", "0"], "must be positive"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--out", str(path)])
    assert exit_info.value.code == 2 and "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("error", [None, "exit status 1: error: boom"])
def test_scaling_runs_after_the_benches_and_is_linked(error, tmp_path, fake_benches, monkeypatch):
    """--scaling runs tools.bench_scaling into the same folder (here replaced: it takes minutes)."""
    run_logged, commands = bench.run_logged, []

    def scaling_replaced(command, log_path, env, timeout):
        if "tools.bench_scaling" not in command:
            return run_logged(command, log_path, env, timeout)
        commands.append((command[1:], log_path))
        return error

    monkeypatch.setattr(bench, "run_logged", scaling_replaced)
    out = tmp_path / "out"
    assert bench.main(["--only", "ok", "--quick", "--scaling", "--out", str(out), "--matmul_size", "64"]) == 0
    assert commands == [(["-m", "tools.bench_scaling", "--out", str(out), "--quick"], out / "raw" / "scaling.log")]
    scaling = json.loads((out / "bench.json").read_text())["scaling"]
    assert scaling["command"] == f"python -m tools.bench_scaling --out {out} --quick"
    assert scaling.get("error") == error
    said = error or "[scaling.md](scaling.md), [scaling.png](scaling.png), scaling.json"
    assert f"Scaling with the work: `{scaling['command']}` (0 s): {said}" in (out / "bench.md").read_text()
