"""Stage 2, the Prior-Guided Driving Module: `python -m vpgc.reenact.train --data_root DIR -m NAME --load_path CKPT`.

The original's `train_grid.py`: the landmark encoder and PriorTrans (`Imp`), initialised N(0, 0.02),
predict the frozen stage-1 encoder's output (before quant_conv) from 7-frame landmark windows of 4
frames; loss = 10 * L1(code, target) + 10 * mean_i L1(code[i], code[i-1]); Adam for each network
(lr / lr_imp, betas (beta1, 0.999); --TTUR: betas (0, 0.9) and lr / 2), no scheduler. The image L1
("Color", x lambda_L1) of the softly decoded frames is logged, never back-propagated. Checkpoints
`Enc_%08d.ckpt` / `Imp_%08d.ckpt` (named iteration + 1) and the optimiser files go to
`<output_path>/logs/<name>/checkpoints` after every epoch j with j % save_epoch_freq == 0, image
dumps `gen_%08d.jpg` (maps | predictions | targets) to `.../images` every vis_freq iterations.

Deviations: stage 1 is in eval mode with no graph through it (the original builds a graph through
the VQ encoder that nothing uses: the same numbers); "Color" is computed only when it is logged
(every print_freq iterations) and the image dumps decode the training step's own prediction
instead of a second stochastic pass; `--resume true` works and is exact (the original's crashes):
`training_state.ckpt` beside the official files holds the epoch, position and RNG states; the
data order is a function of (seed, epoch); `type=bool` flags read true/false (the original took
any non-empty string, "False" included, as True); flags the original ignores are accepted and
ignored, options it could not run (batch_size != 1, batch_internal != 4, mean_codebook,
multi_heat or repeat_heat off their defaults) are one-line errors.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from common import distributed
from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import InputError, cli_main
from common.image import write_image
from common.progress import get_logger, progress
from common.runlog import RunLog
from vpgc.checkpoint import WHERE, load_stage1, load_stage2, save_stage2
from vpgc.config import load_config
from vpgc.data import STYLES, LandmarkGroups, image_side, list_frames
from vpgc.model import PriorTrans, VQGridModel, init_normal, landmark_encoder
from vpgc.reenactment import OFFICIAL_LANDMARK_CH, OFFICIAL_LANDMARK_CH_MULT
from vpgc.training import batches, epoch_order, image_grid, rng_state, set_rng_state, str2bool

STATE_FILE = "training_state.ckpt"
log = get_logger("vpgc.reenact.train")


# ---------------------------------------------------------------------------------- networks
def build_networks(resolution: int, ch: int = OFFICIAL_LANDMARK_CH, ch_mult=OFFICIAL_LANDMARK_CH_MULT):
    """(landmark encoder, PriorTrans), initialised as the original's init_net: N(0, 0.02) weights, zero biases."""
    return init_normal(landmark_encoder(resolution, ch, tuple(ch_mult))), init_normal(PriorTrans())


def make_optimizers(encoder, imp, lr: float = 5e-4, lr_imp: float = 1e-4, beta1: float = 0.5, ttur: bool = False):
    """Adam(encoder, lr) and Adam(Imp, lr_imp), betas (beta1, 0.999); TTUR: betas (0, 0.9) and the encoder's lr / 2."""
    betas, lr = ((0.0, 0.9), lr / 2) if ttur else ((beta1, 0.999), lr)
    return (
        torch.optim.Adam([{"params": encoder.parameters(), "initial_lr": lr}], lr=lr, betas=betas),
        torch.optim.Adam([{"params": imp.parameters(), "initial_lr": lr_imp}], lr=lr_imp, betas=betas),
    )


def load_vq(load_path, config) -> VQGridModel:
    """The frozen stage-1 model (no loss module), in eval mode and outside autograd."""
    vq = VQGridModel.from_config(config, with_loss=False)
    load_stage1(load_path, vq)
    return vq.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------- one step
def temporal_loss(code: torch.Tensor) -> torch.Tensor:
    """10 x the mean over consecutive frames of L1(code[i], code[i-1]) (summed in order, as the original)."""
    total = F.l1_loss(code[1], code[0])
    for i in range(2, len(code)):
        total = total + F.l1_loss(code[i], code[i - 1])
    return total / (len(code) - 1) * 10


def predict(nets, vq: VQGridModel, maps: torch.Tensor) -> torch.Tensor:
    """Predicted stage-1 encoder output [B, 256, 16, 16] for maps [B, 7, H, W] in [0, 1]."""
    encoder, imp = nets
    return imp(encoder(maps), vq.quantize.prior(len(maps)))


