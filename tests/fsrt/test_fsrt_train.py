"""FSRT training on a tiny vox-layout dataset: the loss falls, resume is exact, bad keys are one-line errors."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from numerics import FORWARD, ROUNDING, assert_close

from common.errors import InputError
from common.image import read_image
from fsrt.model import KPDetector
from fsrt.train import describe, train
from fsrt.trainer import check_scales
from fsrt.visualize import HEADER

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


@pytest.fixture(scope="module")
def vox(tmp_path_factory) -> Path:
    """data/{train,val}/<id>#clip#0#12.mp4 (and a frame folder) + keypoints/<name>.npy in 256-px units."""
    base = tmp_path_factory.mktemp("vox")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.make_sample_data",
            "--out",
            str(base / "sample"),
            "--frames",
            "12",
            "--size",
            str(SIZE),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
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
        "data": {
            "data_path": str(base / "data"),
            "kp_path": str(base / "kp"),
            "num_pixels_phase1": 128,
            "num_pixels": 1024,
        },
        "model": {
            "expression_size": 8,
            "small_decoder": True,
            "encoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
            "decoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
        },
        "discriminator": {"disc_kwargs": {"block_expansion": 8, "max_features": 16}},
        "training": {
            "batch_size": 2,
            "num_workers": 0,
            "lr_warmup": 1,
            "iters_in_phase1": 12,
            "iters_in_phase2": 4,
            "disc_warmup_iters": 2,
            "perceptual_loss_weight": [0] * 5,
            "checkpoint_every": 10,
            "backup_every": 0,
            "validate_every": 15,
            "visualize_every": 15,
            "print_every": 1,
            **training,
        },
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
    assert [r["loss"] for r in first] == [r["loss"] for r in full[:10]]  # the same steps, same process
    rest = train(cfg, tmp_path / "resumed", kp_detector=detector(), max_it=20, frame_size=SIZE, show_progress=False)
    assert [r["it"] for r in rest] == list(range(10, 20))
    # Resumed from the checkpoint: the same arithmetic, but ten training steps amplify any
    # rounding a reloaded tensor's kernel path may bring; a resume that lost the optimiser or
    # generator state moves the losses by percent.
    assert_close([r["loss"] for r in rest], [r["loss"] for r in full[10:]], FORWARD, "resumed losses")
    assert (tmp_path / "full" / "log.csv").is_file() and any((tmp_path / "full" / "tensorboard").iterdir())
    # step 15 wrote the visualisations: 12 train / 1 val rows of [input | render | GT]
    for split, rows in (("train", 12), ("val", 1)):
        grid = read_image(tmp_path / "full" / f"renders-{split}.png")
        assert grid.shape == (HEADER + rows * SIZE, 3 * SIZE, 3)
        assert grid[HEADER:, SIZE : 2 * SIZE].std() > 5  # a rendered image, not a blank column


def test_evalnow_and_visnow_run_before_the_first_step(vox, tmp_path):
    torch.set_num_threads(1)
    train(
        tiny_config(vox),
        tmp_path,
        kp_detector=detector(),
        max_it=1,
        frame_size=SIZE,
        show_progress=False,
        evaluate_now=True,
        visualize_now=True,
    )
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert {r["name"] for r in rows if r["split"] == "val" and r["it"] == "0"} >= {"psnr", "mse"}
    assert (tmp_path / "renders-train.png").is_file() and (tmp_path / "renders-val.png").is_file()


def test_print_model_lists_every_parameter():
    from fsrt.model import FSRT

    model = FSRT(**tiny_config(Path("."))["model"])
    listing = describe(model).splitlines()
    names = [name for name, _ in model.named_parameters()]
    assert len(listing) > len(names) and all(any(line.startswith(n) for line in listing) for n in names)


