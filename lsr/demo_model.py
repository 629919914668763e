"""Train LSR's demo model on the shared sample (`tools.make_sample_data`) and store it in the
official checkpoint's layout.

    python -m lsr.demo_model --sample DIR [--work DIR] [--out lsr/demo_model] [--steps N] [--seed N]

The sample's training frames (`common.sample.training_count`: driving/ and driving_2/ without
their held-out tail) and the two photos (source.png, source_2.png) become processed-subject
folders of `--num_frame_concatenations` frames each, always one identity per folder, with the
photo in every folder so that meta-learning sees it both as the few-shot reference and as a
target. The folders are exported to tfrecords with `lsr.data.export_voxceleb_to_tfrecords` and
trained with `lsr.run.train` (the library entry point of `python -m lsr.main --run_mode=train`)
on the recipe `lsr/runs/sample.flags` (an absl flags file; `--train_dir` and
`--dataset_parent_dir` are added here) with a fixed seed. The last checkpoint becomes
`--out` (replaced atomically) in the layout `--run_mode=infer` restores: `checkpoint`,
`ckpt-N.index`, `ckpt-N.data-00000-of-00001`, networks and counters without the optimizer
slots. Without `--work` the intermediate files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common.drawing import draw_landmarks
from common.errors import InputError, cli_main
from common.image import read_image, write_image
from common.sample import SampleFrame, require, sample_frames, second_identity_frames, training_count

PACKAGE_DIR = Path(__file__).parent
RECIPE = PACKAGE_DIR / "runs" / "sample.flags"
DEMO_DIR = PACKAGE_DIR / "demo_model"
# Folders are <person>/<video>/<part>, as LSR's processed datasets.
VIDEO_ID = "demo"


def recipe_options(path: Path = RECIPE) -> dict:
    """The `--name=value` lines of an absl flags file as typed option values (comments, blank
    lines skipped), parsed by LSR's own flag definitions without touching the global flags."""
    from lsr import options

    defined = {flag.name: flag for flag in options.defined_flags()}
    values = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        name, sep, value = line.removeprefix("--").partition("=")
        if not line.startswith("--") or not sep or name not in defined:
            raise InputError(f"{path}:{number}: expected --<LSR option>=<value>, got {line!r}")
        values[name] = defined[name].parser.parse(value)
    return values


def make_config(**overrides):
    """`options.default_config(**overrides)`, validated as `python -m lsr.main` validates."""
    from lsr import options

    config = options.default_config(**overrides)
    options.validate_options(config)
    return config


def _label_map(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        labels = np.asarray(img)
    if labels.ndim != 2:
        raise InputError(f"{path}: expected an 8-bit label map, got shape {labels.shape}")
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size), Image.NEAREST))


def write_frame(folder: Path, index: int, frame: SampleFrame, size: int) -> None:
    """One processed frame: NNNNN_rgb.png (resized), NNNNN_contour.png (LSR landmark drawing of
    the scaled landmarks) and NNNNN_segmap_merged.png (label map resized nearest)."""
    rgb = read_image(frame.image)
    points = np.load(frame.landmarks).astype(np.float32)[:, :2] * (size / np.array(rgb.shape[1::-1]))
    write_image(folder / f"{index:05d}_rgb.png", read_image(frame.image, size))
    write_image(folder / f"{index:05d}_contour.png", draw_landmarks(points, size, "lsr"))
    write_image(folder / f"{index:05d}_segmap_merged.png", _label_map(frame.parsing, size))


def write_subject(folder: Path, frames: list[SampleFrame], size: int) -> Path:
    """`frames` as one processed-subject folder (numbered in order)."""
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        write_frame(folder, index, frame, size)
    return folder


def checked(frames: list[SampleFrame], sample: Path) -> list[SampleFrame]:
    """`frames` after checking that every landmark and label-map file exists."""
    for frame in frames:
        require(frame.landmarks, sample)
        require(frame.parsing, sample)
    return frames


def photos(sample: Path) -> tuple[SampleFrame, SampleFrame]:
    """source.png and source_2.png with their landmarks and label maps (checked)."""
    photo, photo_2 = (
        SampleFrame(sample / f"{name}.png", sample / "landmarks" / f"{name}.npy", sample / "parsing" / f"{name}.png")
        for name in ("source", "source_2")
    )
    for frame in (photo, photo_2):
        require(frame.image, sample)
    return tuple(checked([photo, photo_2], sample))