def train_step(nets, optimizers, vq: VQGridModel, maps: torch.Tensor, images: torch.Tensor) -> dict:
    """One iteration on 4 frames: maps [4, 7, H, W] in [0, 1], images [4, 3, H, W] in [-1, 1].
    `nets` = (encoder, Imp), possibly in DistributedDataParallel. Returns the loss terms as floats
    and the prediction ("code", detached)."""
    for net in nets:
        net.train()
    code = predict(nets, vq, maps)
    with torch.no_grad():
        target = vq.encoder(images)
    feature = F.l1_loss(code, target) * 10
    temporal = temporal_loss(code)
    loss = feature + temporal
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return {"Feature": feature.item(), "Temporal": temporal.item(), "loss": loss.item(), "code": code.detach()}


@torch.no_grad()
def decode(vq: VQGridModel, code: torch.Tensor) -> torch.Tensor:
    """Frames [B, 3, H, W] from predicted codes: quant_conv, soft grid lookup, post_quant_conv, decoder."""
    return vq.decode_code(code, soft=True)


def dump_images(path: Path, maps: torch.Tensor, fakes: torch.Tensor, targets: torch.Tensor, count: int = 2) -> None:
    """The original's write_image: rows of `count` frames (centre maps, predictions, targets), no padding,
    min-max normalised over the whole grid, rounded to uint8."""
    rows = [maps[:count, 3:4].expand(-1, 3, -1, -1), fakes[:count], targets[:count]]
    grid = image_grid(torch.cat([r.float().cpu() for r in rows]), nrow=count, padding=0)
    grid = (grid - grid.min()) / (grid.max() - grid.min()).clamp_min(1e-5)
    write_image(path, (grid * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())


# ------------------------------------------------------------------------------------ the run
def _latest(folder: Path, prefix: str) -> Path | None:
    found = [
        (int(m.group(1)), p) for p in folder.glob(f"{prefix}_*.ckpt") if (m := re.fullmatch(rf"{prefix}_(\d+)", p.stem))
    ]
    return max(found)[1] if found else None


def train(
    opt: argparse.Namespace,
    device=None,
    show_progress: bool | None = None,
) -> list[dict]:
    """Run (or, with opt.resume, continue exactly) train_grid.py's loop for the parsed command line `opt`;
    returns this process's per-iteration rows. Under torchrun the process group must be joined first."""
    process = distributed.current(device)
    device, is_main = process.device, process.is_main
    config = load_config(opt.model_base)
    resolution = config["model"]["params"]["ddconfig"]["resolution"]
    size = resolution if opt.size == "normal" else int(opt.size)
    if size != resolution:
        raise InputError(f"--size {size} differs from the stage-1 config's resolution {resolution} ({opt.model_base})")
    native = image_side(list_frames(opt.data_root, "train", 1)[0])
    dataset = LandmarkGroups(
        opt.data_root, "train", style=opt.landmark_style, resolution=None if native == (size, size) else size
    )
    dataset[0]  # one sample now: a landmark file or style the drawing rejects fails before anything is written
    vq = load_vq(opt.load_path, config).to(device)
    torch.manual_seed(opt.seed)
    encoder, imp = build_networks(size, opt.landmark_ch, opt.landmark_ch_mult)
    encoder, imp = encoder.to(device), imp.to(device)
    opt_enc, opt_imp = make_optimizers(encoder, imp, opt.lr, opt.lr_imp, opt.beta1, opt.TTUR)
    run_dir = Path(opt.output_path) / "logs" / opt.model_name
    checkpoints, images = run_dir / "checkpoints", run_dir / "images"
    epoch, first_batch, step = 0, 0, 0
    per_epoch = len(epoch_order(len(dataset), opt.seed, 0, process.rank, process.world))
    if opt.resume:
        epoch, first_batch, step = resume(checkpoints, encoder, imp, opt_enc, opt_imp, per_epoch)
        if is_main:
            log.info(f"resumed from {checkpoints} at epoch {epoch}, batch {first_batch}, iteration {step}")
    nets = (process.wrap(encoder), process.wrap(imp))
    writer = RunLog(run_dir) if is_main else None
    if is_main:
        images.mkdir(parents=True, exist_ok=True)
        log.info(f"{len(dataset)} samples of 4 frames from {opt.data_root}; run directory {run_dir}; device {device}")

    def save(next_epoch: int, next_batch: int) -> None:
        save_stage2(checkpoints, step + 1, encoder, imp, opt_enc, opt_imp)
        state = {"epoch": next_epoch, "batch": next_batch, "step": step, "seed": opt.seed, "rng": rng_state()}
        save_checkpoint(state, checkpoints / STATE_FILE)

    total = opt.max_steps if opt.max_steps is not None else opt.max_epoch * per_epoch
    bar = progress(
        None,
        desc="vpgc stage 2",
        total=total,
        initial=step,
        disable=None if show_progress is None else not show_progress,
    )
    rows: list[dict] = []

    def stop() -> bool:
        return opt.max_steps is not None and step >= opt.max_steps

    while epoch < opt.max_epoch and not stop():
        order = epoch_order(len(dataset), opt.seed, epoch, process.rank, process.world)
        stream = batches(dataset, order[first_batch:], opt.num_workers, device)
        for batch_idx in range(first_batch, len(order)):
            maps, targets = (t.to(device) for t in next(stream))
            values = train_step(nets, (opt_enc, opt_imp), vq, maps, targets)
            code = values.pop("code")
            step, first_batch = step + 1, batch_idx + 1
            fakes = None
            if step % opt.print_freq == 0:
                fakes = decode(vq, code)
                values["Color"] = F.l1_loss(fakes, targets).item() * opt.lambda_L1
                if writer:
                    writer.scalars("train", step, values)
                    log.info(f"Iteration {step:08d} color_loss:{values['Color']:f}, feature_loss:{values['Feature']:f}")
            if is_main and step % opt.vis_freq == 0:
                fakes = decode(vq, code) if fakes is None else fakes
                dump_images(images / f"gen_{step:08d}.jpg", maps, fakes, targets)
            rows.append({"it": step, **values})
            bar.update(1)
            bar.set_postfix(feature=f"{values['Feature']:.4f}")
            if stop():
                break
        if first_batch < len(order):  # --max_steps reached inside the epoch
            break
        if is_main and epoch % opt.save_epoch_freq == 0:
            save(epoch + 1, 0)
        epoch, first_batch = epoch + 1, 0
    bar.close()
    if is_main:
        if stop() and (first_batch != 0 or (epoch - 1) % opt.save_epoch_freq != 0):
            save(epoch, first_batch)  # ours: the state where --max_steps stopped, for --resume
        writer.close()
    return rows


def resume(checkpoints: Path, encoder, imp, opt_enc, opt_imp, per_epoch: int) -> tuple[int, int, int]:
    """Load the latest stage-2 state of `checkpoints` -> (epoch, batch, iteration) to continue from.

    With `training_state.ckpt` (written here) the resume is exact; official files alone give the
    networks, the optimisers when present, and the original's epoch = iteration // batches per epoch."""
    state_file = checkpoints / STATE_FILE
    if state_file.is_file():
        state = load_checkpoint(state_file, where=WHERE)
        step = state["step"]
        enc_file, imp_file = checkpoints / f"Enc_{step + 1:08d}.ckpt", checkpoints / f"Imp_{step + 1:08d}.ckpt"
    else:
        enc_file, imp_file = _latest(checkpoints, "Enc"), _latest(checkpoints, "Imp")
        if enc_file is None or imp_file is None:
            raise InputError(f"{checkpoints}: no Enc_*.ckpt / Imp_*.ckpt to resume from")
        step = int(enc_file.stem.split("_")[1]) - 1
        state = {"epoch": step // per_epoch, "batch": step % per_epoch}
    load_stage2(enc_file, imp_file, encoder, imp)
    for optimizer, file, key in (
        (opt_enc, "optimizer_enc.ckpt", "enc_opt"),
        (opt_imp, "optimizer_imp.ckpt", "imp_opt"),
    ):
        if (checkpoints / file).is_file():
            optimizer.load_state_dict(load_checkpoint(checkpoints / file, where=WHERE)[key])
    if "rng" in state:
        set_rng_state(state["rng"])
    return state["epoch"], state["batch"], step


# ------------------------------------------------------------------------------------ command
# train_grid.py flags that change nothing there (kept so that its command lines run unchanged).
IGNORED = {
    "--Dataset_type": "F5Dataset",
    "--balance": "False",
    "--fp16": "False",
    "--save_latest_freq": 100,
    "--phase": "train",
    "--load_epoch": "latest",
    "--n_epochs_warm_up": 5,
    "--n_epochs": 10,
    "--n_epochs_decay": 10,
    "--lr_policy": "linear",
    "--lr_decay_iters": 5000,
    "--lr_decay_gamma": 0.8,
    "--gan_mode": "ls",
    "--pool_size": 1,
    "--frame_jump": 1,
    "--epoch_count": 0,
    "--seq_max_len": 120,
    "--pooling": "mean",
    "--heat_num": 7,
    "--geo_weight": 100.0,
    "--use_ref": "True",
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags train_grid.py and test_grid.py share, and ours for both."""
    parser.add_argument("--size", default="normal", help="map and frame side ('normal': the stage-1 resolution)")
    parser.add_argument("-m", "--model_name", default="Rodgers_seq_prior_1.0", help="run / result name")
    parser.add_argument("--batch_size", type=int, default=1, help="samples per iteration (must be 1)")
    parser.add_argument("--batch_internal", type=int, default=4, help="frames per sample (must be 4)")
    parser.add_argument("--model_base", default="configs/obama_sliding_4.yaml", help="stage-1 config (or bundled name)")
    parser.add_argument(
        "--mean_codebook", type=str2bool, default=True, help="codebook prior = cell means (must be true)"
    )
    parser.add_argument("--multi_heat", type=str2bool, default=True, help="7-map windows (must be true)")
    parser.add_argument("--repeat_heat", type=str2bool, default=False, help="repeat the centre map (must be false)")
    parser.add_argument("--gpu_id", default=None, help="the original's GPU flag: 'N' is --device cuda:N, -1 the CPU")
    parser.add_argument("--landmark_style", default="vpgc68", choices=STYLES, help="landmark drawing of .txt landmarks")
    parser.add_argument("--landmark_ch", type=int, default=OFFICIAL_LANDMARK_CH, help="landmark encoder width")
    parser.add_argument(
        "--landmark_ch_mult",
        type=lambda text: tuple(int(v) for v in text.split(",")),
        default=OFFICIAL_LANDMARK_CH_MULT,
        help="landmark encoder level multipliers, comma-separated (official 1,1,2,2,4,4)",
    )
    distributed.add_device_argument(parser)
    for flag, default in IGNORED.items():
        parser.add_argument(flag, default=default, help=argparse.SUPPRESS)


def check_supported(opt: argparse.Namespace) -> None:
    """Options whose non-default values the original could not run are one-line errors here."""
    for flag, value, needed in (
        ("--batch_size", opt.batch_size, 1),
        ("--batch_internal", opt.batch_internal, 4),
        ("--mean_codebook", opt.mean_codebook, True),
        ("--multi_heat", opt.multi_heat, True),
        ("--repeat_heat", opt.repeat_heat, False),
    ):
        if value != needed:
            raise InputError(f"{flag} {value}: only {needed} is supported (the original's networks are built for it)")
    if opt.size != "normal" and not str(opt.size).isdigit():
        raise InputError(f"--size {opt.size!r}: expected 'normal' or a side in pixels")


def device_of(opt: argparse.Namespace):
    """--device, else the original's --gpu_id (N: cuda:N; -1: the CPU)."""
    if opt.device is not None or opt.gpu_id is None:
        return opt.device
    return "cpu" if opt.gpu_id.strip() == "-1" else f"cuda:{int(opt.gpu_id.split(',')[0])}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vpgc.reenact.train", description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--isTrain", type=str2bool, default=True, help="must be true for training")
    parser.add_argument("-r", "--resume", type=str2bool, default=False, help="continue the run's latest checkpoint")
    parser.add_argument("--data_root", default="../Backup/Dataset/Dataset/Obama", help="subject folder")
    parser.add_argument("--vis_freq", type=int, default=100, help="image dump interval (iterations)")
    parser.add_argument("--print_freq", type=int, default=10, help="log interval (iterations)")
    parser.add_argument("-o", "--output_path", default="./Output", help="runs go to <output_path>/logs/<name>")
    parser.add_argument("--save_epoch_freq", type=int, default=3, help="checkpoint after epochs j with j % freq == 0")
    parser.add_argument("--continue_train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no_html", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max_epoch", type=int, default=100, help="epochs")
    parser.add_argument("--lr", type=float, default=0.0005, help="landmark encoder learning rate")
    parser.add_argument("--lr_imp", type=float, default=0.0001, help="PriorTrans learning rate")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    parser.add_argument("--TTUR", action="store_true", help="Adam betas (0, 0.9) and the encoder's lr / 2")
    parser.add_argument("--lambda_L1", type=float, default=100.0, help="weight of the logged image L1 ('Color')")
    parser.add_argument(
        "--load_path",
        default="../Backup/Siggraph/Pretrained/Obama/N-Step-Checkpoint_19_120000.ckpt",
        help="stage-1 checkpoint",
    )
    parser.add_argument("--seed", type=int, default=0, help="ours: initial weights and data order")
    parser.add_argument("--max_steps", type=int, default=None, help="ours: stop after this many iterations")
    parser.add_argument("--num_workers", type=int, default=2, help="data loader workers")
    opt = parser.parse_args(argv)
    check_supported(opt)
    if not opt.isTrain:
        raise InputError("--isTrain false: nothing to train (inference is python -m vpgc.reenact.test)")
    for flag in ("print_freq", "vis_freq", "save_epoch_freq"):
        if getattr(opt, flag) < 1:
            raise InputError(f"--{flag} must be at least 1")
    return opt


@cli_main
def main(argv=None) -> int:
    opt = parse_args(argv)
    process = distributed.start(device_of(opt))
    try:
        train(opt, device=process.device)
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
