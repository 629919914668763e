"""vfa.train: a few steps reduce the loss in both stages, the command writes official-layout
checkpoints that reload strictly and resumes exactly, LIA-style resume adaptation, the StepLR
schedule, the data stream, two gloo processes under torchrun, and the flags the demo recipes add
(--from_scratch, --flow_head_max_size, --flow_warmup, --same_frame_prob).

Runs at --size 128 (the smallest size whose 1/8 pyramid level still reaches VGG's relu5_1) with
random VGG19 weights, batch 1: about 2.5 s per step on one CPU thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from numerics import ROUNDING
from vfa_train_testlib import write_mmface4d, write_random_vgg19

from common.errors import InputError
from vfa.checkpoint import load_vfa, read_vfa_checkpoint
from vfa.dataset import MMFace4D
from vfa.losses import VGGPyramidLoss, load_vgg19
from vfa.model import Generator
from vfa.model.synthesis import base_grid
from vfa.train import (
    Losses,
    StepSampler,
    adapt_state,
    fix_fine_flow_heads,
    flow_head_parameters,
    main,
    make_optimizer,
    resume,
    same_frame_pairs,
    start_from_scratch,
    train_step,
)

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
    # Each run's second step rounds its gradients its own way (another process-like run: buffers at
    # other addresses take other SIMD paths), and Adam turns a gradient near its eps 1e-8 into a step
    # whose size follows the rounding: measured 1.3e-8 on one bias element (6e-5 of the lr, 2.6e-5
    # of that small tensor's largest value) on an AVX-512 Xeon. So each tensor may differ by rounding
    # of its values plus 1e-3 of the default lr 2e-4; a resume that lost the Adam moments, the step or
    # the data order moves the weights by a sizeable part of the lr.
    for key, value in content["gen"].items():
        allowed = ROUNDING * float(value.abs().max()) + 1e-3 * 2e-4
        worst = float((resumed["gen"][key].double() - value.double()).abs().max())
        assert worst <= allowed, f"{key}: resumed weights differ by {worst:.3g} (allowed {allowed:.3g})"
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


def test_from_scratch_starts_the_student_at_the_identity_warp():
    """Stage 2 with --from_scratch: the student's flow head starts at zero weights, so its flow is
    the base grid whatever the teacher's flow, and its mask is one half; the teacher stays frozen."""
    torch.manual_seed(0)
    gen = Generator(SIZE, distilling=True, channel_divisor=16)
    start_from_scratch(gen, distilling=True)
    source = torch.rand(1, 4, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        _, student = gen(source, torch.rand(1, 4, SIZE, SIZE) * 2 - 1, h_start=gen.enc.enc_motion(source), testing=True)
    assert torch.equal(student["rgb_motion_flow"], base_grid(SIZE, SIZE, like=source))
    assert torch.equal(student["mask"], torch.full_like(student["mask"], 0.5))
    assert all(not p.requires_grad for p in (*gen.enc.parameters(), *gen.dec.parameters()))
    assert gen.student_dec.style_conv.weight.requires_grad


def test_same_frame_pairs_replace_the_driving_frame_at_the_given_rate():
    source, driving = torch.zeros(400, 1, 1, 1), torch.ones(400, 1, 1, 1)
    assert same_frame_pairs(source, driving, 0.0, seed=0, step=0) is driving
    assert torch.equal(same_frame_pairs(source, driving, 1.0, seed=0, step=0), source)
    mixed = same_frame_pairs(source, driving, 0.25, seed=0, step=7).flatten()
    assert 0.18 < (mixed == 0).float().mean() < 0.32  # 100 expected of 400, std 8.7
    assert torch.equal(mixed, same_frame_pairs(source, driving, 0.25, seed=0, step=7).flatten())  # resumable
    assert not torch.equal(mixed, same_frame_pairs(source, driving, 0.25, seed=0, step=8).flatten())


def test_flow_heads_above_the_max_size_keep_zero_weights():
    """--flow_head_max_size 32 at 128 px: the 64 and 128 px heads' convolutions are zero and frozen
    (their levels follow the 32 px flow plus a trained bias), the coarser heads are untouched."""
    torch.manual_seed(0)
    gen = Generator(SIZE, channel_divisor=16)
    before = [head.conv.weight.clone() for head in gen.dec.to_flows]
    fix_fine_flow_heads(gen, 32)
    for level, head in enumerate(gen.dec.to_flows):
        if 8 * 2**level > 32:
            assert head.conv.weight.eq(0).all() and not head.conv.weight.requires_grad
            assert head.bias.requires_grad
        else:
            assert torch.equal(head.conv.weight, before[level])
    optim, _ = make_optimizer(gen, 2e-4, 5000)
    trained = {id(p) for group in optim.param_groups for p in group["params"]}
    assert id(gen.dec.to_flows[3].conv.weight) not in trained and id(gen.dec.to_flows[3].bias) in trained


def test_held_flow_heads_stay_at_zero_while_the_rest_trains(data):
    """--flow_warmup: during the warm-up the flow heads (zero after --from_scratch) are held, so
    every level warps with the identity and a mask of one half, while everything else trains."""
    torch.manual_seed(0)
    gen = Generator(SIZE, channel_divisor=16)
    start_from_scratch(gen, distilling=False)
    optim, _ = make_optimizer(gen, 2e-4, 5000)
    heads = [p.clone() for p in flow_head_parameters(gen)]
    rgb = gen.dec.to_rgbs[-1].conv[0].weight.clone()
    losses = Losses(None, lambda_vgg=0, lambda_rgb_l1=200)
    train_step(gen, optim, first_batch(data[0]), losses, False, held=flow_head_parameters(gen))
    assert all(torch.equal(a, b) for a, b in zip(heads, flow_head_parameters(gen)))
    assert not torch.equal(rgb, gen.dec.to_rgbs[-1].conv[0].weight)
    train_step(gen, optim, first_batch(data[0]), losses, False)  # after the warm-up they train
    assert not torch.equal(heads[-2], flow_head_parameters(gen)[-2])


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--channel_divisor", "3", "--channel_divisor must be one of 1, 2, 4, 8, 16, got 3"),
        ("--flow_head_max_size", "4", "--flow_head_max_size must be at least 8"),
        ("--flow_warmup", "-1", "--flow_warmup must be at least 0, got -1"),
        ("--same_frame_prob", "1.5", "--same_frame_prob must be between 0 and 1, got 1.5"),
    ],
)
def test_flags_out_of_range_are_input_errors(tmp_path, flag, value, message):
    with pytest.raises(InputError, match=message):
        main([flag, value, "--exp_path", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # refused before any work
