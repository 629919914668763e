"""LSR reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m lsr.sample_demo --sample DIR --out OUT [--train_dir CKPT_DIR] [--steps N]
                              [--max_seconds S] [--seed N]

The sample is first converted into LSR's processed-subject layout in a temporary folder:
`NNNNN_rgb.png` (resized), `NNNNN_contour.png` (`common.drawing.draw_landmarks(..., 'lsr')` of the
scaled landmarks) and `NNNNN_segmap_merged.png` (the sample's CelebAMask-HQ label maps, resized
nearest) for the source (K=1: DIR/source.png) and the driver (DIR/driving/*.png).

With --train_dir (the official meta-learning checkpoint or a trained run; only read):
`lsr.run.infer` (meta, no fine-tuning) at 224 px. Without: a QUICK FIT, not the official model:
the small 64 px two_step_syn configuration of the tests, trained from scratch with
`lsr.run.train` on the sample's own frames (exported to tfrecords with
`lsr.data.export_voxceleb_to_tfrecords`) with the VGG / VGGFace / identity losses and the R1/R2
penalties off (weight 0), then the same inference.

Writes OUT/<person>-<video>-<part>_NNNNN_io_tuple.png (the original's io-tuple naming: driver
landmarks | predicted layout | oracle layout | output | ground truth), OUT/result.mp4 (the
output panels) and OUT/README.txt (what produced them). Never imports torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common.drawing import draw_landmarks
from common.errors import InputError, cli_main
from common.image import read_image, write_image
from common.sample import SampleFrame, require, sample_fps, sample_frames
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme
from common.video import write_video
from lsr import options

OFFICIAL_SIZE = 224
QUICK_SIZE = 64
DEMO_K = 1
# A tiny two_step_syn at 64 px (the lsr.main tests train it too), VGG losses and R1/R2 off.
QUICK_OPTIONS = dict(
    train_resolution=QUICK_SIZE,
    G_num_upsamples=4,
    g_nf=8,
    segmap_g_nf=8,
    g_nf_max=16,
    e_nf=8,
    segmap_e_nf=8,
    E_num_downsamples=4,
    style_nc=16,
    d_nf=8,
    D_num_downsamples=4,
    spade_proj_filters=8,
    K=DEMO_K,
    w_loss_vgg=0,
    w_loss_vgg_face_recon=0,
    w_loss_identity=0,
    r1_gamma=0,
    r2_gamma=0,
    lr_warmstart_steps=0,
    fix_lr_starting_step=True,
    log_info_every_n_steps=5,
    save_summaries_every_n_steps=10**6,
    save_checkpoint_every_n_steps=10**6,
)
QUICK_FRAMES = 4  # frames per training record (--num_frame_concatenations)
# Subject folders are <person>/<video>/<part>; the io tuples are named after the driver's.
SOURCE_SUBJECT = ("sample", "lsr_demo", "source")
DRIVER_SUBJECT = ("sample", "lsr_demo", "driving")

QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: LSR two_step_syn ({size} px, "
    "narrow) trained from scratch for {steps} steps ({seconds:.0f} s on this machine's "
    "CPU) on the sample's own frames, then run meta inference with K=1. Losses used: "
    "{losses}; the perceptual (VGG19 / VGGFace) and identity losses and the R1/R2 "
    "penalties were disabled (weight 0). Expect blurry, low-quality output."
)
CHECKPOINT_LABEL = "LSR meta inference (K=1, no fine-tuning) at {size} px with the checkpoint {checkpoint}."
TUPLE_PANELS = "driver landmarks | predicted layout | oracle layout | output | ground truth"


def _label_map(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        labels = np.asarray(img)
    if labels.ndim != 2:
        raise InputError(f"{path}: expected an 8-bit label map, got shape {labels.shape}")
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size), Image.NEAREST))


def _write_frame(folder: Path, index: int, image: Path, landmarks: Path, parsing: Path, size: int) -> None:
    rgb = read_image(image)
    points = np.load(landmarks).astype(np.float32)[:, :2] * (size / np.array(rgb.shape[1::-1]))
    write_image(folder / f"{index:05d}_rgb.png", read_image(image, size))
    write_image(folder / f"{index:05d}_contour.png", draw_landmarks(points, size, "lsr"))
    write_image(folder / f"{index:05d}_segmap_merged.png", _label_map(parsing, size))


def checked_frames(sample: Path) -> list[SampleFrame]:
    """The sample's frames with every landmark and label-map file checked up front."""
    frames = sample_frames(sample)
    for frame in frames:
        require(frame.landmarks, sample)
        require(frame.parsing, sample)
    return frames


def write_subjects(sample: Path, root: Path, size: int) -> tuple[Path, Path]:
    """The sample as the processed source (K=1) and driver subject folders under `root`."""
    frames = checked_frames(sample)
    source, driver = root.joinpath(*SOURCE_SUBJECT), root.joinpath(*DRIVER_SUBJECT)
    for folder, items in ((source, frames[:1]), (driver, frames[1:])):
        folder.mkdir(parents=True)
        for i, frame in enumerate(items):
            _write_frame(folder, i, *frame, size=size)
    return source, driver


