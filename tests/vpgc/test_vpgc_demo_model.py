"""`python -m vpgc.demo_model`: the committed demo model loads strictly through the official loaders,
a tiny end-to-end run (one step per stage on a small sample) writes a loadable model in the official
layouts without the held-out frames, and bad input is a one-line error with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vpgc import demo_model
from vpgc.checkpoint import load_stage1, load_stage2, read_checkpoint
from vpgc.config import load_config
from vpgc.model import PriorTrans, VQGridModel, landmark_encoder

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 12  # training_count(12) = 8: frames 8-11 are held out


@pytest.fixture(scope="module")
def sample(make_small_sample) -> Path:
    return make_small_sample(FRAMES, 64)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vpgc.demo_model", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def load_with_official_loaders(folder: Path) -> None:
    """The stage-1 file into the inference VQGridModel, Enc/Imp into the landmark encoder and PriorTrans."""
    stage1, encoder_file, implicit_file, config_file = demo_model.demo_files(folder)
    config = load_config(config_file)
    load_stage1(stage1, VQGridModel.from_config(config, with_loss=False))
    size = config["model"]["params"]["ddconfig"]["resolution"]
    encoder = landmark_encoder(size, demo_model.LANDMARK_CH, demo_model.LANDMARK_CH_MULT)
    load_stage2(encoder_file, implicit_file, encoder, PriorTrans())


def test_committed_demo_model_loads_strictly_and_stays_small():
    files = demo_model.demo_files()
    assert all(f.is_file() for f in files), f"missing demo-model files: {files}"
    load_with_official_loaders(demo_model.DEMO_DIR)
    assert sum(f.stat().st_size for f in files) < 10 * 2**20
    assert demo_model.load_demo_model().resolution == 64


def test_tiny_run_writes_the_official_layouts_from_training_frames_only(sample, tmp_path):
    work, out = tmp_path / "work", tmp_path / "model"
    result = run("--sample", str(sample), "--work", str(work), "--out", str(out), "--stage1_steps", "1",
                 "--stage2_steps", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (work / "subject" / "images" / "train").iterdir()) == [
        f"{i:05d}.png" for i in range(8)
    ]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Enc_00000002.ckpt", "Imp_00000002.ckpt", "N-Step-Checkpoint_0_1.ckpt", "config.yaml"]
    content = read_checkpoint(out / "N-Step-Checkpoint_0_1.ckpt")
    assert content["global_step"] == 1 and not any(k.startswith("loss.") for k in content["state_dict"])
    assert all(v.dtype == torch.float16 for v in content["state_dict"].values() if v.is_floating_point())
    assert all(k.startswith("module.") for k in read_checkpoint(out / "Enc_00000002.ckpt")["encoder"])
    load_with_official_loaders(out)


@pytest.mark.parametrize(
    "args, message",
    [(["--stage1_steps", "0"], "--stage1_steps must be at least 1"), ([], "tools.make_sample_data")],
)
def test_bad_input_is_a_one_line_error(tmp_path, sample, args, message):
    where = sample if args else tmp_path / "nothing"
    result = run("--sample", str(where), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
