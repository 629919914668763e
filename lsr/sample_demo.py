"""LSR reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m lsr.sample_demo --sample DIR --out OUT [--checkpoint CKPT_DIR] [--quick_fit]
                              [--steps N] [--max_seconds S] [--seed N]

Model, first found: `--checkpoint` (a train_dir such as the official meta-learning folder; only
read), the official folder `checkpoints/lsr/meta_learning/` (both at 224 px with the default
options), the DEMO MODEL `lsr/demo_model/` (`python -m lsr.demo_model`, options and size from
its recipe `lsr/runs/sample.flags`), else a QUICK FIT: the recipe trained from scratch on the
sample for about `--max_seconds` (also forced by `--quick_fit`). No training otherwise.

Both parts are LSR meta inference (`lsr.run.infer`, K=1, no fine-tuning) from one photo, the
sample converted into processed-subject folders in a temporary folder:
- self:  source.png driven by DIR/driving (self-reenactment);
- cross: source_2.png driven by DIR/driving (the first identity's motion).
Writes OUT/<part>/frames/NNNNN.png (one per driving frame, same stem, the model's size),
OUT/<part>/io_tuples/ (driver landmarks | predicted layout | oracle layout | output | ground
truth), OUT/<part>/result.mp4, OUT/run.json and OUT/README.txt. Never imports torch.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from common.errors import InputError, cli_main
from common.image import write_image
from common.sample import SampleFrame, sample_fps, sample_frames
from common.sample_demo import add_demo_arguments, pick_model, start_demo, time_boxed_fit, write_readme, write_run_info
from common.video import write_video
from lsr import demo_model

OFFICIAL_SIZE = 224
OFFICIAL_DIR = Path("checkpoints") / "lsr" / "meta_learning"
DEMO_K = 1
# Few-shot and driver folders are <person>/<video>/<part>; the io tuples take the driver's name.
SUBJECT_VIDEO = "lsr_demo"

LABELS = {
    "official": "LSR meta inference (K=1, no fine-tuning) at {size} px with the official checkpoint {checkpoint}.",
    "demo model": (
        "DEMO MODEL trained on the sample by `make demo-models` (recipe lsr/runs/sample.flags): "
        "LSR meta inference (K=1, no fine-tuning) at {size} px with {checkpoint}."
    ),
    "quick fit": (
        "QUICK FIT on the sample, NOT the official model: the recipe lsr/runs/sample.flags ({size} px) "
        "trained from scratch for {steps} steps ({seconds:.0f} s on this machine's CPU), then LSR meta "
        "inference with K=1. Expect blurry, low-quality output."
    ),
}


def checkpoint_files(folder: Path) -> list[Path]:
    """A train_dir's state file and the files of the checkpoint it names (just the state file
    when it names none), read without TensorFlow."""
    state = folder / "checkpoint"
    if not state.is_file():
        return [state]
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.MULTILINE)
    if match is None:
        return [state]
    prefix = folder / match.group(1)
    return [state, Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")]


def choose_model(args: argparse.Namespace) -> tuple[Path | None, str]:
    """(checkpoint folder, kind): --checkpoint > official > demo model > quick fit (None)."""
    if args.checkpoint is not None:
        if not args.checkpoint.is_dir():
            raise InputError(f"{args.checkpoint}: checkpoint folder not found")
        return args.checkpoint, "official"
    if not args.quick_fit:
        picked = pick_model(checkpoint_files(OFFICIAL_DIR), checkpoint_files(demo_model.DEMO_DIR))
        if picked is not None:
            return picked[0][0].parent, picked[1]
    return None, "quick fit"


def model_options(kind: str) -> dict:
    """The options the model was built with: LSR's defaults for the official checkpoint, the
    recipe's for the demo model and the quick fit."""
    return {} if kind == "official" else demo_model.recipe_options()


def write_subjects(root: Path, photo: SampleFrame, driving: list[SampleFrame], size: int) -> tuple[Path, Path]:
    """The photo (K=1) and the driving clip as processed-subject folders under `root`."""
    source = demo_model.write_subject(root / "few_shot" / SUBJECT_VIDEO / "source", [photo], size)
    driver = demo_model.write_subject(root / "driver" / SUBJECT_VIDEO / "driving", driving, size)
    return source, driver