def training_identities(sample: Path) -> dict[str, tuple[SampleFrame, list[SampleFrame]]]:
    """Per identity: its photo and the clip frames a demo model may train on."""
    photo, photo_2 = photos(sample)
    clip = sample_frames(sample)[1:]
    clip_2 = second_identity_frames(sample)
    identities = {
        "source": (photo, clip[: training_count(len(clip))]),
        "source_2": (photo_2, clip_2[: training_count(len(clip_2))]),
    }
    for _, frames in identities.values():
        checked(frames, sample)
    return identities


def record_frames(photo: SampleFrame, frames: list[SampleFrame], per_record: int) -> list[list[SampleFrame]]:
    """One record per clip frame: the photo, that frame and frames spread evenly around the clip
    after it, so every frame is a target and every record spans the whole range of motion."""
    if per_record < 2:
        raise InputError(f"--num_frame_concatenations={per_record}: a record needs the photo and a frame")
    count, others = len(frames), per_record - 1
    return [[photo] + [frames[(start + j * count // others) % count] for j in range(others)] for start in range(count)]


def write_dataset(sample: Path, root: Path, size: int, per_record: int) -> tuple[Path, int]:
    """The training records as processed folders under root/dev and their tfrecords in root;
    returns (dataset dir, record count)."""
    from lsr.data import export_voxceleb_to_tfrecords as exporter

    count = 0
    for person, (photo, frames) in training_identities(sample).items():
        for index, record in enumerate(record_frames(photo, frames, per_record)):
            write_subject(root / "dev" / person / VIDEO_ID / f"{index:05d}", record, size)
            count += 1
    exporter.export_voxceleb_to_tfrecords(
        str(root / "dev" / "*" / "*" / "*"),
        str(root),
        "dev",
        num_shards=1,
        num_frames_per_video=per_record,
        frame_size=(size, size),
    )
    return root, count


def train(sample: Path, work: Path, recipe: Path = RECIPE, steps: int | None = None, seed: int = 0) -> Path:
    """Export the sample and train the recipe into work/train (resuming a run already there);
    `steps` overrides the recipe's --max_train_steps. Returns the train dir."""
    options = recipe_options(recipe)
    if steps is not None:
        if steps < 1:
            raise InputError(f"--steps must be at least 1, got {steps}")
        options["max_train_steps"] = steps
    records = work / "records"
    if not any(records.glob("*.tfrecords")):
        shutil.rmtree(records, ignore_errors=True)
        write_dataset(sample, records, options["train_resolution"], options["num_frame_concatenations"])
    config = make_config(**options, train_dir=str(work / "train"), dataset_parent_dir=str(records))

    import tensorflow as tf

    from lsr import run

    tf.keras.utils.set_random_seed(seed)
    run.train(config)
    return work / "train"


def export_checkpoint(train_dir: Path, out: Path, recipe: Path = RECIPE) -> list[Path]:
    """The latest checkpoint of `train_dir` as `out`, replaced atomically: the networks and
    counters in the checkpoint layout `--run_mode=infer` restores (`checkpoint`,
    `ckpt-N.index`, `ckpt-N.data-00000-of-00001`), without the optimizer slots, which only
    resuming needs and which would triple the size."""
    import tensorflow as tf

    from lsr import checkpoint
    from lsr.models import create_model

    model = create_model(make_config(**recipe_options(recipe)))
    model.init_extra_train_and_eval_networks()
    counters = checkpoint.make_counters()
    weights = checkpoint.load_model(model, train_dir, "infer", counters)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    tf.train.CheckpointManager(weights, str(staging), max_to_keep=1).save(
        checkpoint_number=int(counters["global_step"].numpy())
    )
    previous = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous, ignore_errors=True)
    return sorted(out.iterdir())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lsr.demo_model", description=__doc__.split("\n")[0])
    parser.add_argument("--sample", required=True, type=Path, help="folder written by tools.make_sample_data")
    parser.add_argument("--work", type=Path, help="records and training run (kept; default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help=f"checkpoint folder (default {DEMO_DIR})")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="absl flags file (default lsr/runs/sample.flags)")
    parser.add_argument("--steps", type=int, help="train this many steps instead of the recipe's --max_train_steps")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data order")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.recipe.is_file():
        raise InputError(f"{args.recipe}: recipe not found")
    recipe_options(args.recipe)
    training_identities(args.sample)  # every input is checked before TensorFlow is loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="lsr_demo_model_") as tmp:
        work = args.work or Path(tmp)
        train_dir = train(args.sample, work, args.recipe, args.steps, args.seed)
        files = export_checkpoint(train_dir, args.out, args.recipe)
    size = sum(f.stat().st_size for f in files)
    print(f"demo model: {', '.join(f.name for f in files)} in {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
