"""Stage 1, the grid-codebook autoencoder: `python -m vpgc.codebook.train --base configs/obama_sliding_4.yaml -t True`.

The original's `main.py` on pytorch-lightning 1.5, as a plain loop with the same semantics: per
batch (4 consecutive frames) a generator step (optimizer 0) then a discriminator step (optimizer 1),
each with its own forward pass and with the other optimiser's parameters frozen (Lightning's
`toggle_optimizer`); both Adam(betas 0.5, 0.9) at lr = accumulate(1) x processes x batch(1) x
base_learning_rate; `global_step` counts batches; the whole model is in train mode, so LPIPS's
dropout is active (taming's quirk). Callbacks: `N-Step-Checkpoint_{epoch}_{global_step}.ckpt` when
global_step % 5000 == 0 (step 0 included, the checkpoint holds the weights after that batch and
the Lightning fields epoch+1 / global_step+1), input and reconstruction PNGs at batches 0, 32, 64,
..., 512 and every 1000th of an epoch, and a validation pass over `images/test` after each epoch.

Deviations: `--resume` works (the original's never reached the trainer) and is exact, continuing in
the run's log directory; the data order is a function of (seed, epoch); Lightning's sanity-check
validation is not run; `--learn_codebook` lets the codebook learn (the original's never gets a
gradient). Unknown `key=value` or `--key value` arguments override the config, as in main.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from common import distributed
from common.checkpoint import load_strict
from common.config import read_yaml
from common.errors import InputError, cli_main
from common.image import write_image
from common.progress import get_logger, progress
from common.runlog import RunLog
from vpgc.checkpoint import load_stage1, read_checkpoint, save_stage1
from vpgc.config import load_config, resolve_config
from vpgc.data import GROUP, TEST_LIMIT, FrameGroups
from vpgc.model import VQGridModel
from vpgc.training import (
    batches,
    epoch_order,
    grid_to_uint8,
    image_grid,
    rng_state,
    seed_everything,
    set_rng_state,
    str2bool,
)

CHECKPOINT_EVERY = 5000  # CheckpointEveryNSteps
IMAGE_EVERY = 1000  # ImageLogger batch_frequency
PREFIX = "N-Step-Checkpoint"
log = get_logger("vpgc.codebook.train")


# ---------------------------------------------------------------------------------- one step
@contextlib.contextmanager
def frozen(params):
    """Lightning's toggle_optimizer: `params` get requires_grad False for the block, then their flags back."""
    params = list(params)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class GeneratorForward(torch.nn.Module):
    """The autoencoder pass as a module of its own, so that DistributedDataParallel syncs only what
    the generator optimiser steps (built while the other parameters are frozen)."""

    def __init__(self, model: VQGridModel):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model(images)


class DiscriminatorLoss(torch.nn.Module):
    """The discriminator step's loss as a module: DistributedDataParallel over the discriminator."""

    def __init__(self, model: VQGridModel):
        super().__init__()
        self.loss = model.loss

    def forward(self, codebook_loss, inputs, reconstructions, global_step: int):
        return self.loss(codebook_loss, inputs, reconstructions, 1, global_step, split="train")


