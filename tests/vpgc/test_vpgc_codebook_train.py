"""Stage-1 training and reconstruction commands on a tiny subject (32-px frames of the repository sample).

The grid lookup searches only each cell's own codewords here (`own_cell_nearest`): the exact
4096-candidate search costs seconds per call on CPU and is tested with the model, not the trainer.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_testlib import one_line_error
from numerics import ROUNDING, assert_close
from vpgc_testlib import make_subject, own_cell_nearest

from common.image import read_image
from common.video import video_info
from vpgc.checkpoint import load_stage1, save_stage2
from vpgc.codebook import test as codebook_test
from vpgc.codebook import train as codebook_train
from vpgc.config import load_config
from vpgc.model import LPIPS, GridQuantizer, PriorTrans, VQGridModel, landmark_encoder

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32
TINY = {
    "model": {
        "base_learning_rate": 2e-3,
        "params": {
            "ddconfig": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "resolution": SIZE},
            "lossconfig": {"params": {"disc_start": 2}},
        },
    },
    "data": {"params": {"num_workers": 0}},
}
# Runs a command's main() with the fast lookup in each torchrun worker; RECORD saves each rank's parameters.
RUNNER = textwrap.dedent("""
    import importlib, os, sys
    sys.path.insert(0, {tests!r})
    from vpgc_testlib import own_cell_nearest
    from vpgc.model import GridQuantizer
    GridQuantizer.nearest = own_cell_nearest
    module = importlib.import_module(sys.argv[1])
    wrapped = []
    if os.environ.get("RECORD"):
        from common.distributed import Process
        wrap = Process.wrap
        def recording_wrap(self, module):
            wrapped.append(module)
            return wrap(self, module)
        Process.wrap = recording_wrap
    try:
        module.main(sys.argv[2:])
    finally:
        if wrapped:
            import torch
            params = dict(wrapped[0].model.named_parameters())
            torch.save(params, os.environ["RECORD"] + os.environ["RANK"] + ".pt")
