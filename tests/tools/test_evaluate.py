"""python -m tools.evaluate scores frame folders and videos against ground truth, a driver and an identity."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from common.errors import InputError
from common.image import list_images, read_image, write_image
from tools.evaluate import main
from tools.evaluation import align, parse_panel, parse_selection


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A real 12-frame sample at 128 px: the astronaut moving (driving/), Grace Hopper moving (driving_2/)."""
    from tools.make_sample_data import main as make_sample

    out = tmp_path_factory.mktemp("sample")
    make_sample(["--out", str(out), "--frames", "12", "--size", "128"])
    return out


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_identical_frames_score_perfectly_and_the_baseline_does_not(sample, tmp_path):
    main(
        ["--generated", f"copy={sample / 'driving'}", "--reference", str(sample / "driving")]
        + ["--source", str(sample / "source.png"), "--frames", "8-11", "--out", str(tmp_path)]
        + ["--metrics", "l1,psnr,ssim,ms_ssim,akd,csim"]
    )
    rows = read_csv(tmp_path / "per_frame.csv")
    copy = [row for row in rows if row["method"] == "copy"]
    baseline = [row for row in rows if row["method"] == "source unchanged"]
    assert [row["frame"] for row in copy] == ["00008", "00009", "00010", "00011"] == [r["frame"] for r in baseline]
    for row in copy:
        assert float(row["psnr"]) == math.inf and float(row["ssim"]) == 1.0 and float(row["l1"]) == 0.0
        assert float(row["akd"]) == 0.0 and float(row["missing_keypoints"]) == 0.0
        assert float(row["csim"]) > 0.9  # the astronaut moving is still the astronaut
    for row in baseline:
        assert 10 < float(row["psnr"]) < 30 and float(row["ssim"]) < 0.9 and float(row["akd"]) > 0.5
        assert float(row["csim"]) == pytest.approx(1.0)  # the source image itself

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"]["copy"]["mean"]["psnr"] == "inf" and summary["methods"]["copy"]["count"] == 4
    assert summary["methods"]["copy"]["missing_keypoint_rate"] == 0.0
    table = (tmp_path / "metrics.md").read_text()
    assert "PSNR dB ↑" in table and "L1 ↓" in table and "| source unchanged |" in table and "∞" in table
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_video_is_matched_by_frame_index(sample, tmp_path):
    from common.video import write_video

    video = write_video(tmp_path / "clip.mp4", (read_image(p) for p in list_images(sample / "driving")))
    main(
        ["--generated", f"video={video}", "--reference", str(sample / "driving")]
        + ["--metrics", "psnr,ssim", "--frames", "0,5", "--out", str(tmp_path / "out")]
    )
    rows = read_csv(tmp_path / "out" / "per_frame.csv")
    assert [row["frame"] for row in rows] == ["00000", "00005"]
    assert all(30 < float(row["psnr"]) < math.inf and float(row["ssim"]) > 0.9 for row in rows)  # H.264, crf 15


def test_one_panel_of_side_by_side_outputs(sample, tmp_path):
    """LSR-style panels [landmarks | output | ground truth]: output and reference cut from the same files."""
    for path in list_images(sample / "driving")[:2]:
        frame = read_image(path)
        write_image(tmp_path / "panels" / path.name, np.concatenate([255 - frame, frame, frame], axis=1))
    panels = str(tmp_path / "panels")
    main(
        ["--generated", f"m={panels}", "--panel", "m=1/3", "--reference", panels, "--panel", "reference=0,2/1,3"]
        + ["--metrics", "psnr", "--out", str(tmp_path / "out")]
    )
    assert [float(row["psnr"]) for row in read_csv(tmp_path / "out" / "per_frame.csv")] == [math.inf] * 2


def test_cross_identity_against_the_driver_and_an_identity(sample, tmp_path):
    """Grace Hopper moving as the astronaut does: her identity kept, the driver's motion copied."""
    main(
        ["--generated", f"hopper={sample / 'driving_2'}", "--driving", str(sample / "driving")]
        + ["--identity", str(sample / "source_2.png"), "--frames", "0-1", "--out", str(tmp_path)]
        + ["--metrics", "akd,pose,expression,aed,csim"]
    )
    row = read_csv(tmp_path / "per_frame.csv")[0]
    assert {"akd_driving", "pose_driving", "expression_driving", "aed", "csim"} <= set(row)
    assert float(row["csim"]) > 0.9 and float(row["aed"]) < 0.6  # dlib: same person below 0.6
    assert 0 < float(row["akd_driving"]) < 20 and 0 <= float(row["pose_driving"]) < 30
    assert "AKD px (dlib) to driver ↓" in (tmp_path / "metrics.md").read_text()


def test_lpips_and_fid_without_weights_are_skipped_with_a_note(sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FR_METRICS_WEIGHTS", str(tmp_path / "no_weights"))
    main(
        ["--generated", f"copy={sample / 'driving'}", "--reference", str(sample / "driving")]
        + ["--frames", "11", "--out", str(tmp_path / "out")]
    )
    report = (tmp_path / "out" / "metrics.md").read_text()
    assert "LPIPS skipped" in report and "FID skipped" in report
    assert "LPIPS" not in report.splitlines()[0] and "FID" not in report.splitlines()[0]
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["--generated", f"copy={sample / 'driving'}", "--reference", str(sample / "driving")]
            + ["--metrics", "lpips", "--out", str(tmp_path / "out2")]
        )
    assert exit_info.value.code == 2 and "vgg.pth" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case",
    ["missing folder", "empty folder", "mismatched counts", "unknown metric", "bad selection", "no targets", "panel"],
)
def test_bad_input_is_one_line_and_exit_2(sample, tmp_path, capsys, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    few = tmp_path / "few"
    for index in range(3):
        write_image(few / f"frame_{index}.png", read_image(sample / "driving" / "00000.png"))
    generated, reference, extra = sample / "driving", sample / "driving", []
    if case == "missing folder":
        generated = tmp_path / "nowhere"
    elif case == "empty folder":
        generated = empty
    elif case == "mismatched counts":
        generated = few
    elif case == "unknown metric":
        extra = ["--metrics", "psnr,sharpness"]
    elif case == "bad selection":
        extra = ["--frames", "forty"]
    elif case == "panel":
        extra = ["--panel", "other=1/2"]
    args = ["--generated", f"m={generated}", "--out", str(tmp_path / "out"), *extra]
    if case != "no targets":
        args += ["--reference", str(reference)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_frame_selection_and_alignment():
    assert parse_selection("0,40-42") == {0, 40, 41, 42}
    assert parse_panel("3/5") == (0, 3, 1, 5) and parse_panel("1,1/2,4") == (1, 1, 2, 4)
    with pytest.raises(InputError, match="INDEX/COUNT"):
        parse_panel("5/5")
    frames = {name: np.full((2, 2, 3), i, np.uint8) for i, name in enumerate(["a", "b"])}
    assert [f[0, 0, 0] for f in align(["00000", "00001"], frames, "ref")] == [0, 1]  # by position
    assert [f[0, 0, 0] for f in align(["b"], frames, "ref")] == [1]  # by name
    with pytest.raises(InputError, match="no frame 'c'"):
        align(["c"], frames, "ref")