def make_optimizers(model: VQGridModel, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """The original's configure_optimizers: autoencoder (codebook included) and discriminator."""
    return (
        torch.optim.Adam(model.generator_parameters(), lr=lr, betas=(0.5, 0.9)),
        torch.optim.Adam(model.loss.discriminator.parameters(), lr=lr, betas=(0.5, 0.9)),
    )


def wrap_for_processes(model: VQGridModel, process: distributed.Process):
    """(generator forward, discriminator loss), each in DistributedDataParallel when there are several
    processes; None for one process. Built with the parameters the module must not sync frozen."""
    if process.world == 1:
        return None
    still = [] if model.quantize.learn_codebook else [model.quantize.embedding]
    with frozen(list(model.loss.discriminator.parameters()) + still):
        generator = process.wrap(GeneratorForward(model))
    with frozen(model.generator_parameters()):
        discriminator = process.wrap(DiscriminatorLoss(model))
    return generator, discriminator


def train_step(model: VQGridModel, optimizers, batch: torch.Tensor, global_step: int, wrapped=None) -> dict:
    """One Lightning batch on 4 frames [4, 3, H, W] in [-1, 1]: the generator step (its own forward,
    discriminator frozen), then the discriminator step (a fresh forward, generator frozen). `wrapped`
    is `wrap_for_processes`' pair under torchrun. Returns the logged scalars as floats."""
    opt_ae, opt_disc = optimizers
    model.train()
    generator, discriminator = wrapped or (model, None)
    with frozen(model.loss.discriminator.parameters()):
        reconstructions, codebook_loss, _ = generator(batch)
        aeloss, values = model.loss(
            codebook_loss, batch, reconstructions, 0, global_step, last_layer=model.last_layer(), split="train"
        )
        opt_ae.zero_grad(set_to_none=True)
        aeloss.backward()
        opt_ae.step()
    with frozen(model.generator_parameters()):
        with torch.no_grad():  # the generator's parameters are frozen: no graph, as in the original
            reconstructions, codebook_loss, _ = model(batch)
        if discriminator is None:
            discloss, disc_values = model.loss(codebook_loss, batch, reconstructions, 1, global_step, split="train")
        else:
            discloss, disc_values = discriminator(codebook_loss, batch, reconstructions, global_step)
        opt_disc.zero_grad(set_to_none=True)
        discloss.backward()
        opt_disc.step()
    values.update(disc_values)
    row = {"aeloss": aeloss.item(), "discloss": discloss.item()}
    row.update({name.split("/", 1)[-1]: float(value) for name, value in values.items()})
    return row


# --------------------------------------------------------------------------------- callbacks
class ImageSchedule:
    """The ImageLogger's batches: every `every`-th batch of an epoch, plus the powers of two from 16 to
    every/2 once per run (the original pops one of them at each logged batch, so 16 is never reached)."""

    def __init__(self, every: int = IMAGE_EVERY, pending: list[int] | None = None):
        self.every = every
        self.pending = pending if pending is not None else [2**n for n in range(int(math.log2(every)) + 1)][4:]

    def due(self, batch_idx: int) -> bool:
        if batch_idx % self.every == 0 or batch_idx in self.pending:
            if self.pending:
                self.pending.pop(0)
            return True
        return False


@torch.no_grad()
def log_images(model: VQGridModel, batch: torch.Tensor, folder: Path, global_step: int, epoch: int, batch_idx: int):
    """`inputs_*.png` and `reconstructions_*.png`: the 4 frames side by side, clamped to [-1, 1], in eval mode."""
    was_training = model.training
    model.eval()
    reconstructions, _, _ = model(batch)
    model.train(was_training)
    name = f"gs-{global_step:06}_e-{epoch:06}_b-{batch_idx:06}.png"
    for key, images in (("inputs", batch), ("reconstructions", reconstructions)):
        grid = image_grid(images.clamp(-1, 1).cpu(), nrow=4)
        write_image(folder / f"{key}_{name}", grid_to_uint8(grid))


def limited(limit: float | int, total: int) -> int:
    """Lightning's limit_*_batches: a float is a fraction of `total`, an int a count."""
    if isinstance(limit, float):
        return int(total * min(max(limit, 0.0), 1.0))
    return min(max(limit, 0), total)


@torch.no_grad()
def validate(model: VQGridModel, dataset, count: int, global_step: int, device) -> dict[str, float]:
    """The original's validation_step (both loss branches, eval mode) averaged over the first `count`
    test groups."""
    model.eval()
    sums: dict[str, float] = {}
    for index in range(count):
        images = dataset[index].to(device)
        reconstructions, codebook_loss, _ = model(images)
        for idx, name in ((0, "aeloss"), (1, "discloss")):
            loss, values = model.loss(codebook_loss, images, reconstructions, idx, global_step, split="val")
            values[name] = loss
            for key, value in values.items():
                key = key.split("/", 1)[-1]
                sums[key] = sums.get(key, 0.0) + float(value)
    model.train()
    return {key: total / count for key, total in sums.items()}


# ------------------------------------------------------------------------------------ the run
def learning_rate(config: dict, processes: int) -> float:
    """main.py's rule: accumulate_grad_batches (1) x GPUs (here: processes) x batch_size x base_learning_rate."""
    return processes * config["data"]["params"]["batch_size"] * config["model"]["base_learning_rate"]


def load_lpips(module: torch.nn.Module, paths) -> None:
    """LPIPS weights, strictly: one file (an LPIPS state dict, or a stage-1 checkpoint with
    `loss.perceptual_loss.*`) or two (torchvision's VGG16 `vgg16-397923af.pth` and taming's lin
    weights `vgg.pth`, in any order)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    state: dict = {}
    for path in paths:
        content = read_checkpoint(path)
        part = content.get("state_dict", content)
        if not isinstance(part, Mapping):
            raise InputError(f"{path}: not a state dict or a checkpoint with a state_dict")
        prefix = "loss.perceptual_loss."
        if any(key.startswith(prefix) for key in part):
            part = {key[len(prefix) :]: value for key, value in part.items() if key.startswith(prefix)}
        elif "features.0.weight" in part:  # torchvision VGG16
            part = module.vgg16_state(part)
        state.update(part)
    if len(paths) > 1:  # the scaling buffers are constants that neither of the two files holds
        state = {**{k: v for k, v in module.state_dict().items() if k.startswith("scaling_layer.")}, **state}
    load_strict(module, state, source=" + ".join(str(p) for p in paths))


def resume_file(path) -> Path:
    """The checkpoint to resume from: a file, or a log directory's checkpoints/last.ckpt, else its
    N-Step checkpoint with the highest step."""
    path = Path(path)
    if path.is_file():
        return path
    folder = path / "checkpoints"
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    found = sorted(folder.glob(f"{PREFIX}_*_*.ckpt"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    if not found:
        raise InputError(f"{path}: no checkpoint to resume from (neither a file nor a log directory with checkpoints)")
    return found[-1]


def train(
    config: dict,
    data_root,
    logdir,
    resume=None,
    seed: int = 23,
    max_steps: int | None = None,
    max_epochs: int | None = None,
    device=None,
    lpips=None,
    learn_codebook: bool = False,
    num_workers: int | None = None,
    log_every: int = 50,
    checkpoint_every: int = CHECKPOINT_EVERY,
    image_every: int = IMAGE_EVERY,
    limit_val_batches: float | int = 1.0,
    show_progress: bool | None = None,
) -> list[dict]:
    """Train (or resume exactly from `resume`, a checkpoint written here) into `logdir`; returns this
    process's per-step rows. Under torchrun the process group must be joined first (`main` does).
    `max_epochs` defaults to Lightning's 1000, or unlimited when `max_steps` is given."""
    process = distributed.current(device)
    device, is_main = process.device, process.is_main
    logdir, data_root = Path(logdir), Path(data_root)
    max_epochs = max_epochs if max_epochs is not None else (1000 if max_steps is None else math.inf)
    perceptual = config["model"]["params"]["lossconfig"].get("params", {}).get("perceptual_weight", 1.0) > 0
    if perceptual and lpips is None and resume is None:
        raise InputError(
            "the perceptual loss needs LPIPS weights: pass --lpips FILE (an LPIPS state dict, or a stage-1 "
            "checkpoint holding loss.perceptual_loss.*) or --lpips vgg16-397923af.pth vgg.pth (torchvision's "
            "VGG16 and taming's lin weights), or set model.params.lossconfig.params.perceptual_weight=0"
        )
    dataset = FrameGroups(data_root, "train")
    test_folder = data_root / "images" / "test"
    has_test = test_folder.is_dir() and len(list(test_folder.glob("*.[jp][pn]g"))) >= GROUP  # validation is optional
    val_set = FrameGroups(data_root, "test", limit=TEST_LIMIT) if has_test else None
    val_count = limited(limit_val_batches, len(val_set)) if val_set is not None else 0
    workers = config["data"]["params"]["num_workers"] if num_workers is None else num_workers

    seed_everything(seed)
    model = VQGridModel.from_config(config, with_loss=True, learn_codebook=learn_codebook)
    if lpips is not None:
        load_lpips(model.loss.perceptual_loss, lpips)
    model.to(device)
    lr = learning_rate(config, process.world)
    opt_ae, opt_disc = make_optimizers(model, lr)
    epoch, first_batch, step, schedule = 0, 0, 0, ImageSchedule(image_every)
    if resume is not None:
        resume = resume_file(resume)
        extra = load_stage1(resume, model)
        states = extra.get("optimizer_states") or []
        for optimizer, saved in zip((opt_ae, opt_disc), states):
            optimizer.load_state_dict(saved)
        own = extra.get("vpgc_resume")
        if own is not None:
            epoch, first_batch, step = own["epoch"], own["batch"], own["global_step"]
            schedule = ImageSchedule(image_every, list(own["image_steps"]))
            set_rng_state(own["rng"])
        else:  # a Lightning file: its epoch/global_step fields say where Lightning would go on
            epoch, step = int(extra.get("epoch", 0)), int(extra.get("global_step", 0))
        if is_main:
            log.info(f"resumed from {resume} at epoch {epoch}, batch {first_batch}, global step {step}")
    wrapped = wrap_for_processes(model, process)
    if is_main:
        (logdir / "configs").mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
        (logdir / "configs" / f"{stamp}-project.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        log.info(f"log directory {logdir}; learning rate {lr:.2e}; {len(dataset)} training samples; device {device}")
    writer = RunLog(logdir) if is_main else None

    def save(path: Path, epoch: int, next_batch: int, done: int) -> None:
        at_max = max_steps is not None and done >= max_steps
        save_stage1(
            path,
            model,
            epoch=epoch if at_max else epoch + 1,  # what Lightning 1.5 writes
            global_step=done,
            optimizers=(opt_ae, opt_disc),
            lr_schedulers=[],
            vpgc_resume={
                "epoch": epoch,
                "batch": next_batch,
                "global_step": done,
                "image_steps": list(schedule.pending),
                "rng": rng_state(),
            },
        )

    per_epoch = len(epoch_order(len(dataset), seed, 0, process.rank, process.world))
    total = max_steps if max_steps is not None else int(max_epochs * per_epoch)
    bar = progress(
        None,
        desc="vpgc stage 1",
        total=total,
        initial=step,
        disable=None if show_progress is None else not show_progress,
    )
    rows: list[dict] = []

    def stop() -> bool:
        return max_steps is not None and step >= max_steps

    while epoch < max_epochs and not stop():
        order = epoch_order(len(dataset), seed, epoch, process.rank, process.world)
        stream = batches(dataset, order[first_batch:], workers, device)
        for batch_idx in range(first_batch, len(order)):
            batch = next(stream).to(device)
            values = train_step(model, (opt_ae, opt_disc), batch, step, wrapped)
            rows.append({"it": step, **values})
            if is_main and schedule.due(batch_idx):
                log_images(model, batch, logdir / "images" / "train", step, epoch, batch_idx)
            if is_main and step % checkpoint_every == 0:
                save(logdir / "checkpoints" / f"{PREFIX}_{epoch}_{step}.ckpt", epoch, batch_idx + 1, step + 1)
            if writer and (step + 1) % log_every == 0:
                writer.scalars("train", step, {**values, "lr": lr})
            bar.update(1)
            bar.set_postfix(aeloss=f"{values['aeloss']:.4f}", discloss=f"{values['discloss']:.4f}")
            step, first_batch = step + 1, batch_idx + 1
            if stop():
                break
        if first_batch < len(order):  # max_steps reached inside the epoch
            break
        if is_main and val_count:
            writer.scalars("val", step, validate(model, val_set, val_count, step, device))
        epoch, first_batch = epoch + 1, 0
    bar.close()
    if is_main:
        save(logdir / "checkpoints" / "last.ckpt", epoch, first_batch, step)
        writer.close()
    return rows


# ------------------------------------------------------------------------------------ command
def dotlist(unknown: list[str]) -> list[str]:
    """main.py's config overrides as `key=value` items: given as `a.b=value`, `--a.b=value` or `--a.b value`."""
    items, overrides = list(unknown), []
    while items:
        item = items.pop(0)
        key, sep, value = item.lstrip("-").partition("=")
        if not sep:
            if not item.startswith("--") or not items or items[0].startswith("--"):
                raise InputError(f"unrecognised argument {item!r} (config overrides are key=value or --key value)")
            value = items.pop(0)
        overrides.append(f"{key}={value}")
    return overrides


def data_root_of(args: argparse.Namespace, config: dict) -> Path:
    """--data_root, else `subject.data_root` of the talking_config file the config's train data names."""
    if args.data_root:
        return Path(args.data_root)
    listing = Path(config["data"]["params"]["train"]["params"]["training_images_list_file"])
    if listing.is_file():
        subject = read_yaml(listing).get("subject") or {}
        if "data_root" in subject:
            return Path(subject["data_root"])
    raise InputError(f"no training data: pass --data_root DATA/Subject (or create {listing} with subject.data_root)")


def device_of(args: argparse.Namespace):
    """--device, else Lightning's --gpus read as GPU indices ('0,' or '0': GPU 0; '-1': the CPU)."""
    if args.device is not None or args.gpus is None:
        return args.device
    indices = [i for i in args.gpus.split(",") if i.strip()]
    if not indices or indices == ["-1"]:
        return "cpu"
    if len(indices) > 1:
        raise InputError(f"--gpus {args.gpus}: one process per GPU; launch torchrun --nproc_per_node {len(indices)}")
    return f"cuda:{int(indices[0])}"


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m vpgc.codebook.train", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--name", nargs="?", const="", default="", help="postfix of the log directory")
    parser.add_argument("-r", "--resume", nargs="?", const="", default="", help="log directory or checkpoint to resume")
    parser.add_argument(
        "-b", "--base", nargs="*", default=[], help="config files (or bundled names), merged left to right"
    )
    parser.add_argument("-t", "--train", type=str2bool, nargs="?", const=True, default=False, help="train (true/false)")
    parser.add_argument(
        "--no-test", type=str2bool, nargs="?", const=True, default=False, help="accepted; no test stage is configured"
    )
    parser.add_argument("-p", "--project", help="accepted for compatibility; no effect")
    parser.add_argument(
        "-d", "--debug", type=str2bool, nargs="?", const=True, default=False, help="accepted; no effect"
    )
    parser.add_argument("-s", "--seed", type=int, default=23, help="seed for seed_everything")
    parser.add_argument("-f", "--postfix", default="", help="post-postfix of the log directory name")
    parser.add_argument("-l", "--logdir", default="logs", help="folder of the run directories (default: logs)")
    parser.add_argument("--data_root", help="subject folder with images/train (and images/test for validation)")
    parser.add_argument(
        "--lpips",
        nargs="+",
        help="LPIPS weights: an LPIPS state dict or a stage-1 checkpoint, or torchvision's vgg16-397923af.pth "
        "and taming's vgg.pth",
    )
    parser.add_argument(
        "--learn_codebook", action="store_true", help="let the codebook learn (the original's stays random)"
    )
    parser.add_argument("--gpus", help="Lightning's flag, read as GPU indices: '0,' trains on GPU 0")
    parser.add_argument("--max_steps", type=int, help="stop after this many global steps")
    parser.add_argument("--max_epochs", type=int, help="stop after this many epochs (default 1000 without --max_steps)")
    parser.add_argument("--log_every_n_steps", type=int, default=50, help="CSV/TensorBoard logging interval")
    parser.add_argument("--limit_val_batches", type=str, default="1.0", help="validation groups: a fraction or a count")
    parser.add_argument("--num_workers", type=int, help="data loader workers (default: the config's)")
    parser.add_argument("--save_step_frequency", type=int, default=CHECKPOINT_EVERY, help="N-Step checkpoint interval")
    distributed.add_device_argument(parser)
    args, unknown = parser.parse_known_args(argv)
    return args, dotlist(unknown)


def _limit(text: str) -> float | int:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise InputError(f"--limit_val_batches {text!r}: expected a fraction (0.5) or a count (10)") from None


def load_merged_config(bases: list[str], overrides: list[str]) -> dict:
    """main.py's merge: the base configs left to right (default: the bundled obama_sliding_4), then the overrides."""
    if len(bases) <= 1:
        return load_config(bases[0] if bases else "obama_sliding_4", overrides)
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, read_yaml(resolve_config(base)))
    return load_config(merged, overrides)


