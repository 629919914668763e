"""`python -m lsr.main --run_mode=infer --precision=...`: bf16 inference of the committed demo model
writes frames close to the fp32 ones (and not the same: the networks really compute in bfloat16,
with float32 weights and normalisations), fp16 on the CPU and reduced precision outside inference
are one-line errors (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from common.image import read_image, write_image
from common.precision import frame_agreement
from lsr import demo_model, engine
from lsr import main as lsr_main
from lsr.models import create_model

ROOT = Path(__file__).parents[2]
RECIPE = demo_model.recipe_options()  # the demo model's architecture, 64 px, K=1
SIZE = RECIPE["train_resolution"]
FOLDERS = "id00017_OLguY5ofUrY_combined--id00017_OLguY5ofUrY_combined--K01-meta"
# bfloat16 keeps 8 significant bits (~2-3 decimal digits): each convolution's output moves by up to
# ~0.4% of its size and the moves compound through ~40 layers, which the float32 normalisations
# keep from growing. The demo model's frames move by ~1.5 of 255 levels on average (measured 43 dB
# with oneDNN, 41 dB with TF_ENABLE_ONEDNN_OPTS=0); 35 dB (RMS 4.5 levels) leaves room for other
# kernels' rounding.
MIN_PSNR_DB = 35.0


def _args(**flags) -> list[str]:
    options = {**RECIPE, "run_mode": "infer", "few_shot_finetuning": False, **flags}
    return ["lsr.main"] + [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]


def _write_subject(folder: Path, astronaut, count: int, shift: int) -> Path:
    """`count` processed frames (face crop, its edge drawing as the landmark image, a label map)."""
    for i in range(count):
        crop = astronaut[20 + 8 * i + shift : 220 + 8 * i + shift, 160 + 5 * i : 360 + 5 * i]
        rgb = tf.image.resize(crop, (SIZE, SIZE), antialias=True).numpy().round().astype(np.uint8)
        gray = rgb.mean(-1)
        edges = np.abs(np.diff(gray, axis=0, prepend=gray[:1])) + np.abs(np.diff(gray, axis=1, prepend=gray[:, :1]))
        contour = np.repeat((np.clip(edges * 4, 0, 255)).astype(np.uint8)[..., None], 3, axis=-1)
        write_image(folder / f"{i:05d}_rgb.png", rgb)
        write_image(folder / f"{i:05d}_contour.png", contour)
        write_image(folder / f"{i:05d}_segmap_merged.png", (gray // 14).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def subject(tmp_path_factory, astronaut):
    root = tmp_path_factory.mktemp("lsr_precision")
    source = _write_subject(root / "train/id00017/OLguY5ofUrY/combined", astronaut, 1, 0)
    driver = _write_subject(root / "test/id00017/OLguY5ofUrY/combined", astronaut, 3, 24)
    return source, driver


def _infer(tmp_path: Path, subject, precision: str) -> np.ndarray:
    """The output panels (4th of 5) of the io tuples of an infer run, as [N, H, W, 3] in [0, 1]."""
    train_dir = tmp_path / precision
    shutil.copytree(demo_model.DEMO_DIR, train_dir)
    source, driver = subject
    lsr_main.main(_args(train_dir=train_dir, source_subject_dir=source, driver_subject_dir=driver, precision=precision))
    tuples = sorted((train_dir / "inference" / FOLDERS).glob("*_io_tuple.png"))
    assert len(tuples) == 3
    return np.stack([read_image(path)[:, 3 * SIZE : 4 * SIZE] for path in tuples]) / 255.0


def test_bf16_inference_writes_frames_close_to_fp32(tmp_path, subject):
    reference = _infer(tmp_path, subject, "fp32")
    frames = _infer(tmp_path, subject, "bf16")
    agreement = frame_agreement(reference, frames)
    assert MIN_PSNR_DB < agreement["psnr_db"] < float("inf"), agreement
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # the policy was restored


def test_bf16_layers_compute_in_bfloat16_with_float32_weights_and_norms():
    with engine.precision_policy("bf16"):
        model = create_model(demo_model.make_config(**RECIPE))
        model.build_networks()
    layers = [module for net in model.get_networks().values() for module in net.submodules]
    convs = [layer for layer in layers if isinstance(layer, tf.keras.layers.Conv2D)]
    # the generators' (lsr.layers.norm_factory names them so)
    norms = [layer for layer in layers if getattr(layer, "name", "") == "instance_normalization"]
    assert convs and norms
    assert {layer.compute_dtype for layer in convs} == {"bfloat16"}
    assert {layer.compute_dtype for layer in norms} == {"float32"}
    assert {v.dtype for net in model.get_networks().values() for v in net.variables} == {tf.float32}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--precision=fp16"], "error: --precision fp16 is for GPUs; on the CPU use bf16"),
        (["--precision=bf16", "--few_shot_finetuning=true"], "error: --precision=bf16 is for inference only"),
        (["--precision=bf16", "--run_mode=eval"], "error: --precision=bf16 applies to --run_mode=infer only"),
    ],
)
def test_unusable_precisions_are_one_line_errors(tmp_path, subject, flags, message):
    if flags == ["--precision=fp16"] and tf.config.list_logical_devices("GPU"):
        pytest.skip("fp16 runs on a GPU")
    source, driver = subject
    args = _args(train_dir=tmp_path, source_subject_dir=source, driver_subject_dir=driver)[1:] + flags
    result = subprocess.run(
        [sys.executable, "-m", "lsr.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
