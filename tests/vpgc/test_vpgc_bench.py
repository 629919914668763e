"""`python -m vpgc.bench` runs (at its --tiny sizes), and the fast inference paths it times compute
exactly what the literal formulas compute."""

from __future__ import annotations

import json

import numpy as np
import torch
from vpgc_testlib import SMALL_DDCONFIG, make_frames

from vpgc import bench
from vpgc.model import GRID_WINDOW, Decoder, Encoder, GridQuantizer


def test_tiny_bench_writes_every_row(tmp_path, capsys):
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
    assert [row["kind"] for row in standard] == ["inference", "other", "inference", "training", "training"]
    for row in standard:
        assert row["seconds"] > 0 and row["peak_mb"] > 0 and row["notes"] == "", row
    stage2 = standard[2]
    assert stage2["gflop"] > 0 and stage2["achieved_gflops"] == stage2["gflop"] / stage2["seconds"]


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
