"""python -m tools.compare_demo scores every method's make-demo output on the sample, with baselines and pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.image import list_images, read_image, write_image
from common.sample_demo import write_run_info
from tools.compare_demo import HEADER, TILE, main

SELF_ROWS, CROSS_ROWS = 4, 2  # frames shown on the contact sheet


def fake_method(demo, sample, name, size, kind, degrade, parts_root):
    """A method folder whose self frames are the ground truth (through `degrade`) and whose cross
    frames are the second identity's own clip, with the run.json a sample_demo step writes."""
    out = demo / name
    for path in list_images(sample / "driving"):
        write_image(out / "self" / "frames" / path.name, degrade(read_image(path, size)))
        write_image(out / "cross" / "frames" / path.name, read_image(sample / "driving_2" / path.name, size))
    parts = {
        "self": {"frames": "self/frames", "source": parts_root / "source.png", "driving": parts_root / "driving"},
        "cross": {"frames": "cross/frames", "source": parts_root / "source_2.png", "driving": parts_root / "driving"},
    }
    parts["self"]["identity"], parts["cross"]["identity"] = parts["self"]["source"], parts["cross"]["source"]
    write_run_info(out, name, kind, f"{name}.pt", size, parts, seconds_per_frame=0.25)


def blur(image):
    """A worse but still recognisable reenactment: a 3x3 box blur."""
    padded = np.pad(image.astype(np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    total = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))
    return np.round(total / 9).astype(np.uint8)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A 12-frame sample (frames 8-11 held out), two fake methods at two sizes, and the comparison.
    `blurry`'s run.json names the sample where `make demo` would have seen it (demo_output/sample),
    which does not exist here: its inputs are found in --sample by name."""
    from tools.make_sample_data import main as make_sample

    root = tmp_path_factory.mktemp("demo")
    demo, sample = root / "demo_output", root / "elsewhere" / "sample"
    make_sample(["--out", str(sample), "--frames", "12", "--size", "128"])
    fake_method(demo, sample, "exact", 64, "demo model", lambda image: image, sample)
    fake_method(demo, sample, "blurry", 96, "quick fit", blur, root / "missing" / "demo_output" / "sample")
    with pytest.MonkeyPatch.context() as patch:  # no LPIPS weights, even where checkpoints/metrics has them
        patch.setenv("FR_METRICS_WEIGHTS", str(root / "no_weights"))
        main(["--demo", str(demo), "--sample", str(sample), "--out", str(demo / "compare")])
    return demo / "compare"


def test_every_output_is_written(compared):
    names = ["metrics.md", "metrics.json", "metrics.png", "contact_sheet.png", "self.mp4", "cross.mp4", "README.txt"]
    assert all((compared / name).is_file() for name in names)
    assert (compared / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_self_reenactment_is_scored_on_the_held_out_frames_and_ranked(compared):
    report = json.loads((compared / "metrics.json").read_text())
    assert report["held_out_frames"] == ["00008", "00009", "00010", "00011"]
    methods = report["self"]["methods"]
    assert set(methods) == {"exact", "blurry", "source unchanged 64px", "source unchanged 96px"}
    assert list(methods["exact"]["per_frame"]) == report["held_out_frames"]
    assert methods["exact"]["mean"]["psnr"] == "inf" and methods["exact"]["mean"]["akd"] == 0.0
    assert methods["exact"]["model"] == "demo model" and methods["blurry"]["seconds_per_frame"] == 0.25
    for column in ("psnr", "ssim", "l1"):
        ranking = report["self"]["ranking"][column]
        assert ranking.index("exact") < ranking.index("blurry") < ranking.index("source unchanged 96px"), column
    assert set(report["self"]["ranking"]["akd"][:2]) == {"exact", "blurry"}  # a blur barely moves landmarks
    assert "lpips" not in report["self"]["columns"]  # no weights here: skipped, and said so
    assert any("LPIPS skipped" in note for note in report["notes"])


def test_cross_identity_keeps_the_identity_and_follows_the_driver(compared):
    cross = json.loads((compared / "metrics.json").read_text())["cross"]
    assert set(cross["columns"]) == {"akd_driving", "pose_driving", "expression_driving", "aed", "csim"}
    exact = cross["methods"]["exact"]
    assert exact["count"] == 12 and exact["mean"]["csim"] > 0.9
    static = cross["methods"]["source unchanged 64px"]
    assert static["mean"]["csim"] == pytest.approx(1.0)  # the identity image itself


def test_tables_readme_and_missing_methods(compared):
    table = (compared / "metrics.md").read_text()
    assert "held-out frames 00008-00011" in table and "| exact |" in table and "| source unchanged 96px |" in table
    assert "s/frame" in table and "peak MB" in table and "exact.pt" in table
    assert "Not scored: fsth: no run.json" in table
    readme = (compared / "README.txt").read_text()
    assert "exact: a DEMO MODEL" in readme and "blurry: a QUICK FIT" in readme
    assert "not scored: vfa: no run.json" in readme


def test_contact_sheet_and_videos(compared):
    from common.video import video_info

    sheet = read_image(compared / "contact_sheet.png")
    columns = 2 + 2  # source, driving, two methods
    assert sheet.shape == (2 * HEADER + (SELF_ROWS + CROSS_ROWS) * TILE, columns * TILE, 3)
    assert sheet[:HEADER].mean() > 200  # white label strip
    for part in ("self", "cross"):
        info = video_info(compared / f"{part}.mp4")
        assert (info.width, info.height, info.frames) == (columns * TILE, HEADER + TILE, 12)


def test_no_methods_is_one_line_and_exit_2(compared, tmp_path, capsys):
    (tmp_path / "demo" / "fsth").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--demo", str(tmp_path / "demo"), "--sample", str(compared.parent.parent / "elsewhere" / "sample")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no method folder holds a run.json" in err and err.count("\n") == 1
