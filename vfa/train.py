"""Train VFA: `python -m vfa.train --exp_path DIR --exp_name NAME [--distilling] [--resume_ckpt CKPT]`,
or `torchrun --nproc_per_node N -m vfa.train ...` (GPUs with NCCL, CPUs with gloo).

Stage 1 trains the encoder and the RGBD generator (the layers the generator does not freeze):
VGG19 pyramid perceptual loss on RGB plus the depth L1, structure-preserving and smoothness
terms. Stage 2 (`--distilling`, resuming from a stage-1 checkpoint) freezes both and trains the
flow generator (`student_dec`) against the teacher's RGB. Adam (lr 2e-4, betas (0, 0.99)) over
the trainable parameters; a StepLR (×0.2 every `--lr_freq` = 5000 steps) is stepped every
iteration, as in the original: the lr is 1.6e-6 after 15k steps and ~2e-11 after 50k, so most of
the 800k default iterations barely move the weights (faithful default; raise --lr_freq to change).
Batch `--batch_size` (16) in all, split over the processes.

Checkpoints: `<exp_path>/<exp_name>/checkpoint/<iter:06d>.pt` every `--save_freq` steps (step 0
included) and after the last step, in the official layout {'gen', 'g_optim', 'args'} (what
`--resume_ckpt` and the inference command read), each with `checkpoint/resume/<iter:06d>.pt`
beside it (scheduler, RNG, next step). Resuming from a file with that companion continues exactly
(optimiser and scheduler restored, the next step after the saved one, the same data). Any other
file is resumed as the original does: the 'gen' weights key by key, 3-channel (LIA) tensors copied
into the first 3 channels of the 4-channel ones, unknown keys listed, a fresh optimiser and
scheduler, the start step parsed from the numeric file name (0 when the name is not a number).
Logs: CSV + TensorBoard under `<exp_path>/<exp_name>/log`.

Deviations: any number of processes, CPU included (the original asserts ≥ 2 GPUs; `--addr` and
`--port` are accepted for its command lines, torchrun sets the rendezvous); the data order is a
function of (--seed, step): each epoch is a fresh permutation (the original's DistributedSampler
never gets `set_epoch`, so it repeats epoch 0's order); `--data_root` replaces the hard-coded
`./datasets`; the test images are the first 4 test samples every time.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from common import distributed
from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import InputError, cli_main, require_at_least_one
from common.progress import get_logger, progress
from common.runlog import RunLog
from vfa.checkpoint import load_generator_state, read_vfa_checkpoint, save_vfa
from vfa.dataset import MMFace4D
from vfa.losses import VGG19_FILE, VGGPyramidLoss, distillation_losses, load_vgg19, stage1_losses
from vfa.model import Generator
from vfa.model.encoder import CHANNEL_DIVISORS

DATASETS = ("MMFace4D", "raw")
LR_GAMMA = 0.2
BETAS = (0.0, 0.99)  # the original's integer 0 ** 1 is refused by Adam on recent torch
NUM_DISPLAYED = 4
log = get_logger("vfa.train")


class Losses:
    """The loss weights and the VGG pyramid loss: `stage1` (teacher RGBD vs driving frame) and
    `distillation` (student vs teacher RGB), each a dict of weighted terms.

    Ours, for training without ImageNet VGG19 weights (the demo model): `lambda_vgg` scales the
    perceptual terms (1, the original; with 0 they are left out and `vgg_loss` may be None) and
    `lambda_rgb_l1` adds an L1 term on stage 1's RGB (0, the original, has none)."""

    def __init__(
        self,
        vgg_loss: VGGPyramidLoss | None,
        lambda_l1=200.0,
        lambda_sp=50.0,
        lambda_sm=200.0,
        lambda_vgg=1.0,
        lambda_rgb_l1=0.0,
    ):
        self.vgg_loss = vgg_loss if lambda_vgg else None
        self.lambda_l1, self.lambda_sp, self.lambda_sm = lambda_l1, lambda_sp, lambda_sm
        self.lambda_vgg, self.lambda_rgb_l1 = lambda_vgg, lambda_rgb_l1

    def _scaled(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.lambda_vgg == 1:
            return terms
        return {name: value * self.lambda_vgg if name.startswith("vgg") else value for name, value in terms.items()}

    def stage1(self, recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = stage1_losses(self.vgg_loss, recon, target, self.lambda_l1, self.lambda_sp, self.lambda_sm)
        if self.lambda_rgb_l1:
            terms["rgb_l1_loss"] = F.l1_loss(recon[:, :3], target[:, :3]) * self.lambda_rgb_l1
        return self._scaled(terms)

    def distillation(self, teacher: torch.Tensor, student: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._scaled(distillation_losses(self.vgg_loss, teacher, student, self.lambda_l1))


def train_step(gen, optim, batch, losses: Losses, distilling: bool, scheduler=None, held=()) -> dict[str, float]:
    """One update on (source, driving) [B, C, H, W]: the losses, their sum backpropagated, an
    optimiser step (leaving the parameters in `held` as they are) and (if given) a scheduler step.
    Returns every weighted term and 'loss'."""
    source, driving = batch
    gen.train()
    optim.zero_grad(set_to_none=True)
    if distilling:
        teacher, student = gen(source, driving)
        terms = losses.distillation(teacher, student)
    else:
        terms = losses.stage1(gen(source, driving), driving)
    total = sum(terms.values())
    total.backward()
    for parameter in held:
        parameter.grad = None  # Adam skips a parameter without a gradient
    optim.step()
    if scheduler is not None:
        scheduler.step()
    return {"loss": total.item(), **{name: value.item() for name, value in terms.items()}}


def start_from_scratch(gen: Generator, distilling: bool) -> None:
    """Training without LIA.pt (--from_scratch, ours). Stage 1 trains the layers the original takes
    from LIA and freezes, and starts every flow head at zero weights, i.e. warps that keep the
    features in place; stage 2 starts the student's flow head at zero, i.e. the identity warp.
    Random flow heads move by a quarter of the image or more (a random student on a small model's
    teacher saturates its tanh: every pixel sampled from a corner), too far for the bilinear
    sampling's local gradient to find the way back: the network then learns to mask the warped
    image out and renders a blur, and the student's flow is useless for moving a mesh."""
    with torch.no_grad():
        if distilling:
            gen.student_dec.style_conv.weight.zero_()
            return
        gen.dec.requires_grad_(True)
        for head in gen.dec.to_flows:
            head.conv.weight.zero_()


def fix_fine_flow_heads(gen: Generator, max_size: int) -> None:
    """--flow_head_max_size (ours): the flow heads of the levels finer than `max_size` pixels keep
    zero weights, so those levels warp with the coarser levels' upsampled flow and mask logits plus
    a trained constant (the head's `bias`). Measured on the demo recipe from scratch with L1 alone:
    within 500 steps the 128 and 256 px heads drifted by a quarter of the image and their masks
    closed, so the final flow, the student's input, carried no motion (with them fixed, the 64 px
    head drifted the same way until --flow_warmup held the heads while the rest learnt)."""
    for level, head in enumerate(gen.dec.to_flows):
        if 8 * 2**level > max_size:
            with torch.no_grad():
                head.conv.weight.zero_()
            head.conv.requires_grad_(False)


def flow_head_parameters(gen: Generator) -> list[torch.nn.Parameter]:
    """The stage-1 flow heads' weights and biases, which --flow_warmup holds."""
    return [p for head in gen.dec.to_flows for p in (head.conv.weight, head.bias)]


def same_frame_pairs(source: torch.Tensor, driving: torch.Tensor, probability: float, seed: int, step: int):
    """--same_frame_prob (ours): each pair's driving frame replaced by its source with this
    probability, drawn from numpy's generator seeded with (seed, step, 2) so a resume continues
    the stream. Only the identity warp reproduces such a pair exactly: an anchor for the flows of
    a model trained from scratch (the demo recipes use 0.5)."""
    if not probability:
        return driving
    same = torch.from_numpy(np.random.default_rng([seed, step, 2]).random(len(source)) < probability)
    return torch.where(same.to(driving.device)[:, None, None, None], source, driving)


def make_optimizer(gen: Generator, lr: float, lr_freq: int):
    """Adam over the parameters that require gradients, and the per-iteration StepLR."""
    optim = torch.optim.Adam([p for p in gen.parameters() if p.requires_grad], lr=lr, betas=BETAS)
    return optim, torch.optim.lr_scheduler.StepLR(optim, step_size=lr_freq, gamma=LR_GAMMA)


# ------------------------------------------------------------------------------- resume
def adapt_state(model_state: dict, given: dict) -> tuple[dict, list[str]]:
    """The original's key-by-key resume: equal shapes are taken; a 3-channel tensor (LIA) goes into
    the first 3 entries of the 4-channel axis (0 or 1) of the model's; the rest is kept. Returns
    the new state and the keys that could not be used (unknown or mis-shaped)."""
    state = {k: v.clone() for k, v in model_state.items()}
    skipped = []
    for key, value in given.items():
        target = state.get(key)
        if target is None:
            skipped.append(f"{key} {tuple(value.shape)}")
        elif target.shape == value.shape:
            state[key] = value.to(target.dtype)
        elif target.ndim >= 1 and target.shape[0] == 4 and target[:3].shape == value.shape:
            target[:3] = value
        elif target.ndim >= 2 and target[:, :3].shape == value.shape:
            target[:, :3] = value
        else:
            skipped.append(f"{key} {tuple(value.shape)} vs {tuple(target.shape)}")
    return state, skipped


def companion(checkpoint: Path) -> Path:
    """The exact-resume file written with `checkpoint`."""
    return checkpoint.parent / "resume" / checkpoint.name


def rng_state() -> dict:
    """Python, NumPy and torch RNG states in types a weights-only load accepts."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    key = state["numpy_key"].numpy().astype(np.uint32)
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": state["numpy_pos"]}})
    torch.set_rng_state(state["torch"])


def resume(path, gen: Generator, optim, scheduler, distilling: bool) -> int:
    """Load `path` into `gen` (and, for an exact resume, `optim` / `scheduler` / the RNG); returns
    the first step to run."""
    path = Path(path)
    content = read_vfa_checkpoint(path)
    extra_path = companion(path)
    extra = load_checkpoint(extra_path) if extra_path.is_file() else None
    if extra is not None and extra["distilling"] == distilling:
        load_generator_state(gen, content["gen"], path)
        optim.load_state_dict(content["g_optim"])
        scheduler.load_state_dict(extra["scheduler"])
        set_rng_state(extra["rng"])
        log.info(f"resumed exactly from {path} at step {extra['next_iteration']}")
        return int(extra["next_iteration"])
    state, skipped = adapt_state(gen.state_dict(), content["gen"])
    gen.load_state_dict(state, strict=True)
    for line in skipped:
        log.info(f"not loaded from {path.name}: {line}")
    start = int(path.stem) if path.stem.isdigit() else 0
    log.info(f"loaded weights from {path}; starting at step {start} with a fresh optimiser")
    return start


# ---------------------------------------------------------------------------------- data
class StepSampler(torch.utils.data.Sampler):
    """(sample number, draw) pairs for one process from step `start` on: epoch e is a permutation
    seeded by (seed, e), padded to a multiple of the process count, and process r takes every
    world-th entry from r; `draw` numbers the entry across epochs (it seeds the driving frame).
    The stream is a function of (seed, step, rank, world), so a resume continues it."""

    def __init__(self, length: int, batch_size: int, start: int = 0, rank: int = 0, world: int = 1, seed: int = 0):
        self.length, self.batch, self.start = length, batch_size, start
        self.rank, self.world, self.seed = rank, world, seed
        self.share = -(-length // world)

    def epoch(self, epoch: int) -> list[tuple[int, int]]:
        order = np.resize(
            np.random.default_rng([self.seed, epoch, 1]).permutation(self.length), self.share * self.world
        )
        first = epoch * self.share * self.world
        return [(int(order[i]), first + i) for i in range(self.rank, len(order), self.world)]

    def __iter__(self):
        epoch, offset = divmod(self.start * self.batch, self.share)
        while True:
            yield from self.epoch(epoch)[offset:]
            epoch, offset = epoch + 1, 0


def make_dataset(args, split: str) -> MMFace4D:
    """The --dataset's train ('raw': the Kinect folder's) or test split under --data_root."""
    if args.dataset not in DATASETS:
        raise InputError(f"--dataset {args.dataset}: only {' and '.join(DATASETS)} (LIA's RGB datasets are not ported)")
    if split == "train" and args.dataset == "raw":
        split = "raw"
    return MMFace4D(args.data_root, split, args.in_channels, seed=args.seed, size=args.size)


# ------------------------------------------------------------------------------- display
@torch.no_grad()
def sample(gen, source: torch.Tensor, driving: torch.Tensor, distilling: bool):
    """(reconstruction of the driving frame, the source re-synthesised from its own latent), in eval mode."""
    gen.eval()
    if distilling:
        recon = gen(source, driving)[1]
        reference = gen(source, None)[0][:, :3]
    else:
        recon, reference = gen(source, driving), gen(source, None)
    return recon, reference


def display_images(writer: RunLog, step: int, name: str, images: torch.Tensor) -> None:
    """RGB (and depth as grey) in TensorBoard, min-max normalised over the batch as the original."""
    images = images.clamp(-1, 1)
    images = ((images - images.min()) / (images.max() - images.min())).cpu()
    writer.tensorboard.add_images(name, images[:, :3], step)
    if images.shape[1] > 3:
        writer.tensorboard.add_images(f"{name}_depth", images[:, 3:4].repeat(1, 3, 1, 1), step)


# ------------------------------------------------------------------------------------ run
def train(args: argparse.Namespace, show_progress: bool | None = None) -> list[dict]:
    """Run (or resume) training as `args` say; returns this process's per-step rows. Under torchrun
    the process group must be joined first (`main` does)."""
    process = distributed.current(args.device)
    device, rank, world = process.device, process.rank, process.world
    if args.batch_size < world:
        raise InputError(f"--batch_size {args.batch_size} is smaller than the {world} processes")
    run = Path(args.exp_path) / args.exp_name
    checkpoints = run / "checkpoint"
    dataset = make_dataset(args, "train")
    vgg_loss = VGGPyramidLoss(load_vgg19(args.vgg)).to(device) if args.lambda_loss_vgg else None
    losses = Losses(
        vgg_loss,
        args.lambda_loss_l1,
        args.lambda_loss_sp,
        args.lambda_loss_sm,
        args.lambda_loss_vgg,
        args.lambda_loss_rgb_l1,
    )
    torch.manual_seed(args.seed)  # the same initial weights in every process
    gen = Generator(
        args.size,
        args.latent_dim_style,
        args.latent_dim_motion,
        args.channel_multiplier,
        args.in_channels,
        args.latent_dim_depth_motion,
        distilling=args.distilling,
        channel_divisor=args.channel_divisor,
    ).to(device)
    if args.from_scratch:
        start_from_scratch(gen, args.distilling)
    if args.flow_head_max_size is not None and not args.distilling:
        fix_fine_flow_heads(gen, args.flow_head_max_size)
    optim, scheduler = make_optimizer(gen, args.lr, args.lr_freq)
    start = resume(args.resume_ckpt, gen, optim, scheduler, args.distilling) if args.resume_ckpt else args.start_iter
    # Unused trainable parameters (the noise weights) need find_unused_parameters, as in the original.
    device_ids = [device.index] if device.type == "cuda" else None
    model = gen if world == 1 else DistributedDataParallel(gen, device_ids, find_unused_parameters=True)
    batch = args.batch_size // world
    loader = iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_size=batch,
            sampler=StepSampler(len(dataset), batch, start, rank, world, args.seed),
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
            pin_memory=device.type == "cuda",
        )
    )
    writer = RunLog(run / "log") if process.is_main else None
    shown = None
    if process.is_main:
        log.info(f"{len(dataset)} training samples, {world} process(es) on {device}, batch {batch} each")
        try:
            test_set = make_dataset(args, "test")
            shown = [torch.stack(t) for t in zip(*(test_set[i] for i in range(min(NUM_DISPLAYED, len(test_set)))))]
        except InputError as exc:
            log.info(f"no test images shown ({exc})")

    def save(step: int) -> None:
        name = f"{step:06d}.pt"
        save_checkpoint(
            {
                "next_iteration": step + 1,
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "distilling": args.distilling,
            },
            companion(checkpoints / name),
        )
        save_vfa(checkpoints / name, gen, optim, args)

    rows = []
    bar = progress(
        range(start, args.iter),
        desc="vfa.train",
        total=args.iter,
        initial=start,
        disable=None if show_progress is None else not show_progress,
    )
    for step in bar:
        source, driving = (t.to(device, non_blocking=True) for t in next(loader))
        driving = same_frame_pairs(source, driving, args.same_frame_prob, args.seed + rank, step)
        lr = optim.param_groups[0]["lr"]
        held = flow_head_parameters(gen) if step < args.flow_warmup and not args.distilling else ()
        values = train_step(model, optim, (source, driving), losses, args.distilling, scheduler, held)
        rows.append({"it": step, **values})
        if writer is not None:
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            if step % args.log_freq == 0:
                writer.scalars("train", step, {**values, "lr": lr})
            if step % args.display_freq == 0:
                log.info(f"[Iter {step}/{args.iter}] " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
                if shown is not None:
                    recon, reference = sample(gen, *(t.to(device) for t in shown), args.distilling)
                    for name, images in (("source", shown[0]), ("target", shown[1]), ("source_ref", reference)):
                        display_images(writer, step, name, images)
                    if isinstance(recon, dict):
                        display_images(writer, step, "recon_warp", recon["out_warp"])
                        display_images(writer, step, "recon_inpaint", recon["out_inpaint"])
                    else:
                        display_images(writer, step, "recon", recon)
            if step % args.save_freq == 0 or step == args.iter - 1:
                save(step)
    if writer is not None:
        writer.close()
    return rows


def recipe_line(line: str) -> list[str]:
    """An `@FILE` line's arguments ('--flag=value' or '--flag value'); blank lines and # comments give none."""
    line = line.strip()
    return [] if not line or line.startswith("#") else line.split()


def build_parser() -> argparse.ArgumentParser:
    """The original train.py's flags (same defaults) and ours: --device, --data_root, --vgg, --seed,
    --log_freq, --workers, --channel_divisor, --lambda_loss_vgg, --lambda_loss_rgb_l1,
    --from_scratch, --flow_head_max_size, --flow_warmup, --same_frame_prob. `@FILE`
    reads flags from FILE, one '--flag=value' per line, # comments allowed (the demo model's
    recipes in vfa/runs/); later flags override it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], fromfile_prefix_chars="@")
    parser.convert_arg_line_to_args = recipe_line
    ints = dict(
        iter=800000, size=256, batch_size=16, in_channels=4, g_reg_every=4, channel_multiplier=1, start_iter=0,
        lr_freq=5000, display_freq=2000, save_freq=1000, latent_dim_style=512, latent_dim_motion=20,
        latent_dim_depth_motion=5,
    )  # fmt: skip
    for name, default in ints.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    for name, default in (("lambda_loss_l1", 200.0), ("lambda_loss_sm", 200.0), ("lambda_loss_gr", 100.0)):
        parser.add_argument(f"--{name}", type=float, default=default)
    parser.add_argument("--lambda_loss_sp", type=float, default=50.0)
    parser.add_argument(
        "--lambda_loss_vgg", type=float, default=1.0, help="perceptual terms' weight (0: left out, no --vgg read)"
    )
    parser.add_argument("--lambda_loss_rgb_l1", type=float, default=0.0, help="stage 1: L1 on the teacher's RGB")
    parser.add_argument(
        "--from_scratch",
        action="store_true",
        help="without LIA.pt: stage 1 trains the layers the original freezes; the flow heads start at zero",
    )
    parser.add_argument(
        "--flow_head_max_size",
        type=int,
        default=None,
        help="stage 1: the flow heads of finer levels keep zero weights (default: every head is trained)",
    )
    parser.add_argument(
        "--flow_warmup",
        type=int,
        default=0,
        help="stage 1: the flow heads are not updated for the first N steps (0, the original)",
    )
    parser.add_argument(
        "--same_frame_prob",
        type=float,
        default=0.0,
        help="probability of a pair whose driving frame is its source (0, the original: none)",
    )
    parser.add_argument("--lr", type=float, default=0.0002)
    parser.add_argument("--resume_ckpt", default=None, help="a checkpoint of this trainer, or LIA's / VFA's")
    parser.add_argument("--dataset", default="MMFace4D", help="MMFace4D or raw (the Kinect folder alone)")
    parser.add_argument("--exp_path", default="./saved_models/")
    parser.add_argument("--exp_name", default="v1")
    parser.add_argument("--addr", default="localhost", help="ignored: torchrun sets the rendezvous")
    parser.add_argument("--port", default="12345", help="ignored: torchrun sets the rendezvous")
    parser.add_argument("--distilling", action="store_true", help="stage 2: train the flow generator only")
    parser.add_argument("--data_root", default="./datasets", help="folder with MMFace4D/, MMFace4D_test/, kinect_data/")
    parser.add_argument("--vgg", default=str(VGG19_FILE), help="torchvision's vgg19-dcbb9e9d.pth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log_freq", type=int, default=1, help="log the losses every N steps")
    parser.add_argument("--workers", type=int, default=8, help="data loader processes (per training process)")
    parser.add_argument(
        "--channel_divisor",
        type=int,
        default=1,
        help="narrow every convolution by this factor (1, the official widths)",
    )
    distributed.add_device_argument(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    require_at_least_one(args, "save_freq", "display_freq", "log_freq", "lr_freq", "batch_size")
    if args.flow_head_max_size is not None and args.flow_head_max_size < 8:
        raise InputError(f"--flow_head_max_size must be at least 8 (the coarsest flow), got {args.flow_head_max_size}")
    if args.flow_warmup < 0:
        raise InputError(f"--flow_warmup must be at least 0, got {args.flow_warmup}")
    if not 0 <= args.same_frame_prob <= 1:
        raise InputError(f"--same_frame_prob must be between 0 and 1, got {args.same_frame_prob}")
    if args.channel_divisor not in CHANNEL_DIVISORS:
        raise InputError(
            f"--channel_divisor must be one of {', '.join(map(str, CHANNEL_DIVISORS))}, got {args.channel_divisor}"
        )
    distributed.start(args.device)
    try:
        train(args)
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main)())