def test_unknown_config_key_is_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  batch_sise: 4\n")
    result = subprocess.run([sys.executable, "-m", "fsrt.train", str(config)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "batch_size" in result.stderr


# Runs the real CLI (`fsrt.train.main`) in each torchrun process, recording the modules it wraps
# in DDP (`common.distributed.Process.wrap`) so every rank can save what it holds after training.
DDP_WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from common.distributed import Process
    from fsrt import train as fsrt_train
    wrapped = []
    wrap = Process.wrap
    def recording_wrap(self, module):
        wrapped.append(module)
        return wrap(self, module)
    Process.wrap = recording_wrap
    out = sys.argv[1]
    fsrt_train.main(sys.argv[2:])
    states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in wrapped]
    torch.save(states, os.path.join(out, "rank" + os.environ["RANK"] + ".pt"))
""")


def test_two_process_gloo_run_keeps_replicas_identical(vox, tmp_path):
    config = tiny_config(vox, checkpoint_every=2, batch_size=2)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    torch.save(KPDetector().state_dict(), tmp_path / "kp.pt")  # the 5-block detector needs 128 px
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(tmp_path / "worker.py"),
            str(tmp_path),
            str(tmp_path / "tiny.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--exit-after",
            "3",
            "--frame-size",
            "128",
            "--kp_checkpoint",
            str(tmp_path / "kp.pt"),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1  # rank 0 speaks

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4  # encoder, decoder, expression encoder, discriminator
    # exact: every rank applies the same all-reduced gradients (the same bits) to the same weights,
    # and model.pt is a save/load round trip
    for first, second in zip(*ranks):
        for key in first:
            assert torch.equal(first[key], second[key]), f"{key} differs between the ranks"
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert saved["it"] == 2 and saved["rng_state"].shape[0] == 2  # each rank's generator, for resume
    for key, value in saved["decoder"].items():
        assert torch.equal(value, ranks[0][1][key])
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert sorted({int(r["it"]) for r in rows}) == [0, 1, 2]  # one log, written by rank 0


def test_statistical_regularization_hand_values():
    """One source, 2-d expressions. Per-vector 'variance' (std across the features, unbiased):
    [1,3] -> sqrt(2), [0,0] -> 0.01 (eps), so (0 + 0.99)/2 per group, 0.99 in all. Covariance over
    the 2 vectors, diagonal included, squared, summed, / 2: {[1,3],[0,0]} -> (0.25+20.25+2*2.25)/2
    = 12.5; {[1,1],[2,0]} -> (0.25+0.25+2*0.25)/2 = 0.5. Invariance: (mean([0,4]) + mean([4,0]))/2."""
    from fsrt.trainer import statistical_regularization

    weights = {"invariance_loss_weight": 1.0, "variance_loss_weight": 0.2, "covariance_loss_weight": 1.0}
    terms = statistical_regularization(
        torch.tensor([[[1.0, 3.0]]]),
        torch.tensor([[0.0, 0.0]]),
        torch.tensor([[[1.0, 1.0]]]),
        torch.tensor([[2.0, 0.0]]),
        weights,
    )
    # hand values, a few float32 operations each: ROUNDING of each value's magnitude
    for name, value in (
        ("variance", 0.99),
        ("covariance", 13.0),
        ("invariance", 2.0),
        ("reg_loss", 2.0 + 0.2 * 0.99 + 13.0),
    ):
        assert_close(terms[name], value, ROUNDING, name)


def test_missing_files_fail_at_start_up(vox, tmp_path):
    """VGG weights (needed from phase 2 on and by validation), the detector checkpoint and the data
    folders are checked before anything is built or written."""
    cfg = tiny_config(vox, perceptual_loss_weight=[0.01] * 5)
    run = tmp_path / "run"
    with pytest.raises(InputError, match=r"^no VGG19 weights .* given; .*--vgg PATH"):
        train(cfg, run, kp_detector=detector(), max_it=20, frame_size=SIZE, show_progress=False)
    with pytest.raises(InputError, match=r"^no VGG19 weights"):  # phase 1 only, but it validates
        train(cfg, run, kp_detector=detector(), max_it=3, frame_size=SIZE, evaluate_now=True, show_progress=False)
    with pytest.raises(InputError, match=r"vgg\.pt: VGG19 weights .* not found"):
        train(cfg, run, kp_detector=detector(), vgg=tmp_path / "vgg.pt", max_it=20, frame_size=SIZE)
    with pytest.raises(InputError, match=r"kp\.pt: checkpoint file not found"):
        train(tiny_config(vox), run, kp_checkpoint=tmp_path / "kp.pt", max_it=20, frame_size=SIZE)
    nodata = tiny_config(vox)
    nodata["data"]["data_path"] = str(tmp_path / "nodata")
    with pytest.raises(InputError, match=r"nodata/train: dataset folder not found"):
        train(nodata, run, kp_detector=detector(), max_it=20, frame_size=SIZE)
    assert not run.exists()
    # phase 1 without validation never computes the perceptual loss: no VGG file needed
    rows = train(cfg, run, kp_detector=detector(), max_it=2, frame_size=SIZE, show_progress=False)
    assert [r["it"] for r in rows] == [0, 1] and "perceptual" not in rows[-1]


def multiscale_config(base: Path, levels, disc_scales, **training) -> dict:
    cfg = tiny_config(base, scales=levels, **training)
    cfg["discriminator"]["scales"] = disc_scales
    return cfg


def test_gan_terms_sum_over_the_discriminator_scales():
    """Each discriminator scale reads its image-pyramid level (scale 0.5: blurred and every second
    pixel); the LSGAN and feature-matching terms add up over the scales."""
    from fsrt.config import load_config
    from fsrt.model import MultiScaleDiscriminator
    from fsrt.model.keypoint_detector import AntiAliasInterpolation2d
    from fsrt.trainer import FSRTTrainer

    cfg = load_config(multiscale_config(Path("."), [1, 0.5, 0.25], [1, 0.5]))
    torch.manual_seed(0)
    disc = MultiScaleDiscriminator([1, 0.5], **cfg["discriminator"]["disc_kwargs"])
    trainer = FSRTTrainer(cfg, None, None, None, None, discriminator=disc)
    fake, real, kp = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 10, 2) * 2 - 1
    terms = {}
    total = trainer._generator_gan(fake, real, kp, terms)
    weights = cfg["training"]["generator_gan_feature_matching"]
    gan, matching = [], []
    for key, level in (("1", lambda x: x), ("0-5", AntiAliasInterpolation2d(3, 0.5))):
        assert level(fake).shape[-1] == (SIZE if key == "1" else SIZE // 2)
        feats_fake, map_fake = disc.discs[key](level(fake), kp)
        feats_real, _ = disc.discs[key](level(real), kp)
        gan.append(cfg["training"]["generator_gan_loss_weight"] * ((1 - map_fake) ** 2).mean())
        matching.append(sum(w * (a - b).abs().mean() for w, a, b in zip(weights, feats_real, feats_fake)))
    assert min(gan) > 0 and min(matching) > 0
    assert_close(terms["gen_gan"], sum(gan), FORWARD, "gen_gan")
    assert_close(terms["feature_matching"], sum(matching), FORWARD, "feature_matching")
    assert_close(total, sum(gan) + sum(matching), FORWARD, "total")


def test_equal_scales_written_differently_are_accepted():
    """1 and 1.0 name the same level, and 1/3 is a level even though 1 / (1/3) is not exactly 3."""
    check_scales({"training": {"scales": [1.0, 1 / 3]}, "discriminator": {"use_disc": True, "scales": [1, 1 / 3]}})


@pytest.mark.parametrize(
    ("levels", "disc_scales", "message"),
    [
        ([1], [0.5], r"^discriminator\.scales: 0\.5 is not in training\.scales \[1\]"),
        ([1, 0.3], [1], r"^training\.scales: 0\.3 is not supported \(use 1 or 1/n"),
    ],
)
def test_unusable_scales_are_rejected_at_start_up(tmp_path, levels, disc_scales, message):
    with pytest.raises(InputError, match=message):  # before the data folders are even looked at
        train(multiscale_config(tmp_path, levels, disc_scales), tmp_path / "run", kp_detector=detector(), max_it=1)


def test_multiscale_discriminator_trains_in_phase_3(vox, tmp_path):
    torch.set_num_threads(1)
    cfg = multiscale_config(vox, [1, 0.5], [1, 0.5], iters_in_phase1=1, iters_in_phase2=1, disc_warmup_iters=0)
    rows = train(cfg, tmp_path, kp_detector=detector(), max_it=3, frame_size=SIZE, show_progress=False)
    assert "disc_gan" not in rows[1] and rows[2]["gen_gan"] > 0 and rows[2]["disc_gan"] > 0
    saved = torch.load(tmp_path / "model.pt", weights_only=True)["discriminator"]
    assert {k.split(".")[1] for k in saved} == {"1", "0-5"}
