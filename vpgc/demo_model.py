"""Train the demo model of `make demo-models`: VPGC fitted to the shared sample's subject.

    python -m vpgc.demo_model --sample DIR [--work DIR] [--out vpgc/demo_model]
                              [--stage1_steps N] [--stage2_steps N]

VPGC models one person, so only the first identity's clip trains: its training frames
(`common.sample.training_count`: driving/00000-00039, never the held-out rest) become a subject
folder in the original's layout (`images/train/NNNNN.png` and `ldmks/train/NNNNN.txt`, 64 px).
Stage 1 runs `python -m vpgc.codebook.train --base vpgc/runs/sample.yaml`, stage 2
`python -m vpgc.reenact.train` on its last checkpoint with a narrow landmark encoder (STAGE2_FLAGS),
both seeded, on the CPU. OUT then holds the official file layouts, stored as float16 to stay a few
MB (the loaders copy them into the float32 networks):

* `N-Step-Checkpoint_<epoch>_<step>.ckpt`: the Lightning layout whose `state_dict` holds the
  inference model; the loss's LPIPS and discriminator (`loss.*`, unused at inference and ignored
  by `vpgc.checkpoint.load_stage1` for a model without the loss) and the optimiser states are left out;
* `Enc_<step>.ckpt` / `Imp_<step>.ckpt`: the stage-2 state dicts with their `module.` prefixes;
* `config.yaml`: the recipe, the stage-1 config the checkpoint is built from.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common.errors import InputError, cli_main, require_at_least_one
from common.image import read_image, write_image
from common.progress import get_logger
from common.sample import require, sample_frames, training_count
from common.sample_demo import demo_model_parser, in_work_folder

PACKAGE = Path(__file__).resolve().parent
RECIPE = PACKAGE / "runs" / "sample.yaml"
DEMO_DIR = PACKAGE / "demo_model"
CONFIG_FILE = "config.yaml"
SEED = 0
STAGE1_STEPS = 300
STAGE2_STEPS = 1000
# The landmark encoder at the recipe's 64 px: narrow, with the 16 x 16 output PriorTrans needs.
LANDMARK_CH, LANDMARK_CH_MULT = 32, (1, 2, 2)
STAGE2_FLAGS = [
    "--landmark_ch", str(LANDMARK_CH),
    "--landmark_ch_mult", ",".join(map(str, LANDMARK_CH_MULT)),
    "--lr", "0.0005",
    "--lr_imp", "0.0003",  # 3x the official PriorTrans rate: a fit of minutes, not days
    "--num_workers", "0",
    "--print_freq", "50",
    "--vis_freq", "1000000",
    "--save_epoch_freq", "1000000",
]  # fmt: skip

log = get_logger("vpgc.demo_model")


def write_subject(sample: Path, root: Path, size: int) -> Path:
    """The driving clip's training frames at `size` px with their landmarks in that pixel frame."""
    from vpgc.data import rescale_points

    clip = sample_frames(sample)[1:]
    for index, frame in enumerate(clip[: training_count(len(clip))]):
        image = read_image(frame.image)
        points = np.load(require(frame.landmarks, sample)).astype(np.float64)
        write_image(root / "images" / "train" / f"{index:05d}.png", read_image(frame.image, size))
        path = root / "ldmks" / "train" / f"{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, rescale_points(points, image.shape[:2], size), fmt="%.4f")
    return root


def recipe_size(recipe: Path) -> int:
    from vpgc.config import load_config

    return int(load_config(recipe)["model"]["params"]["ddconfig"]["resolution"])


def run(command: list[str]) -> None:
    log.info("training: %s", " ".join(command))
    subprocess.run(command, check=True, cwd=PACKAGE.parent)


def train_stage1(recipe: Path, subject: Path, work: Path, steps: int) -> Path:
    """`vpgc.codebook.train` on the subject; its checkpoints/last.ckpt."""
    logs = work / "stage1"
    run(
        [
            sys.executable, "-m", "vpgc.codebook.train", "--base", str(recipe), "-t", "True",
            "--data_root", str(subject), "--logdir", str(logs), "--seed", str(SEED), "--max_steps", str(steps),
            "--save_step_frequency", "1000000", "--log_every_n_steps", "50", "--device", "cpu",
        ]
    )  # fmt: skip
    found = sorted(logs.glob("*/checkpoints/last.ckpt"))
    if not found:
        raise InputError(f"{logs}: stage 1 wrote no checkpoint")
    return found[-1]