def infer(checkpoint: Path, options: dict, source: Path, driver: Path, output_dir: Path):
    """`lsr.run.infer` (meta, K=1) of `checkpoint`; returns its result."""
    from lsr import run

    config = demo_model.make_config(
        **{**options, "K": DEMO_K},
        source_subject_dir=str(source),
        driver_subject_dir=str(driver),
        few_shot_finetuning=False,
    )
    return run.infer(config, checkpoint, output_dir)


def quick_fit(sample: Path, work: Path, steps: int, max_seconds: float, seed: int) -> tuple[Path, int, float]:
    """The recipe trained from scratch on the sample in time-boxed chunks; (train dir, steps,
    seconds)."""
    import tensorflow as tf

    # Tracing the GAN step costs more than the few steps run here; eager gives the same values.
    tf.config.run_functions_eagerly(True)
    try:
        done, seconds = time_boxed_fit(
            lambda step: demo_model.train(sample, work, steps=step, seed=seed), steps, max_seconds
        )
    finally:
        tf.config.run_functions_eagerly(False)
    return work / "train", done, seconds


def save_part(result, out: Path, part: str, driving: list[SampleFrame], fps: float) -> Path:
    """OUT/<part>/frames/<driving stem>.png, the io tuples and result.mp4; returns the frames dir."""
    if len(result.frames) != len(driving):
        raise InputError(f"{result.output_dir}: {len(result.frames)} output frames for {len(driving)} driving frames")
    folder = out / part
    shutil.rmtree(folder, ignore_errors=True)
    frames = folder / "frames"
    for frame, image in zip(driving, result.frames):
        write_image(frames / f"{frame.image.stem}.png", image)
    tuples = folder / "io_tuples"
    tuples.mkdir()
    for path in result.io_tuples:
        shutil.move(str(path), tuples / path.name)
    write_video(folder / "result.mp4", result.frames, fps=fps)
    return frames


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lsr.sample_demo", description=__doc__.split("\n")[0])
    add_demo_arguments(
        parser,
        steps=30,
        max_seconds=35.0,
        checkpoint_help="LSR train_dir (e.g. the official meta-learning folder), run at 224 px",
    )
    parser.add_argument("--quick_fit", action="store_true", help="train a quick fit even if a model is found")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    driving = demo_model.checked(sample_frames(args.sample)[1:], args.sample)
    photo, photo_2 = demo_model.photos(args.sample)
    checkpoint, kind = choose_model(args)
    start_demo(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = model_options(kind)
    size = options.get("train_resolution", OFFICIAL_SIZE)
    label_values = {"size": size, "checkpoint": checkpoint}
    fps = sample_fps(args.sample)
    parts, rendering = {}, 0.0
    with tempfile.TemporaryDirectory(prefix="lsr_demo_") as tmp:
        work = Path(tmp)
        if checkpoint is None:
            checkpoint, steps, seconds = quick_fit(args.sample, work / "fit", args.steps, args.max_seconds, args.seed)
            label_values.update(steps=steps, seconds=seconds)
        for part, source_photo in (("self", photo), ("cross", photo_2)):
            source, driver = write_subjects(work / part, source_photo, driving, size)
            started = time.perf_counter()
            result = infer(checkpoint, options, source, driver, work / part / "inference")
            rendering += time.perf_counter() - started
            frames = save_part(result, args.out, part, driving, fps)
            parts[part] = {
                "frames": frames.relative_to(args.out),
                "source": source_photo.image,
                "driving": args.sample / "driving",
                "identity": source_photo.image,
            }
    name = "the quick fit" if kind == "quick fit" else str(checkpoint)
    write_run_info(args.out, "lsr", kind, name, size, parts, rendering / (2 * len(driving)))
    write_readme(
        args.out,
        LABELS[kind].format(**label_values),
        args.sample,
        f"self: source.png driven by driving/ -> {args.out / 'self'}; cross: source_2.png driven by driving/ -> "
        f"{args.out / 'cross'} (frames/NNNNN.png, io_tuples/ = driver landmarks | predicted layout | "
        f"oracle layout | output | ground truth, result.mp4)",
    )


if __name__ == "__main__":
    main()
