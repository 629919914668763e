"""vfa.checkpoint: VFA.pt's layout ({'gen', 'g_optim', 'args'}) loads strictly with weights_only,
stage-1 files load into stage-1 generators, LIA and missing files give one-line errors."""

from __future__ import annotations

import argparse

import pytest
import torch
from vfa_testlib import state_from_manifest

from common.errors import CheckpointMismatchError, InputError
from vfa.checkpoint import load_inference_generator, load_vfa, read_vfa_checkpoint, save_vfa
from vfa.model import Generator

TRAIN_ARGS = argparse.Namespace(iter=800000, size=256, batch_size=16, lr=0.0002, distilling=True, resume_ckpt=None)


def adam_state(generator: Generator) -> dict:
    """An Adam state dict like train.py's (betas (0, 0.99), StepLR's 'initial_lr'), after one step.
    (trainer.py's int 0 beta, `0 ** 1`, is refused by torch >= 2.13's Adam; 0.0 is the same value.)"""
    params = [p for p in generator.parameters() if p.requires_grad][:2]
    optimizer = torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.99))
    torch.optim.lr_scheduler.StepLR(optimizer, step_size=5000, gamma=0.2)
    for param in params:
        param.grad = torch.ones_like(param)
    optimizer.step()
    return optimizer.state_dict()


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> dict:
    """VFA.pt and a stage-1 file as trainer.py writes them, with the manifest's names and shapes."""
    folder = tmp_path_factory.mktemp("official")
    gen = state_from_manifest("infer_and_distill", seed=1)
    stage1 = {key: value for key, value in gen.items() if not key.startswith("student_dec.")}
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}}, "param_groups": []}
    torch.save({"gen": gen, "g_optim": optim, "args": TRAIN_ARGS}, folder / "VFA.pt")
    torch.save({"gen": stage1, "g_optim": optim, "args": TRAIN_ARGS}, folder / "005000.pt")
    return {"gen": gen, "stage1": stage1, "vfa": folder / "VFA.pt", "stage1_file": folder / "005000.pt"}


@pytest.fixture(scope="module")
def small() -> Generator:
    """The 8x8 layout (one decoder level): the same kinds of entries in a smaller file."""
    return Generator(size=8, distilling=True)


def test_vfa_pt_loads_strictly_for_inference(official):
    generator = load_inference_generator(official["vfa"])
    assert not generator.training and generator.distilling
    state = generator.state_dict()
    assert list(state) == list(official["gen"])
    assert all(torch.equal(state[key], value) for key, value in official["gen"].items())


def test_stage1_file_loads_into_a_stage1_generator(official):
    generator = Generator(256, 512, 20, 1, 4, 5, distilling=False)
    rest = load_vfa(generator, official["stage1_file"])
    assert set(rest) == {"g_optim", "args"} and rest["args"] == TRAIN_ARGS
    assert torch.equal(generator.dec.direction.weight, official["stage1"]["dec.direction.weight"])
    with pytest.raises(CheckpointMismatchError, match="93 missing: student_dec.bias"):
        load_inference_generator(official["stage1_file"])


def test_the_namespace_is_allowed_only_inside_the_load(tmp_path, small):
    path = save_vfa(tmp_path / "000001.pt", small, adam_state(small), TRAIN_ARGS)
    before = set(torch.serialization.get_safe_globals())  # a set inside torch: its listing order can change
    content = read_vfa_checkpoint(path)
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="argparse.Namespace"):
        torch.load(path, weights_only=True)
    assert list(content) == ["gen", "g_optim", "args"] and content["args"] == TRAIN_ARGS
    assert content["g_optim"]["param_groups"][0]["initial_lr"] == 2e-4


def test_save_and_load_round_trip(tmp_path, small):
    path = save_vfa(tmp_path / "VFA.pt", small, args=TRAIN_ARGS)
    other = Generator(size=8, distilling=True)
    rest = load_vfa(other, path)
    assert rest == {"g_optim": None, "args": TRAIN_ARGS}
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), small.state_dict().values()))


def test_a_renamed_key_is_a_one_line_mismatch(tmp_path, small):
    state = dict(small.state_dict())
    state["dec.to_flow.0.bias"] = state.pop("dec.to_flows.0.bias")
    torch.save({"gen": state, "g_optim": None, "args": None}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        load_vfa(small, tmp_path / "bad.pt")
    message = str(error.value)
    assert "\n" not in message and "dec.to_flows.0.bias" in message and "dec.to_flow.0.bias" in message


def test_a_lia_checkpoint_is_named(tmp_path):
    lia = {
        "gen": {"enc.net_app.convs.0.0.weight": torch.zeros(64, 3, 1, 1), "dec.direction.weight": torch.zeros(512, 20)},
        "dis": {},
        "args": None,
    }
    torch.save(lia, tmp_path / "vox.pt")
    with pytest.raises(InputError, match="a 3-channel LIA checkpoint") as error:
        load_inference_generator(tmp_path / "vox.pt")
    assert "\n" not in str(error.value)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(InputError) as error:
        load_inference_generator(tmp_path / "VFA.pt")
    message = str(error.value)
    assert str(tmp_path / "VFA.pt") in message and "Google Drive" in message and "Tsinghua Cloud" in message
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatchError, match="not a VFA checkpoint"):
        load_inference_generator(tmp_path / "other.pt")
