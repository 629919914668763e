"""lsr.bench --precisions: a bf16 row after each fp32 inference row, whose label, GFLOP and empty
notes stay as without bf16 (notes with the speed-up and the frames' agreement, which is close
because both models hold the same weights); fp16 on the CPU is a one-line error. One bench run
(~25 s on 2 cores: the default networks' random initialisation dominates)."""

from __future__ import annotations

import re

import pytest
import tensorflow as tf

from common.bench import read_rows_json
from lsr import bench

# The smallest resolution the default encoders take (2**E_num_downsamples); one timed iteration.
ARGS = ["--resolution", "64", "--iters", "1", "--skip_train"]
NOTE = re.compile(r"x\d+\.\d\d vs fp32; frames vs fp32 (\d+\.\d) dB PSNR, max \d+ levels")
# Random weights at bfloat16 moved 64 px frames by ~37 dB PSNR; models with different weights
# (what a weight copy gone wrong would time) differ by far more (~6 dB).
MIN_PSNR_DB = 25.0


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """The rows of the default run (fp32 and bf16 on the CPU)."""
    tf.keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("lsr_bench") / "rows.json"
    assert bench.main([*ARGS, "--precisions", "fp32", "bf16", "--json", str(path)]) == 0
    return read_rows_json(path)[1]


def test_bf16_rows_follow_each_fp32_inference_row(rows):
    assert [row.stage for row in rows] == [
        "inference K=1",
        "inference K=1 [bf16]",
        "inference K=4",
        "inference K=4 [bf16]",
    ]
    for fp32, bf16 in (rows[:2], rows[2:]):
        assert (bf16.kind, bf16.unit, bf16.gflop, bf16.device) == (fp32.kind, fp32.unit, fp32.gflop, fp32.device)
        assert fp32.notes == "" and bf16.seconds > 0
        assert float(NOTE.fullmatch(bf16.notes).group(1)) > MIN_PSNR_DB, bf16.notes


def test_fp16_on_the_cpu_is_a_one_line_error(capsys):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("fp16 runs on a GPU")
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*ARGS, "--precisions", "fp32", "fp16"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --precision fp16 is for GPUs; on the CPU use bf16\n"