def train_stage2(recipe: Path, subject: Path, stage1: Path, work: Path, steps: int) -> tuple[Path, Path]:
    """`vpgc.reenact.train` on the frozen stage 1; its final (Enc, Imp) files."""
    run(
        [
            sys.executable, "-m", "vpgc.reenact.train", "--data_root", str(subject), "-m", "demo",
            "-o", str(work / "stage2"), "--load_path", str(stage1), "--model_base", str(recipe),
            "--seed", str(SEED), "--max_steps", str(steps), "--device", "cpu", *STAGE2_FLAGS,
        ]
    )  # fmt: skip
    folder = work / "stage2" / "logs" / "demo" / "checkpoints"

    def last(kind: str) -> Path:
        found = sorted(folder.glob(f"{kind}_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))
        if not found:
            raise InputError(f"{folder}: stage 2 wrote no {kind}_*.ckpt")
        return found[-1]

    return last("Enc"), last("Imp")


def half(state: dict) -> dict:
    """Floating-point tensors as float16 (the integer ones unchanged)."""
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


def export(recipe: Path, stage1: Path, encoder: Path, implicit: Path, out: Path) -> Path:
    """The inference weights in the official layouts under `out`, written beside it and swapped in whole,
    after checking that they load strictly."""
    from common.checkpoint import save_checkpoint
    from vpgc.checkpoint import LIGHTNING_LAYOUT_VERSION, read_checkpoint

    content = read_checkpoint(stage1)
    state = {k: v for k, v in content["state_dict"].items() if not k.startswith("loss.")}
    epoch, step = int(content["epoch"]), int(content["global_step"])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the published folder is an ordinary one
    try:
        lightning = {
            "epoch": epoch,
            "global_step": step,
            "pytorch-lightning_version": LIGHTNING_LAYOUT_VERSION,
            "state_dict": half(state),
            "optimizer_states": [],
            "lr_schedulers": [],
        }
        save_checkpoint(lightning, staging / f"N-Step-Checkpoint_{epoch}_{step}.ckpt")
        for path, key in ((encoder, "encoder"), (implicit, "implicit")):
            save_checkpoint({key: half(read_checkpoint(path)[key])}, staging / path.name)
        shutil.copy(recipe, staging / CONFIG_FILE)
        load_demo_model(staging)  # the strict loaders accept what is about to be published
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            shutil.rmtree(old)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def demo_files(folder: Path = DEMO_DIR) -> list[Path]:
    """[stage-1 checkpoint, Enc, Imp, config] of a demo-model folder; absent names for what is missing."""
    folder = Path(folder)

    def one(pattern: str) -> Path:
        found = sorted(folder.glob(pattern))
        return found[-1] if found else folder / pattern

    return [one("N-Step-Checkpoint_*.ckpt"), one("Enc_*.ckpt"), one("Imp_*.ckpt"), folder / CONFIG_FILE]


def load_demo_model(folder: Path = DEMO_DIR, device: str = "cpu"):
    """A `vpgc.reenactment.Reenactor` of a demo-model folder, every file loaded strictly."""
    from vpgc.reenactment import Reenactor

    stage1, encoder, implicit, config = demo_files(folder)
    for path in (stage1, encoder, implicit, config):
        if not path.is_file():
            raise InputError(f"{path} not found (train the demo model: python -m vpgc.demo_model --sample DIR)")
    return Reenactor.from_checkpoints(
        stage1,
        encoder,
        implicit,
        config=config,
        device=device,
        landmark_ch=LANDMARK_CH,
        landmark_ch_mult=LANDMARK_CH_MULT,
    )


def train_demo_model(
    sample: Path, work: Path, out: Path, stage1_steps: int = STAGE1_STEPS, stage2_steps: int = STAGE2_STEPS
) -> Path:
    """Write the subject folder under `work`, train both stages with the recipe, export to `out`."""
    for folder in ("subject", "stage1", "stage2"):
        shutil.rmtree(work / folder, ignore_errors=True)  # this command's own folders from an earlier run
    subject = write_subject(sample, work / "subject", recipe_size(RECIPE))
    stage1 = train_stage1(RECIPE, subject, work, stage1_steps)
    encoder, implicit = train_stage2(RECIPE, subject, stage1, work, stage2_steps)
    export(RECIPE, stage1, encoder, implicit, out)
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    log.info("demo model: %s (%.1f MB)", out, size)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_model_parser(
        "python -m vpgc.demo_model", __doc__, DEMO_DIR, "demo-model folder", "subject folder and runs"
    )
    parser.add_argument("--stage1_steps", type=int, default=STAGE1_STEPS, help="stage-1 iterations")
    parser.add_argument("--stage2_steps", type=int, default=STAGE2_STEPS, help="stage-2 iterations")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    require_at_least_one(args, "stage1_steps", "stage2_steps")
    sample_frames(args.sample)  # a missing sample is a one-line error before any work
    in_work_folder(
        args.work,
        "vpgc_demo_model_",
        lambda work: train_demo_model(args.sample, work, args.out, args.stage1_steps, args.stage2_steps),
    )


if __name__ == "__main__":
    main()
