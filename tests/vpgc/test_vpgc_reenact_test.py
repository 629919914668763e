"""Stage-2 inference: the `Reenactor` library (groups, windows, padding, eval vs dropout, the saved
pixel values) and the `vpgc.reenact.test` / `vpgc.demo` commands on a tiny subject."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_testlib import one_line_error
from vpgc_testlib import make_subject, own_cell_soft

from common.image import read_image, write_image
from common.precision import frame_agreement
from common.video import video_info
from vpgc import data
from vpgc.checkpoint import save_stage1, save_stage2
from vpgc.config import load_config
from vpgc.demo import main as demo_main
from vpgc.model import GridQuantizer, VQGridModel
from vpgc.reenact import test as reenact_test
from vpgc.reenact.train import build_networks
from vpgc.reenactment import Reenactor, group_windows

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
def files(tmp_path_factory) -> dict:
    """A tiny subject and seeded checkpoints in the official layouts (stage 1; Enc/Imp with `module.`)."""
    folder = tmp_path_factory.mktemp("reenact")
    (folder / "tiny.yaml").write_text(TINY_YAML)
    torch.manual_seed(11)
    vq = VQGridModel.from_config(load_config(folder / "tiny.yaml"))
    encoder, imp = build_networks(SIZE, 32, (1, 2))
    enc, imp_file = save_stage2(folder / "ckpt", 42, encoder, imp)
    return {
        "subject": make_subject(folder, size=SIZE, train_frames=4, test_frames=6),
        "config": folder / "tiny.yaml",
        "stage1": save_stage1(folder / "ckpt" / "N-Step-Checkpoint_0_0.ckpt", vq, 1, 1),
        "enc": enc,
        "imp": imp_file,
    }


def reenactor(files, **kwargs) -> Reenactor:
    return Reenactor.from_checkpoints(
        files["stage1"], files["enc"], files["imp"], files["config"], landmark_ch=32, landmark_ch_mult=(1, 2), **kwargs
    )


def test_groups_windows_padding_and_saved_values(files):
    model = reenactor(files)
    maps = data.draw_split(files["subject"], "test")  # 6 frames: one group and a padded one
    frames = model.frames(maps)
    assert frames.shape == (6, SIZE, SIZE, 3) and frames.dtype == np.uint8
    plan = group_windows(6)
    assert plan[0][2][3] == [0, 1, 2, 3, 3, 3, 3]  # complete groups clamp at 4, as the original's loader
    assert plan[1][:2] == (4, 2) and plan[1][2][3] == [2, 3, 4, 5, 5, 5, 5]  # padded with frame 5, clamped at 6
    for start, count, windows in plan:
        stacked = torch.from_numpy(maps)[torch.tensor(windows)].float() / 255
        with torch.no_grad():
            code = model.imp(model.encoder(stacked), model.vq.quantize.prior(4))
            images = model.vq.decode_code(code).numpy()
        expected = np.clip((images.transpose(0, 2, 3, 1) + 1) / 2.0 * 255.0, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(frames[start : start + count], expected[:count])
    assert not model.imp.training
    np.testing.assert_array_equal(model.frames(maps[:4]), frames[:4])  # eval mode: deterministic


def test_dropout_at_inference_is_stochastic(files):
    model = reenactor(files, dropout_at_inference=True)
    maps = data.draw_split(files["subject"], "test")[:4]
    assert model.imp.training
    torch.manual_seed(0)
    first = model.frames(maps)
    assert not np.array_equal(first, model.frames(maps))
    torch.manual_seed(0)
    np.testing.assert_array_equal(first, model.frames(maps))


def command(files, out, *extra) -> list[str]:
    return [
        "--data_root", str(files["subject"]), "-m", "Sub", "-o", str(out), "--load_path", str(files["stage1"]),
        "--encoder_path", str(files["enc"]), "--implicit_path", str(files["imp"]), "--model_base", str(files["config"]),
        "--landmark_ch", "32", "--landmark_ch_mult", "1,2", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_command_writes_frames_and_video(files, tmp_path):
    assert reenact_test.main(command(files, tmp_path)) == 0
    frames = sorted((tmp_path / "Sub" / "images").iterdir())
    assert [p.name for p in frames] == [f"{i:04d}.png" for i in range(6)]
    direct = reenactor(files).frames(data.draw_split(files["subject"], "test"))
    np.testing.assert_array_equal(np.stack([read_image(p) for p in frames]), direct)  # PNG: lossless
    info = video_info(tmp_path / "Sub" / "Sub.mp4")
    assert (info.fps, info.frames, info.width) == (60, 6, SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sub"]  # the work folder is gone


def test_bf16_frames_agree_with_float32_and_fp16_needs_a_gpu(files, tmp_path, capsys):
    for precision in ("fp32", "bf16"):
        assert reenact_test.main(command(files, tmp_path / precision, "--precision", precision)) == 0
    fp32, bf16 = (
        np.stack([read_image(p) for p in sorted((tmp_path / precision / "Sub" / "images").iterdir())]) / 255
        for precision in ("fp32", "bf16")
    )
    agreement = frame_agreement(fp32, bf16)
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); through the untrained
    # encoder, PriorTrans and decoder the frames moved by 44.9 dB PSNR, max 7-8 levels (saved values
    # truncate, so any move can cross a level). 35 dB and 24 levels leave room for other kernels;
    # a layer that breaks in bfloat16 falls far below. Not equal: the flag changed the arithmetic.
    assert 35 < agreement["psnr_db"] < float("inf") and agreement["max_levels"] <= 24, agreement
    one_line_error(capsys, reenact_test.main, command(files, tmp_path / "fp16", "--precision", "fp16"), "fp16")
    assert not (tmp_path / "fp16").exists()


def test_demo_with_heatmaps_and_retargeted_landmarks(files, tmp_path):
    maps = data.draw_split(files["subject"], "test")
    for index, drawn in enumerate(maps):
        write_image(tmp_path / "heatmaps" / f"{51000 + index}.jpg", drawn)
    assert demo_main(command(files, tmp_path / "out", "--heatmap_dir", str(tmp_path / "heatmaps"), "--ext", "jpg")) == 0
    assert len(list((tmp_path / "out" / "Sub" / "images").glob("*.jpg"))) == 6

    # another "person": the subject's test landmarks shrunk and shifted, moved back onto the subject
    driver = tmp_path / "driver"
    driver.mkdir()
    for index, path in enumerate(data.list_landmarks(files["subject"], "test")):
        np.savetxt(driver / f"{index:05d}.txt", data.read_landmarks(path) * 0.8 + 3)
    args = command(files, tmp_path / "out", "-m", "Cross", "--driving_ldmks", str(driver), "--retarget")
    assert reenact_test.main(args) == 0
    assert len(list((tmp_path / "out" / "Cross" / "images").glob("*.png"))) == 6


def test_bad_inputs_are_one_line_errors_without_output(files, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "Enc_00161851.ckpt"
    one_line_error(
        capsys, reenact_test.main, command(files, out, "--encoder_path", str(missing)), str(missing), "SharePoint"
    )
    one_line_error(
        capsys, reenact_test.main, command(files, out, "--encoder_path", str(files["stage1"])), "stage-1", "Enc_"
    )
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text(TINY_YAML.replace("num_res_blocks", "num_res_block"))
    one_line_error(
        capsys, reenact_test.main, command(files, out, "--model_base", str(bad_config)), "unknown key", "num_res_blocks"
    )
    one_line_error(capsys, reenact_test.main, command(files, out, "--retarget"), "--driving_ldmks")
    one_line_error(capsys, reenact_test.main, command(files, out, "--landmark_ch", "64"), "does not match")
    assert not out.exists()
