"""Stage-2 training (`vpgc.reenact.train`) on a tiny subject: the loss falls, the official file layout
reloads strictly, resume is exact, bad input is a one-line error."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_testlib import one_line_error
from numerics import ROUNDING, assert_close
from vpgc_testlib import make_subject, own_cell_soft

from common.image import read_image
from vpgc.checkpoint import load_stage2, save_stage1
from vpgc.config import load_config
from vpgc.model import GridQuantizer, PriorTrans, VQGridModel, landmark_encoder
from vpgc.reenact import train as reenact_train

SIZE = 32
TINY_YAML = "model:\n  params:\n    ddconfig: {ch: 32, ch_mult: [1, 2], num_res_blocks: 1, resolution: 32}\n"


@pytest.fixture(autouse=True)
def fast_lookup(monkeypatch):
    """The soft lookup over each cell's own codewords: the 4096-candidate one costs seconds per group on
    CPU and is tested with the model."""
    monkeypatch.setattr(GridQuantizer, "soft", own_cell_soft)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add contention
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[Path, Path]:
    """(tiny config file, a stage-1 checkpoint of seeded random weights in the Lightning layout)."""
    folder = tmp_path_factory.mktemp("stage1")
    (folder / "tiny.yaml").write_text(TINY_YAML)
    torch.manual_seed(3)
    model = VQGridModel.from_config(load_config(folder / "tiny.yaml"))
    return folder / "tiny.yaml", save_stage1(folder / "N-Step-Checkpoint_0_0.ckpt", model, 1, 1)


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Path:
    return make_subject(tmp_path_factory.mktemp("subject"), size=SIZE, train_frames=8, test_frames=6)


def options(subject, stage1, out, *extra) -> list[str]:
    config, checkpoint = stage1
    return [
        "--data_root", str(subject), "-m", "tiny", "--load_path", str(checkpoint), "--model_base", str(config),
        "-o", str(out), "--landmark_ch", "32", "--landmark_ch_mult", "1,2", "--num_workers", "0",
        "--save_epoch_freq", "1", "--print_freq", "100", "--vis_freq", "100", *extra,
    ]  # fmt: skip


def run(args: list[str]) -> list[dict]:
    return reenact_train.train(reenact_train.parse_args(args), show_progress=False)


def test_loss_falls_and_files_are_official(subject, stage1, tmp_path):
    rows = run(options(subject, stage1, tmp_path, "--max_epoch", "4", "--print_freq", "4", "--vis_freq", "8"))
    assert [r["it"] for r in rows] == list(range(1, 9))  # 2 samples per epoch
    assert np.mean([r["Feature"] for r in rows[-2:]]) < 0.9 * np.mean([r["Feature"] for r in rows[:2]])
    assert [r["it"] for r in rows if "Color" in r] == [4, 8] and all(r["Temporal"] > 0 for r in rows)

    folder = tmp_path / "logs" / "tiny" / "checkpoints"
    # after every epoch j (j % 1 == 0), named with the iteration + 1 as the original
    assert sorted(p.name for p in folder.glob("Enc_*")) == [f"Enc_{i:08d}.ckpt" for i in (3, 5, 7, 9)]
    enc = torch.load(folder / "Enc_00000009.ckpt", weights_only=True)
    assert list(enc) == ["encoder"] and all(k.startswith("module.") for k in enc["encoder"])
    assert list(torch.load(folder / "optimizer_imp.ckpt", weights_only=True)) == ["imp_opt"]
    load_stage2(
        folder / "Enc_00000009.ckpt", folder / "Imp_00000009.ckpt", landmark_encoder(SIZE, 32, (1, 2)), PriorTrans()
    )

    dump = read_image(tmp_path / "logs" / "tiny" / "images" / "gen_00000008.jpg")
    assert dump.shape == (3 * SIZE, 2 * SIZE, 3)  # rows: maps, predictions, targets; 2 frames each
    logged = list(csv.DictReader((tmp_path / "logs" / "tiny" / "log.csv").open()))
    assert {r["name"] for r in logged} >= {"Feature", "Color", "Temporal", "loss"}


def test_resume_is_exact(subject, stage1, tmp_path):
    full = run(options(subject, stage1, tmp_path / "full", "--max_steps", "4", "--seed", "5"))
    half = run(options(subject, stage1, tmp_path / "half", "--max_steps", "3", "--seed", "5"))
    assert [r["loss"] for r in half] == [r["loss"] for r in full[:3]]
    rest = run(options(subject, stage1, tmp_path / "half", "--max_steps", "4", "--seed", "5", "--resume", "true"))
    assert [r["it"] for r in rest] == [4]  # resumed inside epoch 1, after its first batch
    assert_close([r["loss"] for r in rest], [r["loss"] for r in full[3:]], ROUNDING, "resumed loss")
    for name in ("Enc_00000005.ckpt", "Imp_00000005.ckpt"):
        straight = torch.load(tmp_path / "full" / "logs" / "tiny" / "checkpoints" / name, weights_only=True)
        resumed = torch.load(tmp_path / "half" / "logs" / "tiny" / "checkpoints" / name, weights_only=True)
        (key,) = straight
        for param, value in straight[key].items():
            assert_close(resumed[key][param], value, ROUNDING, f"{name} {param}")


def test_ttur_and_boolean_flags():
    opt = reenact_train.parse_args(["--TTUR", "--mean_codebook", "True", "--repeat_heat", "false", "-r", "False"])
    assert opt.TTUR and opt.mean_codebook and not opt.repeat_heat and not opt.resume
    encoder, imp = reenact_train.build_networks(SIZE, 32, (1, 2))
    opt_enc, opt_imp = reenact_train.make_optimizers(encoder, imp, 5e-4, 1e-4, 0.5, ttur=True)
    assert opt_enc.param_groups[0]["lr"] == 2.5e-4 and opt_enc.param_groups[0]["betas"] == (0.0, 0.9)
    assert opt_imp.param_groups[0]["lr"] == 1e-4 and opt_imp.param_groups[0]["betas"] == (0.0, 0.9)
    weights = torch.cat([m.weight.flatten() for m in imp.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.002  # init_net: N(0, 0.02)


def test_bad_inputs_are_one_line_errors(subject, stage1, tmp_path, capsys):
    missing = tmp_path / "N-Step-Checkpoint_19_120000.ckpt"
    args = options(subject, stage1, tmp_path / "out")
    one_line_error(capsys, reenact_train.main, [*args, "--load_path", str(missing)], str(missing), "SharePoint")
    one_line_error(capsys, reenact_train.main, [*args, "--batch_internal", "8"], "--batch_internal")
    one_line_error(capsys, reenact_train.main, [*args, "--mean_codebook", "False"], "--mean_codebook")
    bad = tmp_path / "bad"
    for kind in ("images", "ldmks"):
        shutil.copytree(subject / kind / "train", bad / kind / "train")
    (bad / "ldmks" / "train" / "00007.txt").unlink()
    one_line_error(capsys, reenact_train.main, [*args, "--data_root", str(bad)], "8 images but", "7 landmark files")
    assert not (tmp_path / "out").exists()
