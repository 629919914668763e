"""tools.bench_scaling: its points at tiny network sizes (each in its own process through `main`, as
the real run does, LSR's without torch), the report of synthetic points, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import bench_scaling

ROOT = Path(__file__).resolve().parents[2]

# Narrow networks at 64 px (FSTH, LSR) and 128 px (FSRT's keypoint detector needs at least that).
TINY_LSR = {
    "G_num_upsamples": 4,
    "g_nf": 16,
    "segmap_g_nf": 16,
    "g_nf_max": 32,
    "spade_proj_filters": 16,
    "E_num_downsamples": 4,
    "e_nf": 8,
    "segmap_e_nf": 8,
    "style_nc": 32,
    "w_loss_gan": 0,
}
TINY = {
    "fsth_video": {"size": 64, "batch": 2, "config": str(ROOT / "fsth" / "runs" / "sample.yaml")},
    "fsrt_frame": {"size": 128, "num_pixels": 512, "width_scale": 0.125},
    "lsr_k_shot": {"size": 64, "overrides": TINY_LSR},
}


def test_fsth_video_is_embedding_plus_frames():
    times = bench_scaling.fsth_video(3, **TINY["fsth_video"])
    assert times["per_frame"] == pytest.approx(times["seconds"] / 3)
    assert times["generate_per_frame"] == pytest.approx((times["seconds"] - times["embed"]) / 3)
    assert 0 < times["embed"] < times["seconds"]
    assert "note" not in times  # E's embeddings and G's frames are finite after the power iteration


def test_fsrt_frame_scales_the_decoded_pixels_to_the_frame(monkeypatch):
    timed = iter([0.5, 0.05, 0.25])  # encode, z's keys and values, the decoder on 512 of 128 x 128 pixels
    monkeypatch.setattr(bench_scaling, "best_seconds", lambda call, *args: (call(), next(timed))[1])
    times = bench_scaling.fsrt_frame(2, **TINY["fsrt_frame"])
    decode = 0.05 + 0.2 * 128 * 128 / 512
    assert times == pytest.approx({"seconds": 0.5 + decode, "encode": 0.5, "decode_per_frame": decode})


def test_best_seconds_stops_after_a_long_call():
    calls = []
    assert bench_scaling.best_seconds(lambda: calls.append(1), repeats=2) >= 0 and len(calls) == 2
    assert bench_scaling.best_seconds(lambda: calls.append(1), repeats=2, within=0) >= 0 and len(calls) == 3


def tiny_series(monkeypatch) -> None:
    """SERIES with a tiny FSTH and FSRT series, two values each, one of them bad (-1 sources)."""
    series = {
        "frames": bench_scaling.Series(
            "frames", "frames", "fsth_video", "frames", (), (1, 3), (("seconds", "total s"), ("embed", "E s"))
        ),
        "sources": bench_scaling.Series(
            "sources", "sources", "fsrt_frame", "sources", (), (1, -1), (("seconds", "total s"),)
        ),
    }
    for name, record in series.items():
        series[name] = bench_scaling.dataclasses.replace(record, quick_params=TINY[record.point])
    monkeypatch.setattr(bench_scaling, "SERIES", series)


def test_main_measures_each_point_in_its_own_process(tmp_path, monkeypatch):
    tiny_series(monkeypatch)
    out = tmp_path / "out"
    assert bench_scaling.main(["--quick", "--out", str(out), "--timeout", "120"]) == 0
    report = json.loads((out / "scaling.json").read_text())
    assert list(report["series"]) == ["frames", "sources"]
    frames = report["series"]["frames"]["points"]
    assert [point["value"] for point in frames] == [1, 3]
    assert all(point["peak_mb"] > 0 and point["load"] >= 0 for point in frames)
    assert frames[1]["seconds"] > frames[1]["embed"] > 0
    fit = report["series"]["frames"]["fit"]
    assert fit[0] + 3 * fit[1] == pytest.approx(frames[1]["seconds"])
    good, bad = report["series"]["sources"]["points"]
    assert good["seconds"] > 0 and bad["error"].startswith("exit status 1: ")
    assert report["series"]["sources"]["fit"] is None  # one point is no line
    assert (out / "scaling.png").stat().st_size > 0
    assert "| -1 | - | - | - | exit status 1: " in (out / "scaling.md").read_text()


def test_lsr_point_runs_in_a_process_without_torch(tmp_path):
    # what `main` runs for an LSR point, in a process where importing torch raises
    run = "import runpy, sys; sys.modules['torch'] = None; runpy.run_module('tools.bench_scaling', run_name='__main__')"
    spec = json.dumps({"point": "lsr_k_shot", "kwargs": {"k": 2, **TINY["lsr_k_shot"]}})
    result = tmp_path / "k2.json"
    command = [sys.executable, "-c", run, "--point", spec, "--result", str(result)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    times = json.loads(result.read_text())
    assert times["seconds"] == pytest.approx(times["latents"] + times["per_frame"]) and times["peak_mb"] > 0


def synthetic_results() -> dict:
    return {
        "frames": {
            "points": [
                {"value": 1, "seconds": 2, "per_frame": 2, "embed": 0.5, "generate_per_frame": 1.5}
                | {"peak_mb": 900, "load": 1.5},
                {"value": 8, "seconds": 9, "per_frame": 1.1, "embed": 0.5, "generate_per_frame": 1, "peak_mb": 1500},
                {"value": 16, "error": "timed out after 600 s", "wall_seconds": 600},
            ]
        },
        "fsth_resolution": {
            "points": [
                {"value": 128, "generate_per_frame": 0.5, "embed": 0.1, "peak_mb": 800, "note": "NaN | inf"},
                {"value": 256, "generate_per_frame": 1.1, "embed": 0.4, "peak_mb": 1600},
            ]
        },
    }


MACHINE = {
    "date": "2026-12-02 09:00 UTC",
    "processor": "CPU",
    "threads": "2",
    "quick": False,
    "seconds": 300.0,
    "load_before": 1.0,
    "load_after": 2.0,
}


def test_report_tables_fits_json_and_plot(tmp_path):
    paths = bench_scaling.write_report(tmp_path, synthetic_results(), MACHINE)
    assert [path.name for path in paths] == ["scaling.md", "scaling.json", "scaling.png"]
    table = paths[0].read_text()
    assert "| frames | total s | s / frame | E s | G s / frame | peak MB | load | notes |" in table
    assert "| 1 | 2 | 2 | 0.5 | 1.5 | 900 | 1.5 |  |" in table
    assert "| 16 | - | - | - | - | - | - | timed out after 600 s |" in table
    # two points: the line through them, 2 = a + b and 9 = a + 8 b; resolution against px^2
    assert "Least-squares line: total s = 1 + 1 x frames." in table
    slope = 0.6 / (256**2 - 128**2)
    assert f"G s / frame = 0.3 + {slope:.3g} x px^2." in table
    assert "| 128 | 0.5 | 0.1 | 800 | - | NaN \\| inf |" in table
    assert "load average 1.0 before, 2.0 after" in table
    report = json.loads(paths[1].read_text())
    assert set(report) == {"machine", "series"} and report["machine"] == MACHINE
    assert report["series"]["frames"]["fit"] == pytest.approx([1.0, 1.0])
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        bench_scaling.main(["--out", str(path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --out {path}: exists and is not a folder\n"


@pytest.mark.parametrize("argv", [["--only", "frames,nope"], ["--point", "{}", "--result", "x.json"]])
def test_bad_series_or_point_is_a_one_line_error(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        bench_scaling.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
