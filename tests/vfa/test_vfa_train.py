"""vfa.train: a few steps reduce the loss in both stages, the command writes official-layout
checkpoints that reload strictly and resumes exactly, LIA-style resume adaptation, the StepLR
schedule, the data stream, and two gloo processes under torchrun.

Runs at --size 128 (the smallest size whose 1/8 pyramid level still reaches VGG's relu5_1) with
random VGG19 weights, batch 1: about 2.5 s per step on one CPU thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from numerics import ROUNDING, assert_close
from vfa_train_testlib import write_mmface4d, write_random_vgg19

from common.errors import InputError
from vfa.checkpoint import load_vfa, read_vfa_checkpoint
from vfa.dataset import MMFace4D
from vfa.losses import VGGPyramidLoss, load_vgg19
from vfa.model import Generator
from vfa.train import Losses, StepSampler, adapt_state, main, make_optimizer, resume, train_step

SIZE = 128
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_mmface4d(tmp_path_factory.mktemp("data"), SIZE, videos=(5,), frames=3)
    return root, write_random_vgg19(root / "vgg19-dcbb9e9d.pth")


@pytest.fixture(scope="module")
def losses(data):
    return Losses(VGGPyramidLoss(load_vgg19(data[1])))


def first_batch(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    source, driving = MMFace4D(root, "train", size=SIZE)[(0, 1)]
    return source[None], driving[None]


# Adam's first updates are sign-sized (beta1 = 0): on a random teacher the BatchNorm student
# overshoots at the default 2e-4, so stage 2 is checked at 2e-5.
@pytest.mark.parametrize(("distilling", "lr"), [(False, 2e-4), (True, 2e-5)], ids=["stage1", "distilling"])
def test_a_step_reduces_the_loss(data, losses, distilling, lr):
    torch.manual_seed(0)
    gen = Generator(SIZE, distilling=distilling)
    optim, scheduler = make_optimizer(gen, lr, 5000)
    batch = first_batch(data[0])
    values = [train_step(gen, optim, batch, losses, distilling, scheduler) for _ in range(2)]
    expected = {"l1_loss", "vgg_loss", "l1_loss_warp", "vgg_loss_warp"} if distilling else {"l1_loss", "vgg_loss"}
    assert expected <= set(values[0])
    assert values[1]["loss"] < values[0]["loss"]
    if distilling:  # the teacher is frozen
        assert all(not p.requires_grad for p in (*gen.enc.parameters(), *gen.dec.parameters()))


def command(data, exp_path: Path, name: str, *extra: str) -> list[str]:
    root, vgg = data
    return [
        *("--size", str(SIZE), "--batch_size", "1", "--workers", "0", "--data_root", str(root), "--vgg", str(vgg)),
        *("--exp_path", str(exp_path), "--exp_name", name, "--display_freq", "1000", *extra),
    ]


def test_checkpoints_reload_strictly_and_resume_exactly(data, tmp_path):
    main(command(data, tmp_path, "a", "--iter", "2", "--save_freq", "1"))
    folder = tmp_path / "a" / "checkpoint"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["000000.pt", "000001.pt"]
    content = read_vfa_checkpoint(folder / "000001.pt")
    assert set(content) == {"gen", "g_optim", "args"} and content["args"].iter == 2
    assert content["g_optim"]["param_groups"][0]["betas"] == (0.0, 0.99)
    load_vfa(Generator(SIZE), folder / "000001.pt")  # strict
    assert (tmp_path / "a" / "log" / "log.csv").is_file()

    main(command(data, tmp_path, "b", "--iter", "2", "--save_freq", "100", "--resume_ckpt", str(folder / "000000.pt")))
    resumed = read_vfa_checkpoint(tmp_path / "b" / "checkpoint" / "000001.pt")
    for key, value in content["gen"].items():
        assert_close(resumed["gen"][key], value, ROUNDING, key)
    assert not (tmp_path / "b" / "checkpoint" / "000000.pt").exists()  # step 1 only

    # A stage-1 file resumed for distillation: the original's adaptation path, step from the name.
    torch.manual_seed(0)
    student = Generator(SIZE, distilling=True)
    fresh = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("student_dec.")}
    optim, scheduler = make_optimizer(student, 2e-4, 5000)
    assert resume(folder / "000001.pt", student, optim, scheduler, distilling=True) == 1
    state = student.state_dict()
    assert all(torch.equal(state[k], v) for k, v in fresh.items())
    assert torch.equal(state["enc.fc.4.weight"], content["gen"]["enc.fc.4.weight"])


def test_from_scratch_trains_what_the_original_freezes_from_identity_warps(data, tmp_path):
    """--from_scratch (ours, stage 1 without LIA.pt): the flow heads start at zero weights and the
    8x8 level's, frozen by the original, is trained; without the flag it keeps its random values."""
    name = "dec.to_flows.0.conv.weight"
    torch.manual_seed(0)
    initial = Generator(SIZE).state_dict()[name]  # vfa.train seeds 0 before building its generator
    for flag in ((), ("--from_scratch",)):
        run = f"scratch{len(flag)}"
        main(command(data, tmp_path, run, "--iter", "1", "--save_freq", "1", "--lambda_loss_vgg", "0", *flag))
        after = read_vfa_checkpoint(tmp_path / run / "checkpoint" / "000000.pt")["gen"][name]
        if flag:
            assert not torch.equal(after, torch.zeros_like(after))  # trained away from zero
            assert after.abs().max() < 1e-2 < initial.abs().max()  # one Adam step from zero, lr 2e-4
        else:
            assert torch.equal(after, initial)