def write_training_records(sample: Path, root: Path) -> tuple[str, int]:
    """All the sample's frames (source + driving) as overlapping 4-frame parts of one video,
    exported with the package's exporter; returns (dataset dir, record count)."""
    from lsr.data import export_voxceleb_to_tfrecords as exporter

    frames = checked_frames(sample)
    n = QUICK_FRAMES
    if len(frames) < n:
        raise InputError(f"{sample}: {len(frames) - 1} driving frames; the quick fit needs at least {n - 1}")
    starts = sorted(set(range(0, len(frames) - n + 1, n)) | {len(frames) - n})
    for start in starts:
        part = root / "dev" / "sample" / "lsr_demo" / f"{start:05d}"
        part.mkdir(parents=True)
        for i, frame in enumerate(frames[start : start + n]):
            _write_frame(part, i, *frame, size=QUICK_SIZE)
    exporter.export_voxceleb_to_tfrecords(
        str(root / "dev" / "*" / "*" / "*"),
        str(root),
        "dev",
        num_shards=1,
        num_frames_per_video=n,
        frame_size=(QUICK_SIZE, QUICK_SIZE),
    )
    return str(root), len(starts)


def make_config(**overrides):
    """`options.default_config(**overrides)`, validated as `python -m lsr.main` validates."""
    config = options.default_config(**overrides)
    options.validate_options(config)
    return config


def used_losses(config) -> str:
    """The loss weights above zero, by name ('gan, l1, ...')."""
    return ", ".join(
        sorted(
            name[len("w_loss_") :] for name, value in vars(config).items() if name.startswith("w_loss_") and value > 0
        )
    )


def quick_fit(sample: Path, work: Path, steps: int, max_seconds: float, seed: int = 0) -> tuple[Path, int, float, str]:
    """Train the quick configuration on the sample; (train dir, steps done, seconds, losses)."""
    import tensorflow as tf

    from lsr import run

    dataset_dir, records = write_training_records(sample, work / "records")
    train_dir = work / "run"
    base = dict(
        QUICK_OPTIONS,
        batch_size=min(2, records),
        num_frame_concatenations=QUICK_FRAMES,
        train_dir=str(train_dir),
        dataset_parent_dir=dataset_dir,
        total_k_examples=1000,
    )
    config = make_config(**base)
    tf.keras.utils.set_random_seed(seed)
    # Tracing the GAN step costs more than the few steps run here; eager gives the same values.
    tf.config.run_functions_eagerly(True)
    try:
        # run.train resumes from train_dir exactly, so the fit goes on in time-boxed chunks.
        done, seconds = time_boxed_fit(
            lambda step: run.train(make_config(**base, max_train_steps=step)), steps, max_seconds
        )
    finally:
        tf.config.run_functions_eagerly(False)
    return train_dir, done, seconds, used_losses(config)


def infer(checkpoint: Path, source: Path, driver: Path, size: int, extra: dict, output_dir: Path):
    """`lsr.run.infer` (meta, K=1) of `checkpoint` into `output_dir`; returns its result."""
    from lsr import run

    config = make_config(
        **{**extra, "train_resolution": size, "K": DEMO_K},
        source_subject_dir=str(source),
        driver_subject_dir=str(driver),
        few_shot_finetuning=False,
    )
    return run.infer(config, checkpoint, output_dir)


def collect(result, out: Path, fps: float) -> list[Path]:
    """Move the io tuples into OUT (replacing earlier ones) and write the output frames as
    result.mp4."""
    if not result.io_tuples:
        raise InputError(f"{result.output_dir}: infer wrote no io tuples")
    for old in out.glob("*_io_tuple.png"):
        old.unlink()
    written = [Path(shutil.move(str(path), out / path.name)) for path in result.io_tuples]
    write_video(out / "result.mp4", result.frames, fps=fps)
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lsr.sample_demo", description=__doc__.split("\n")[0])
    add_demo_arguments(
        parser,
        steps=30,
        max_seconds=35.0,
        checkpoint_flag="--train_dir",
        checkpoint_help="official/trained checkpoint folder",
    )
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    checked_frames(args.sample)  # every input is checked before TensorFlow is loaded
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        raise InputError(f"{args.checkpoint}: checkpoint folder not found")
    start_demo(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lsr_demo_") as tmp:
        work = Path(tmp)
        if args.checkpoint is not None:
            source, driver = write_subjects(args.sample, work / "subjects", OFFICIAL_SIZE)
            label = CHECKPOINT_LABEL.format(size=OFFICIAL_SIZE, checkpoint=args.checkpoint)
            result = infer(args.checkpoint, source, driver, OFFICIAL_SIZE, {}, work / "inference")
        else:
            train_dir, steps, seconds, losses = quick_fit(args.sample, work, args.steps, args.max_seconds, args.seed)
            source, driver = write_subjects(args.sample, work / "subjects", QUICK_SIZE)
            label = QUICK_LABEL.format(size=QUICK_SIZE, steps=steps, seconds=seconds, losses=losses)
            result = infer(train_dir, source, driver, QUICK_SIZE, QUICK_OPTIONS, work / "inference")
        written = collect(result, args.out, sample_fps(args.sample))
    write_readme(
        args.out,
        label,
        args.sample,
        f"{len(written)} io tuples ({TUPLE_PANELS}) -> {args.out}, output panels -> "
        f"{args.out / 'result.mp4'}\ntotal {time.perf_counter() - started:.0f} s",
    )


if __name__ == "__main__":
    main()
