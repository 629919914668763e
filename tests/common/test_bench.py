"""common.bench: the FLOP counter against hand counts (2 x multiply-adds), the matmul peak, the
rows' JSON round trip, and the ours-beside-original timing and comparison helpers."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from common import bench
from common.bench import (
    BenchRow,
    Comparison,
    best_alternating,
    count_flops,
    matmul_peak_gflops,
    read_rows_json,
    relative_difference,
    side_by_side_table,
    worst_difference,
    write_rows_json,
)
from common.errors import InputError


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_matmul_peak_is_a_positive_rate_and_keeps_the_thread_count(dtype):
    threads = torch.get_num_threads()
    rate = matmul_peak_gflops(size=128, dtype=dtype, threads=1, repeats=2)
    assert rate > 0 and torch.get_num_threads() == threads


def test_linear_counts_two_flops_per_multiply_add():
    batch, inputs, outputs = 3, 7, 5
    with torch.inference_mode():
        assert count_flops(torch.nn.Linear(inputs, outputs), torch.randn(batch, inputs)) == 2 * batch * outputs * inputs


def test_conv2d_counts_every_output_times_its_window():
    conv = torch.nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        flops = count_flops(conv, torch.randn(2, 3, 9, 9))
    outputs = 2 * 4 * 5 * 5  # batch x channels x 5 x 5 positions (stride 2 over 9 with padding 1)
    assert flops == 2 * outputs * 3 * 3 * 3


def test_cpu_attention_counts_both_products():
    batch, heads, queries, keys, dim = 2, 3, 5, 7, 8
    query = torch.randn(batch, heads, queries, dim)
    key = value = torch.randn(batch, heads, keys, dim)
    with torch.no_grad():
        flops = count_flops(torch.nn.functional.scaled_dot_product_attention, query, key, value)
    assert flops == 2 * 2 * batch * heads * queries * keys * dim  # scores, then scores x values


def test_rows_round_trip_with_the_achieved_rate(tmp_path):
    rows = [
        BenchRow("m", "forward", "inference", 0.5, "frame", peak_mb=100.0, gflop=20.0),
        BenchRow("m", "step", "training", 2.0, "step", notes="batch 1"),
    ]
    path = write_rows_json(tmp_path / "m.json", rows, "header line", {"details": {"a": 1}})
    report = json.loads(path.read_text())
    assert report["standard_rows"][0]["achieved_gflops"] == 40.0 and report["details"] == {"a": 1}
    assert report["standard_rows"][1]["achieved_gflops"] is None
    assert read_rows_json(path) == ("header line", rows)


def test_bad_rows_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        BenchRow("m", "s", "warmup", 1.0, "frame")
    with pytest.raises(ValueError, match="unit"):
        BenchRow("m", "s", "other", 1.0, "second")
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="standard_rows"):
        read_rows_json(path)


def test_side_by_side_table():
    rows = [
        {"stage": "G", "ours": 0.5, "unit": "s", "original": 0.75, "ratio": 1.5, "peak_mib": 1024.4, "note": ""},
        {"stage": "D", "ours": None, "unit": "s", "original": None, "ratio": None, "peak_mib": None, "note": "error"},
    ]
    lines = side_by_side_table(rows, "# bench").splitlines()
    assert lines[0] == "# bench" and lines[2].startswith("| stage | ours | original")
    assert lines[4] == "| G | 0.500 s | 0.750 | 1.50 | 1024 |  |"
    assert lines[5] == "| D | - | - | - | - | error |"


def test_best_alternating_takes_turns_after_an_untimed_warm_up(monkeypatch):
    """With a clock each call advances by its next duration: the warm-up round is untimed, the
    order reverses every other round, and each side's best timed duration is kept."""
    clock, order = [0.0], []
    durations = {"ours": iter([9.0, 3.0, 2.0, 4.0]), "original": iter([8.0, 1.5, 6.0, 5.0])}

    def call(name):
        def run():
            order.append(name)
            clock[0] += next(durations[name])
            return f"{name} {len(order)}"

        return run

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    best, first = best_alternating({"ours": call("ours"), "original": call("original")}, 3)
    assert order == ["ours", "original", "original", "ours", "ours", "original", "original", "ours"]
    assert first == {"ours": "ours 1", "original": "original 2"} and best == {"ours": 2.0, "original": 1.5}
    with pytest.raises(InputError):
        best_alternating({"ours": call("ours")}, 0)


def test_relative_difference_is_a_fraction_of_the_original_magnitude():
    expected = torch.tensor([[-4.0, 1.0], [0.0, 2.0]])
    moved = expected + torch.tensor([[0.0, 0.002], [0.0, 0.0]])
    assert relative_difference(moved, expected) == pytest.approx(5e-4, rel=1e-4)
    assert relative_difference(moved.numpy(), expected.numpy()) == pytest.approx(5e-4, rel=1e-4)
    assert relative_difference(torch.zeros(3), torch.zeros(3)) == 0.0
    with pytest.raises(ValueError):
        relative_difference(torch.zeros(3), torch.zeros(2))
    assert worst_difference({"a": moved, "b": expected}, {"a": expected, "b": expected}) == (
        pytest.approx(5e-4, rel=1e-4),
        "a",
    )
    comparison = Comparison("G", "inference", "frame", ours=1.0, original=1.5, worst=4e-5, worst_output="a")
    assert comparison.speedup == 1.5 and comparison.agrees
    assert not dataclasses.replace(comparison, worst=6e-5).agrees
