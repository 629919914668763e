"""vpgc.checkpoint: official layouts load strictly, wrong files and keys are one-line errors."""

from __future__ import annotations

import argparse
import sys
import types

import pytest
import torch

from common.errors import CheckpointMismatchError, InputError
from vpgc.checkpoint import WHERE, load_stage1, load_stage2, save_stage1, save_stage2
from vpgc.model import PriorTrans, VQGridModel, landmark_encoder

SMALL_DD = {
    "z_channels": 256,
    "resolution": 32,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [16],
}
LOSS = {"params": {"disc_start": 10}}


def small_vq(seed: int, with_loss: bool = True) -> VQGridModel:
    torch.manual_seed(seed)
    return VQGridModel(SMALL_DD, LOSS if with_loss else None, embed_dim=64)


def small_stage2(seed: int) -> tuple[torch.nn.Module, PriorTrans]:
    torch.manual_seed(seed)
    return landmark_encoder(resolution=32, ch=32, ch_mult=(1, 2)), PriorTrans(dim=256, depth=1)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def stage1_file(tmp_path_factory):
    model = small_vq(seed=0)
    optimizer = torch.optim.Adam(model.generator_parameters(), lr=1e-4)
    path = tmp_path_factory.mktemp("stage1") / "N-Step-Checkpoint_1_5000.ckpt"
    save_stage1(path, model, epoch=1, global_step=5000, optimizers=[optimizer], rng={"seed": 23})
    return path, model


def test_stage1_round_trip_restores_every_entry(stage1_file):
    path, saved = stage1_file
    content = torch.load(path, weights_only=True)
    assert list(content)[:6] == [
        "epoch",
        "global_step",
        "pytorch-lightning_version",
        "state_dict",
        "optimizer_states",
        "lr_schedulers",
    ]
    model = small_vq(seed=1)
    extra = load_stage1(path, model)
    assert extra["epoch"] == 1 and extra["global_step"] == 5000 and extra["rng"] == {"seed": 23}
    assert len(extra["optimizer_states"]) == 1 and "state_dict" not in extra
    for key, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert torch.equal(model.quantize.candidates(), saved.quantize.candidates())


def test_generator_only_model_ignores_the_loss_entries(stage1_file):
    path, saved = stage1_file
    model = small_vq(seed=2, with_loss=False)
    load_stage1(path, model)
    assert torch.equal(model.quantize.embedding, saved.quantize.embedding)


def test_stage1_key_mismatches_are_one_line_errors(stage1_file, tmp_path):
    path, saved = stage1_file
    content = torch.load(path, weights_only=True)
    state = content["state_dict"]
    del state["quantize.embedding"]
    state["quantize.codebook"] = torch.zeros(1)
    state["quant_conv.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(content, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointMismatchError) as error:
        load_stage1(tmp_path / "broken.ckpt", small_vq(seed=3))
    message = one_line(error)
    assert "broken.ckpt" in message and "1 missing: quantize.embedding" in message
    assert "1 unexpected: quantize.codebook" in message and "quant_conv.weight (3, 3, 1, 1)" in message


def test_lightning_callback_classes_load_without_lightning(stage1_file, tmp_path, monkeypatch):
    """Lightning 1.x may key callback states by class; those names load as inert stand-ins."""
    path, saved = stage1_file
    fake_main = types.ModuleType("main")

    class CheckpointEveryNSteps:
        pass

    CheckpointEveryNSteps.__module__, CheckpointEveryNSteps.__qualname__ = "main", "CheckpointEveryNSteps"
    fake_main.CheckpointEveryNSteps = CheckpointEveryNSteps
    monkeypatch.setitem(sys.modules, "main", fake_main)
    content = torch.load(path, weights_only=True)
    content["callbacks"] = {CheckpointEveryNSteps: {"every": 5000}}
    torch.save(content, tmp_path / "lightning.ckpt")
    monkeypatch.delitem(sys.modules, "main")
    extra = load_stage1(tmp_path / "lightning.ckpt", small_vq(seed=4))
    assert list(extra["callbacks"].values()) == [{"every": 5000}]

    torch.save({"state_dict": {}, "hparams": argparse.Namespace(lr=1)}, tmp_path / "pickled.ckpt")
    with pytest.raises(InputError, match="weights_only loading refuses"):
        load_stage1(tmp_path / "pickled.ckpt", small_vq(seed=4))


def test_stage2_round_trip_with_and_without_prefix(tmp_path):
    encoder, imp = small_stage2(seed=0)
    optimizer = torch.optim.Adam(imp.parameters())
    enc_path, imp_path = save_stage2(tmp_path, 161851, encoder, imp, imp_opt=optimizer)
    assert (enc_path.name, imp_path.name) == ("Enc_00161851.ckpt", "Imp_00161851.ckpt")
    assert (tmp_path / "optimizer_imp.ckpt").is_file() and not (tmp_path / "optimizer_enc.ckpt").exists()
    assert all(k.startswith("module.") for k in torch.load(enc_path, weights_only=True)["encoder"])
    loaded_encoder, loaded_imp = small_stage2(seed=1)
    load_stage2(enc_path, imp_path, loaded_encoder, loaded_imp)
    assert torch.equal(loaded_encoder.conv_in.weight, encoder.conv_in.weight)
    assert torch.equal(loaded_imp.mlp_head[0].weight, imp.mlp_head[0].weight)

    torch.save({"encoder": encoder.state_dict()}, tmp_path / "plain.ckpt")
    fresh_encoder, _ = small_stage2(seed=2)
    load_stage2(tmp_path / "plain.ckpt", imp_path, fresh_encoder, loaded_imp)
    assert torch.equal(fresh_encoder.conv_in.weight, encoder.conv_in.weight)


def test_files_of_the_other_stage_are_refused(stage1_file, tmp_path):
    path, _ = stage1_file
    encoder, imp = small_stage2(seed=0)
    enc_path, imp_path = save_stage2(tmp_path, 3, encoder, imp)
    with pytest.raises(CheckpointMismatchError) as error:
        load_stage1(enc_path, small_vq(seed=5))
    assert one_line(error).startswith(f"{enc_path}: a stage-2 landmark-encoder checkpoint (Enc_*.ckpt) given")
    with pytest.raises(CheckpointMismatchError) as error:
        load_stage2(path, imp_path, encoder, imp)
    assert one_line(error).startswith(f"{path}: a stage-1 Lightning checkpoint")
    with pytest.raises(CheckpointMismatchError) as error:
        load_stage2(imp_path, enc_path, encoder, imp)
    assert "driving-module checkpoint (Imp_*.ckpt) given where a stage-2 landmark-encoder" in one_line(error)


def test_missing_file_names_the_official_source(tmp_path):
    with pytest.raises(InputError) as error:
        load_stage1(tmp_path / "absent.ckpt", small_vq(seed=6, with_loss=False))
    assert "absent.ckpt: checkpoint file not found" in one_line(error) and WHERE in str(error.value)
