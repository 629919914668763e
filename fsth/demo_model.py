"""Train the demo model of `make demo-models`: FSTH meta-trained on the shared sample.

    python -m fsth.demo_model --sample DIR [--work DIR] [--out fsth/demo_model] [--steps N]

The sample's training frames (`common.sample.training_count`: driving/00000-00039 of the first
identity and driving_2/00000-00039 of the second, never the held-out rest) plus source.png and
source_2.png become two `<person>/<video>/` folders with `.npy` landmarks beside the frames, the
layout `fsth.dataset.VoxCeleb` reads. `python -m fsth.meta_train --config fsth/runs/sample.yaml`
then trains on them (seed 0, CPU), and the last checkpoint, without its optimiser states and with
the dataset path dropped from its settings, becomes OUT/model.pkl (`fsth.checkpoint`'s format,
read by `read_meta_checkpoint` and loaded strictly by `build_meta_networks`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from common.errors import InputError, cli_main, require_at_least_one
from common.progress import get_logger
from common.sample import SampleFrame, require, sample_frames, second_identity_frames, training_count
from common.sample_demo import demo_model_parser, in_work_folder
from fsth.checkpoint import MetaCheckpoint, build_meta_networks, read_meta_checkpoint, write_meta_checkpoint

PACKAGE = Path(__file__).resolve().parent
RECIPE = PACKAGE / "runs" / "sample.yaml"
DEMO_DIR = PACKAGE / "demo_model"
MODEL_FILE = "model.pkl"
SEED = 0

log = get_logger("fsth.demo_model")


def write_training_set(sample: Path, root: Path) -> Path:
    """Both identities' training frames and source photos as root/<person>/<video>/NNNNN.png + .npy."""
    source, *clip = sample_frames(sample)
    source_2 = SampleFrame(
        sample / "source_2.png", sample / "landmarks" / "source_2.npy", sample / "parsing" / "source_2.png"
    )
    people = (
        ("identity_1", "driving", source, clip),
        ("identity_2", "driving_2", source_2, second_identity_frames(sample)),
    )
    for person, video, photo, frames in people:
        folder = root / person / video
        folder.mkdir(parents=True)
        for frame in (photo, *frames[: training_count(len(frames))]):
            shutil.copy(require(frame.image, sample), folder / frame.image.name)
            shutil.copy(require(frame.landmarks, sample), folder / f"{frame.image.stem}.npy")
    return root


def last_checkpoint(log_dir: Path) -> Path:
    """The save_<step>.pkl with the highest step of the single run under log_dir."""
    saves = sorted(log_dir.glob("*_meta/save_*.pkl"), key=lambda p: int(p.stem.split("_")[1]))
    if not saves:
        raise InputError(f"{log_dir}: meta-training wrote no checkpoint")
    return saves[-1]


def export(checkpoint: Path, out: Path) -> Path:
    """The trained networks of `checkpoint` as out/model.pkl, checked to load strictly first."""
    ckpt = read_meta_checkpoint(checkpoint)
    build_meta_networks(ckpt)
    config = {**ckpt.config, "train_dataset": None}  # a path on the training machine
    demo = MetaCheckpoint(
        ckpt.G, ckpt.E, ckpt.D, ckpt.epoch, ckpt.step, ckpt.total_step, config=config, extra={"seed": SEED}
    )
    return write_meta_checkpoint(out / MODEL_FILE, demo)


def train_demo_model(sample: Path, work: Path, out: Path, steps: int | None = None, recipe: Path = RECIPE) -> Path:
    """Write the training set under `work`, run fsth.meta_train with `recipe` on the CPU and export
    its last checkpoint to out/model.pkl; `steps` stops earlier than the recipe's max_epoch."""
    for folder in (work / "data", work / "log"):
        if folder.exists():
            shutil.rmtree(folder)  # this command's own folders from an earlier run
    data = write_training_set(sample, work / "data")
    command = [
        sys.executable, "-m", "fsth.meta_train", "--config", str(recipe), "--train_dataset", str(data),
        "--log_dir", str(work / "log"), "--seed", str(SEED), "--device", "cpu",
    ]  # fmt: skip
    if steps is not None:
        command += ["--max_steps", str(steps)]
    log.info("training: %s", " ".join(command))
    subprocess.run(command, check=True, cwd=PACKAGE.parent)
    model = export(last_checkpoint(work / "log"), out)
    log.info("demo model: %s (%.1f MB)", model, model.stat().st_size / 2**20)
    return model


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_model_parser(
        "python -m fsth.demo_model", __doc__, DEMO_DIR, f"where {MODEL_FILE} goes", "training set and run folder"
    )
    parser.add_argument("--steps", type=int, help="stop after this many iterations (default: the recipe's)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    require_at_least_one(args, "steps")
    sample_frames(args.sample)  # a missing sample is a one-line error before any work
    in_work_folder(
        args.work, "fsth_demo_model_", lambda work: train_demo_model(args.sample, work, args.out, args.steps)
    )


if __name__ == "__main__":
    main()
