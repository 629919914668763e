"""lsr.bench --original: the pieces that need no original (checkout validation, the original's
defaults, the alternating timer, the output comparison) and, where a mirror of MoustafaMeshry/lsr
is found (tests/originals.py, $FR_ORIGINALS; not in CI), the side by side run at 64x64: same weights, same outputs.

The mirror is a bare git repository whose image blobs are absent, so only the Python files are
extracted (`git archive HEAD -- '*.py'`), which is all the bench imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from numerics import FORWARD
from originals import original_git

from lsr import bench_original

ROOT = Path(__file__).resolve().parents[2]


def test_parity_tolerance_is_the_suites_forward_tolerance():
    assert bench_original.PARITY == FORWARD


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    command = [sys.executable, "-m", "lsr.bench", "--original", str(tmp_path / "absent")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert len(errors) == 1 and "no such folder" in errors[0] and "Traceback" not in done.stderr


def test_a_folder_without_the_original_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "options.py").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        bench_original.bench(tmp_path, size=64, batch_size=1, repeats=1)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "not a checkout of MoustafaMeshry/lsr" in message
    assert "layers.py" in message and "options.py" not in message.split("(no ")[1]


def test_original_defaults_evaluate_constant_expressions(tmp_path):
    options = tmp_path / "options.py"
    options.write_text(
        "from absl import flags\n"
        "flags.DEFINE_integer('every', 1<<7, 'Steps.')\n"
        "flags.DEFINE_string('train_dir', './_train/' 'sanity_test', 'Dir.')\n"
        "flags.DEFINE_boolean('flag', False, 'A flag.')\n"
    )
    expected = {"every": 128, "train_dir": "./_train/sanity_test", "flag": False}
    assert bench_original.original_defaults(options) == expected


def test_alternate_warms_up_then_interleaves_and_times_each_call():
    now, order = [0.0], []

    def clock():
        return now[0]

    def call(name, cost):
        def run():
            order.append(name)
            now[0] += cost
            return name.upper()

        return run

    first, seconds = bench_original.alternate({"ours": call("ours", 1.0), "original": call("original", 3.0)}, 2, clock)
    assert first == {"ours": "OURS", "original": "ORIGINAL"}
    assert order == ["ours", "original"] * 3
    assert seconds == {"ours": [1.0, 1.0], "original": [3.0, 3.0]}


def test_relative_difference_is_a_fraction_of_the_expected_magnitude():
    expected = {"output": [[-4.0, 2.0]], "loss": 10.0, "only_expected": 1.0}
    actual = {"output": [[-4.0, 2.2]], "loss": 10.0, "only_actual": 5.0}
    assert bench_original.relative_difference(actual, expected) == pytest.approx(0.2 / 4.0)
    comparison = bench_original.Comparison("s", "path", "inference", "frame", ours=0.5, original=1.0, difference=1e-4)
    assert comparison.ratio == 2.0 and not comparison.agrees


def test_rows_hold_ours_once_per_stage_and_every_path_of_the_original():
    Comparison = bench_original.Comparison
    comparisons = [
        Comparison("inference", "infer step", "inference", "frame", 0.5, 2.0, 0.0, ["output"], {"ours": 900.0}),
        Comparison("inference", "forward", "inference", "frame", 0.5, 0.6, 1e-6, ["output"]),
        Comparison("train", "train step", "training", "step", 2.0, 2.5, 1e-3, ["loss loss_g"]),
    ]
    rows = bench_original.rows(comparisons, "cpu")
    assert [(row.method, row.seconds) for row in rows] == [
        ("lsr", 0.5),
        ("lsr-original", 2.0),
        ("lsr-original", 0.6),
        ("lsr", 2.0),
        ("lsr-original", 2.5),
    ]
    assert rows[0].peak_mb == 900.0 and rows[1].peak_mb is None
    assert "4.00x" in rows[1].notes and rows[3].kind == "training" and rows[3].unit == "step"
    table = bench_original.table(comparisons)
    assert table.count("agree") == 2 and table.count("DIFFER") == 1


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory):
    mirror = original_git("MoustafaMeshry/lsr")
    folder = tmp_path_factory.mktemp("lsr_original")
    command = ["git", "-C", str(mirror), "archive", "HEAD", "--", "*.py"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


# The original's modules take top-level names (layers, models, data...): each run in its own process.
SIDE_BY_SIDE = """
import json, sys
from lsr import bench_original as b
original = b.Original(b.check_original(sys.argv[1]))
calls = b.{function}
first, seconds = b.alternate(calls, 1)
print(json.dumps({{"names": sorted(calls), "differences": {{n: b.relative_difference(first["ours"], first[n])
    for n in calls if n != "ours"}}, "compared": sorted(first["ours"].keys() & first["original"].keys()),
    "torch": "torch" in sys.modules}}))
"""


def side_by_side(folder: Path, function: str) -> dict:
    script = SIDE_BY_SIDE.format(function=function)
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_inference_beside_the_original_gives_the_same_frame(original_checkout):
    result = side_by_side(original_checkout, "inference_calls(original, 64)")
    assert result["names"] == ["original", "original forward", "ours"]
    assert result["compared"] == ["output"] and not result["torch"]
    for name, difference in result["differences"].items():
        assert difference <= FORWARD, name


@pytest.mark.slow
def test_a_training_step_beside_the_original_gives_the_same_losses(original_checkout):
    result = side_by_side(original_checkout, "training_calls(original, 64, 1)")
    assert "loss loss_g" in result["compared"] and "output" in result["compared"]
    assert result["differences"]["original"] <= FORWARD