def _deep_merge(base: dict, new: dict) -> dict:
    out = dict(base)
    for key, value in new.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@cli_main
def main(argv=None) -> int:
    args, overrides = parse_args(argv)
    if not args.train:
        raise InputError("nothing to do: pass -t True to train (reconstructions: python -m vpgc.codebook.test)")
    resume = resume_file(args.resume) if args.resume else None
    bases = args.base
    if resume is not None and resume.parent.name == "checkpoints":
        logdir = resume.parent.parent
        if not bases:
            saved = sorted((logdir / "configs").glob("*-project.yaml"))
            bases = [str(saved[-1])] if saved else []
    else:
        stem = args.name or (Path(bases[0]).stem if bases else "")
        now = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
        logdir = Path(args.logdir) / f"{now}{'_' + stem if stem else ''}{args.postfix}"
    config = load_merged_config(bases, overrides)
    data_root = data_root_of(args, config)
    process = distributed.start(device_of(args))
    try:
        train(
            config,
            data_root,
            logdir,
            resume=resume,
            seed=args.seed,
            max_steps=args.max_steps,
            max_epochs=args.max_epochs,
            device=process.device,
            lpips=args.lpips,
            learn_codebook=args.learn_codebook,
            num_workers=args.num_workers,
            log_every=args.log_every_n_steps,
            checkpoint_every=args.save_step_frequency,
            limit_val_batches=_limit(args.limit_val_batches),
        )
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