def test_lia_style_resume_copies_into_the_first_three_channels():
    model = {"enc.in": torch.zeros(64, 4, 1, 1), "dec.rgb1": torch.zeros(4, 8), "same": torch.zeros(2)}
    given = {"enc.in": torch.ones(64, 3, 1, 1), "dec.rgb1": torch.ones(3, 8), "same": torch.ones(2)}
    given["unknown"] = torch.ones(1)
    state, skipped = adapt_state(model, given)
    assert state["enc.in"][:, :3].eq(1).all() and state["enc.in"][:, 3].eq(0).all()
    assert state["dec.rgb1"][:3].eq(1).all() and state["dec.rgb1"][3].eq(0).all()
    assert state["same"].eq(1).all() and skipped == ["unknown (1,)"]
    assert model["enc.in"].eq(0).all()  # the model's own tensors are untouched


def test_step_lr_decays_every_iteration():
    optim, scheduler = make_optimizer(torch.nn.Linear(2, 2), 2e-4, 5)
    rates = []
    for _ in range(11):
        rates.append(optim.param_groups[0]["lr"])
        optim.step()
        scheduler.step()
    assert rates[:5] == [2e-4] * 5 and rates[5] == pytest.approx(4e-5) and rates[10] == pytest.approx(8e-6)


def test_step_sampler_continues_on_resume_and_splits_ranks():
    def take(sampler, count):
        stream = iter(sampler)
        return [next(stream) for _ in range(count)]

    whole = take(StepSampler(7, 2, start=0, seed=5), 20)
    assert take(StepSampler(7, 2, start=3, seed=5), 14) == whole[6:]
    assert sorted(i for i, _ in whole[:7]) == list(range(7))
    assert len({draw for _, draw in whole}) == 20
    ranks = [take(StepSampler(7, 1, rank=r, world=2, seed=5), 4) for r in range(2)]
    assert sorted(i for r in ranks for i, _ in r[:4]) == sorted([*range(7), whole[0][0]])


@pytest.mark.slow  # about 20-45 s: two processes import torch and build the generator
def test_torchrun_two_gloo_processes(data, tmp_path):
    args = command(data, tmp_path, "ddp", "--iter", "1", "--batch_size", "2", "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run([*run, "-m", "vfa.train", *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es)" in result.stderr
    load_vfa(Generator(SIZE), tmp_path / "ddp" / "checkpoint" / "000000.pt")


def test_a_channel_divisor_outside_the_widths_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="--channel_divisor must be one of 1, 2, 4, 8, 16, got 3"):
        main(["--channel_divisor", "3", "--exp_path", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # refused before any work