""").format(tests=str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def fast_lookup(monkeypatch):
    monkeypatch.setattr(GridQuantizer, "nearest", own_cell_nearest)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add contention
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Path:
    return make_subject(tmp_path_factory.mktemp("subject"), size=SIZE, train_frames=8, test_frames=6)


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "lpips.pt"
    torch.save(LPIPS().state_dict(), path)
    return path


def tiny_config(**loss) -> dict:
    config = load_config(TINY)
    config["model"]["params"]["lossconfig"]["params"].update(loss)
    return config


def test_loss_falls(subject, lpips_file, tmp_path):
    rows = codebook_train.train(
        tiny_config(disc_start=1000), subject, tmp_path, lpips=lpips_file, max_steps=6, show_progress=False
    )
    assert [r["it"] for r in rows] == list(range(6))
    assert np.mean([r["rec_loss"] for r in rows[-2:]]) < np.mean([r["rec_loss"] for r in rows[:2]])
    assert all(r["disc_factor"] == 0 for r in rows)


def test_resume_is_exact_and_checkpoints_reload(subject, lpips_file, tmp_path):
    config = tiny_config()  # the GAN terms start at step 2
    kwargs = dict(lpips=lpips_file, show_progress=False, checkpoint_every=2, log_every=1, seed=7)
    full = codebook_train.train(config, subject, tmp_path / "full", max_steps=4, **kwargs)
    half = codebook_train.train(config, subject, tmp_path / "half", max_steps=3, **kwargs)
    assert [r["aeloss"] for r in half] == [r["aeloss"] for r in full[:3]]
    rest = codebook_train.train(
        config, subject, tmp_path / "half", resume=tmp_path / "half", max_steps=4, **kwargs
    )  # a log directory resumes from its last.ckpt, here inside epoch 1
    assert [r["it"] for r in rest] == [3] and rest[-1]["disc_factor"] == 1
    for key in ("aeloss", "discloss", "d_weight"):
        assert_close([r[key] for r in rest], [r[key] for r in full[3:]], ROUNDING, key)
    straight = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "half" / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in straight["state_dict"].items():
        assert_close(resumed["state_dict"][name], value, ROUNDING, name)

    # Lightning's layout and file names: N-Step-Checkpoint_{epoch}_{global_step} at steps 0 and 2 (2 samples
    # per epoch), holding epoch + 1 and global_step + 1; strict reloads with and without the loss module.
    folder = tmp_path / "full" / "checkpoints"
    assert sorted(p.name for p in folder.glob("N-Step-*")) == [
        "N-Step-Checkpoint_0_0.ckpt",
        "N-Step-Checkpoint_1_2.ckpt",
    ]
    extra = load_stage1(folder / "N-Step-Checkpoint_1_2.ckpt", VQGridModel.from_config(config))
    assert (extra["epoch"], extra["global_step"], len(extra["optimizer_states"])) == (2, 3, 2)
    load_stage1(folder / "N-Step-Checkpoint_0_0.ckpt", VQGridModel.from_config(config, with_loss=False))

    run = tmp_path / "full"
    grid = read_image(run / "images" / "train" / "reconstructions_gs-000000_e-000000_b-000000.png")
    assert grid.shape == (SIZE + 4, 4 * (SIZE + 2) + 2, 3)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert {r["name"] for r in rows if r["split"] == "val"} >= {"rec_loss", "aeloss", "discloss"}
    assert any((run / "tensorboard").iterdir()) and list((run / "configs").glob("*-project.yaml"))


def test_commands_end_to_end(subject, lpips_file, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  params:\n    ddconfig: {ch: 32, ch_mult: [1, 2], num_res_blocks: 1, resolution: 32}\n")
    args = ["--base", str(config), "-t", "True", "--data_root", str(subject), "--lpips", str(lpips_file), "-n", "run"]
    args += ["-l", str(tmp_path / "logs"), "--max_steps", "1", "--num_workers", "0", "--limit_val_batches", "0"]
    assert codebook_train.main([*args, "--model.params.lossconfig.params.disc_start", "0"]) == 0
    (run,) = (tmp_path / "logs").iterdir()
    assert run.name.endswith("_run") and (run / "checkpoints" / "N-Step-Checkpoint_0_0.ckpt").is_file()

    out = tmp_path / "Results"
    args = [
        "--load_path",
        str(run / "checkpoints" / "last.ckpt"),
        "--modelbase",
        str(config),
        "--data_root",
        str(subject),
    ]
    assert codebook_test.main([*args, "--output_path", str(out), "--model_name", "Sub"]) == 0
    frames = sorted((out / "Sub" / "images").iterdir())
    assert [p.name for p in frames] == [f"{i:04d}.jpg" for i in range(6)]  # 6 test frames: a group and a padded one
    assert read_image(frames[5]).shape == (SIZE, SIZE, 3) and read_image(frames[5]).std() > 2
    info = video_info(out / "Sub" / "Sub.mp4")
    assert (info.fps, info.frames) == (60, 6)
    assert [p.name for p in out.iterdir()] == ["Sub"]  # no work folder left behind


def test_lpips_from_torchvision_vgg16_and_taming_lin_files(tmp_path):
    """The two files a user has (torchvision's VGG16 with its classifier, taming's vgg.pth) give the same
    LPIPS as a full LPIPS state dict; a file that is neither is a one-line mismatch error."""
    reference = LPIPS()
    for value in reference.state_dict().values():
        if value.is_floating_point():
            value.normal_()
    state = reference.state_dict()
    torchvision = {f"features.{k.split('.', 2)[2]}": v for k, v in state.items() if k.startswith("net.")}
    torchvision["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(torchvision, tmp_path / "vgg16.pth")
    torch.save({k: v for k, v in state.items() if k.startswith("lin")}, tmp_path / "vgg.pth")
    loaded = LPIPS()
    codebook_train.load_lpips(loaded, [tmp_path / "vgg.pth", tmp_path / "vgg16.pth"])
    for key, value in loaded.state_dict().items():
        expected = state[key] if not key.startswith("scaling_layer.") else LPIPS().state_dict()[key]
        assert torch.equal(value, expected), key  # copies
    with pytest.raises(Exception, match="lin0"):
        codebook_train.load_lpips(LPIPS(), [tmp_path / "vgg16.pth"])


def test_bad_inputs_are_one_line_errors(subject, tmp_path, capsys):
    train_args = ["-t", "True", "--data_root", str(subject), "-l", str(tmp_path / "logs")]
    one_line_error(capsys, codebook_train.main, train_args + ["model.params.ddconfig.chh=3"], "unknown key", "'ch'")
    one_line_error(capsys, codebook_train.main, train_args[2:], "-t True")
    one_line_error(capsys, codebook_train.main, train_args, "--lpips")
    missing = tmp_path / "N-Step-Checkpoint_19_120000.ckpt"
    one_line_error(
        capsys,
        codebook_test.main,
        ["--load_path", str(missing), "--data_root", str(subject)],
        str(missing),
        "SharePoint",
    )
    enc, _ = save_stage2(tmp_path, 1, landmark_encoder(SIZE, 32, (1, 2)), PriorTrans())
    (tmp_path / "tiny.yaml").write_text(
        "model:\n  params:\n    ddconfig: {ch: 32, ch_mult: [1, 2], num_res_blocks: 1, resolution: 32}\n"
    )
    test_args = [
        "--data_root",
        str(subject),
        "--modelbase",
        str(tmp_path / "tiny.yaml"),
        "--output_path",
        str(tmp_path),
    ]
    one_line_error(capsys, codebook_test.main, ["--load_path", str(enc), *test_args], "Enc_", "stage-1")
    assert not list(tmp_path.glob("Obama*")) and not list(tmp_path.glob(".Obama*"))


def test_two_gloo_processes_keep_replicas_identical(subject, lpips_file, tmp_path):
    (tmp_path / "runner.py").write_text(RUNNER)
    (tmp_path / "tiny.yaml").write_text(
        "model:\n  params:\n    ddconfig: {ch: 32, ch_mult: [1, 2], num_res_blocks: 1, resolution: 32}\n"
        "    lossconfig: {params: {disc_start: 0}}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "RECORD": str(tmp_path / "rank")}
    args = ["--base", "tiny.yaml", "-t", "True", "--data_root", str(subject), "--lpips", str(lpips_file)]
    args += ["--max_steps", "1", "--num_workers", "0", "--limit_val_batches", "0", "--device", "cpu"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*command, "runner.py", "vpgc.codebook.train", *args], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # DDP keeps the parameters equal (BatchNorm statistics are broadcast from rank 0 at each forward)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, value in first.items():
        assert_close(second[name], value, ROUNDING, name)
    (run,) = (tmp_path / "logs").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file()
