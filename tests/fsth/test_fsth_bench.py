"""fsth.bench's reduced-precision rows, on the small networks (the bench itself runs full-size ones)."""

from __future__ import annotations

import re

import pytest
import torch

from fsth import bench
from fsth.network import Generator


def test_timed_in_turns_alternates_and_keeps_the_warm_up_outputs():
    order = []

    def call(name):
        def run():
            order.append(name)
            return f"{name} output {len(order)}"

        return run

    seconds, outputs = bench._timed_in_turns({"fp32": call("fp32"), "bf16": call("bf16")}, 3, torch.device("cpu"))
    assert order == ["fp32", "bf16", "fp32", "bf16", "bf16", "fp32", "fp32", "bf16"]
    assert outputs == {"fp32": "fp32 output 1", "bf16": "bf16 output 2"}
    assert set(seconds) == {"fp32", "bf16"} and all(value >= 0 for value in seconds.values())


def test_bf16_rows_follow_the_fp32_row_with_speed_up_and_agreement(small):
    torch.manual_seed(0)
    device = torch.device("cpu")
    G = Generator(small["G_config"], small["embedding_dim"])
    y, e = torch.rand(2, 3, 32, 32), torch.randn(2, small["embedding_dim"])
    with torch.no_grad():
        G(y, e)  # train mode: the spectral norms' power iteration (random vectors saturate the outputs)
    G.eval()
    calls = {precision: bench._at(precision, device, G, y, e) for precision in ("fp32", "bf16")}
    with torch.no_grad():
        printed, rows = bench._inference_rows("G forward, batch 2", calls, lambda x: x, 2, 0.5, 1, device)
    assert [row.stage for row in rows] == ["G forward, batch 2", "G forward, batch 2 [bf16]"]
    assert [row[0] for row in printed] == [row.stage for row in rows]
    assert rows[0].notes == "" and all(row.kind == "inference" and row.gflop == 0.5 for row in rows)
    match = re.fullmatch(r"x(\d+\.\d\d) vs fp32; frames vs fp32 (\d+\.\d) dB PSNR, max (\d+) levels", rows[1].notes)
    assert match, rows[1].notes
    assert float(match[1]) == pytest.approx(rows[0].seconds / rows[1].seconds, abs=0.006)
    # bfloat16 (8 significant bits) moves G's sigmoid outputs by a level or two (measured 51.8 dB,
    # max 2 levels); a layer that breaks in bfloat16 moves them far more
    assert float(match[2]) > 40 and int(match[3]) <= 8


def test_fp16_on_the_cpu_is_a_one_line_error_before_benchmarking(monkeypatch, capsys):
    monkeypatch.setattr(bench, "bench", lambda *args: pytest.fail("benchmarked before checking --precisions"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--precisions", "fp32", "fp16", "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error:") and err.count("\n") == 1 and "fp16" in err
