"""FSRT training on a tiny vox-layout dataset: the loss falls, resume is exact, bad keys are one-line errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fsrt.model import KPDetector
from fsrt.train import train

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


@pytest.fixture(scope="module")
def vox(tmp_path_factory) -> Path:
    """data/{train,val}/<id>#clip#0#12.mp4 (and a frame folder) + keypoints/<name>.npy in 256-px units."""
    base = tmp_path_factory.mktemp("vox")
    subprocess.run([sys.executable, "-m", "tools.make_sample_data", "--out", str(base / "sample"),
                    "--frames", "12", "--size", str(SIZE)], cwd=ROOT, check=True, capture_output=True)
    sample = base / "sample"
    landmarks = np.stack([np.load(p) for p in sorted((sample / "landmarks" / "driving").glob("*.npy"))])
    landmarks = landmarks * (256 / SIZE)
    for split, name in (("train", "id001#clip#0#12"), ("val", "id002#clip#0#12")):
        (base / "data" / split).mkdir(parents=True)
        shutil.copy(sample / "driving.mp4", base / "data" / split / f"{name}.mp4")
    shutil.copytree(sample / "driving", base / "data" / "train" / "id003#frames#0#12")
    (base / "kp").mkdir()
    for name in ("id001#clip#0#12", "id002#clip#0#12", "id003#frames#0#12"):
        np.save(base / "kp" / f"{name}.npy", landmarks.astype(np.float32))
    return base


def tiny_config(base: Path, **training) -> dict:
    return {
        "data": {"data_path": str(base / "data"), "kp_path": str(base / "kp"), "num_pixels_phase1": 128,
                 "num_pixels": 1024},
        "model": {"expression_size": 8, "small_decoder": True,
                  "encoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
                  "decoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1}},
        "discriminator": {"disc_kwargs": {"block_expansion": 8, "max_features": 16}},
        "training": {"batch_size": 2, "num_workers": 0, "lr_warmup": 1, "iters_in_phase1": 12,
                     "iters_in_phase2": 4, "disc_warmup_iters": 2, "perceptual_loss_weight": [0] * 5,
                     "checkpoint_every": 10, "backup_every": 0, "validate_every": 15, "print_every": 1,
                     **training},
    }


def detector() -> KPDetector:
    torch.manual_seed(1)
    return KPDetector(num_blocks=3)  # 64-px frames are too small for the 5-block hourglass


def test_loss_falls_and_resume_is_exact(vox, tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(vox)
    full = train(cfg, tmp_path / "full", kp_detector=detector(), max_it=20, frame_size=SIZE, show_progress=False)
    assert [r["it"] for r in full] == list(range(20))
    assert np.mean([r["mse"] for r in full[8:12]]) < np.mean([r["mse"] for r in full[:4]])
    assert any("gen_gan" in r for r in full) and any("disc_gan" in r for r in full)  # phase 3 reached
    first = train(cfg, tmp_path / "resumed", kp_detector=detector(), max_it=10, frame_size=SIZE, show_progress=False)
    assert [r["loss"] for r in first] == [r["loss"] for r in full[:10]]
    rest = train(cfg, tmp_path / "resumed", kp_detector=detector(), max_it=20, frame_size=SIZE, show_progress=False)
    assert [r["it"] for r in rest] == list(range(10, 20))
    assert [r["loss"] for r in rest] == [r["loss"] for r in full[10:]]
    assert (tmp_path / "full" / "log.csv").is_file() and any((tmp_path / "full" / "tensorboard").iterdir())


def test_unknown_config_key_is_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  batch_sise: 4\n")
    result = subprocess.run([sys.executable, "-m", "fsrt.train", str(config)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "batch_size" in result.stderr
