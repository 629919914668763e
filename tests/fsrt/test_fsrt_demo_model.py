"""`python -m fsrt.demo_model`: the committed demo model loads strictly through fsrt.checkpoint's
loaders; a tiny end-to-end run trains on the training frames only and writes loadable files in the
official layouts; bad input is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.errors import CheckpointMismatchError
from fsrt import demo_model
from fsrt.checkpoint import FSRT_PARTS, load_kp_detector

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 12  # training_count(12) = 8: frames 8-11 are held out


@pytest.fixture(scope="module")
def sample(make_small_sample) -> Path:
    return make_small_sample(FRAMES, 128)


def test_committed_demo_model_loads_strictly():
    detector, model = demo_model.load_demo_model()
    content = torch.load(demo_model.DEMO_DIR / demo_model.MODEL_FILE, map_location="cpu", weights_only=True)
    assert set(FSRT_PARTS) <= set(content) and "optimizer" not in content
    # the detector file is a flat KPDetector state dict: the released architecture does not fit it
    with pytest.raises(CheckpointMismatchError):
        load_kp_detector(demo_model.DEMO_DIR / demo_model.DETECTOR_FILE)
    frames = torch.rand(2, 3, demo_model.SIZE, demo_model.SIZE)
    with torch.no_grad():
        keypoints, expression = model.keypoints_and_expression(detector, frames)
        z = model.encode(frames[:1, None], keypoints[:1, None], expression[:1, None])
        image = model.render(z.expand(2, -1, -1), keypoints, expression, demo_model.SIZE, demo_model.SIZE)
    assert image.shape == (2, 3, demo_model.SIZE, demo_model.SIZE) and torch.isfinite(image).all()
    size_mb = sum(p.stat().st_size for p in demo_model.DEMO_DIR.iterdir()) / 2**20
    assert size_mb < 9


def test_end_to_end_tiny_run_writes_loadable_files(sample, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    command = [sys.executable, "-m", "fsrt.demo_model", "--sample", str(sample), "--work", str(work)]
    command += ["--out", str(out), "--steps", "2", "--detector_steps", "2"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [demo_model.DETECTOR_FILE, demo_model.MODEL_FILE]
    detector, model = demo_model.load_demo_model(out)
    assert detector.num_kp == 10 and not model.training
    # both identities: the still plus the 8 training frames each; held-out frames never written
    videos = sorted((work / "data" / "train").iterdir())
    assert [len(list(v.glob("*.png"))) for v in videos] == [9, 9]
    assert sorted(p.name for p in (work / "kp").iterdir()) == sorted(f"{v.name}.npy" for v in videos)


def test_detector_targets_span_the_heatmap_grid():
    # 64-px frames subsampled x4 to 16 px, a 10-cell heatmap: its first / last cell sits on the
    # 16-px pixel 3 / 12, i.e. frame pixel 12 / 48, which map to -1 / 1 of the soft-argmax grid
    marks = torch.zeros(1, 68, 2).numpy()
    marks[0, list(demo_model.KEYPOINT_LANDMARKS)] = [[12, 48]] * 10
    targets = demo_model.heatmap_targets(marks, 64, 16, 10)
    assert targets.shape == (1, 10, 2)
    assert torch.allclose(targets[0, :, 0], torch.full((10,), -1.0))
    assert torch.allclose(targets[0, :, 1], torch.ones(10))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sample", "MISSING"], "make_sample_data"),
        (["--sample", "SAMPLE", "--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_bad_input_is_a_one_line_error(sample, tmp_path, capsys, args, message):
    args = [str(tmp_path / "nope") if a == "MISSING" else str(sample) if a == "SAMPLE" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        demo_model.main([*args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_committed_demo_model_in_bf16_renders_the_float32_frames(sample):
    """A trained model's frames (unlike a random one's) have real contrast: what --precision bf16
    costs in fidelity shows here."""
    from common.image import read_image
    from common.precision import frame_agreement
    from fsrt import animate

    detector, model = demo_model.load_demo_model()

    def frames(*names):
        return animate.to_tensor([animate.prepare(read_image(sample / name), demo_model.SIZE) for name in names])

    source, driving = frames("source.png"), frames(*(f"driving/{i:05d}.png" for i in range(4)))
    fp32, bf16 = (
        animate.animate(model, detector, source, driving, relative=True, adapt_scale=True, precision=precision)
        for precision in ("fp32", "bf16")
    )
    agreement = frame_agreement(fp32, bf16)
    # measured 51 dB, at most 6 levels (frames' std 0.26); 30 dB leaves room for other CPUs' kernels
    assert 30 < agreement["psnr_db"] < float("inf")
