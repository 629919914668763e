"""lsr.sample_demo --quick_fit on an 8-frame sample: the recipe trained from scratch for two
steps renders both parts, labelled as a quick fit in run.json and README.txt, without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from common.image import read_image

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=180)


def test_quick_fit_renders_both_parts_and_is_labelled(tmp_path):
    sample, out = tmp_path / "sample", tmp_path / "lsr"
    result = _run("-m", "tools.make_sample_data", "--out", str(sample), "--frames", "8", "--size", "128")
    assert result.returncode == 0, result.stderr
    code = (
        "import sys; from lsr import sample_demo; "
        f"sample_demo.main(['--sample', {str(sample)!r}, '--out', {str(out)!r}, '--quick_fit', '--steps', '2']); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert (info["model"], info["checkpoint"], info["size"]) == ("quick fit", "the quick fit", 64)
    for part in ("self", "cross"):
        frames = sorted((out / part / "frames").glob("*.png"))
        assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(8)]
        assert read_image(frames[0]).shape == (64, 64, 3)
    text = (out / "README.txt").read_text()
    assert text.startswith("QUICK FIT on the sample, NOT the official model") and "for 2 steps" in text
