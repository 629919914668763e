"""LSR reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m lsr.demo --sample DIR --out OUT [--train_dir CKPT_DIR] [--steps N] [--max_seconds S]

The sample is first converted into LSR's processed-subject layout in a temporary folder:
`NNNNN_rgb.png` (resized), `NNNNN_contour.png` (`common.drawing.draw_landmarks(..., 'lsr')` of the
scaled landmarks) and `NNNNN_segmap_merged.png` (the sample's CelebAMask-HQ label maps, resized
nearest) for the source (K=1: DIR/source.png) and the driver (DIR/driving/*.png).

With --train_dir (the official meta-learning checkpoint or a trained run): `lsr.main`'s infer
(meta, no fine-tuning) at 224 px. Without: a QUICK FIT, not the official model: the small 64 px
two_step_syn configuration of the tests, trained from scratch on the sample's own frames
(exported to tfrecords with `lsr.data.export_voxceleb_to_tfrecords`) with the VGG / VGGFace /
identity losses and the R1/R2 penalties off (weight 0), then the same infer.

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
from common.sample import SampleFrame, add_sample_arguments, require, sample_fps, sample_frames
from common.video import write_video

OFFICIAL_SIZE = 224
QUICK_SIZE = 64
DEMO_K = 1
# The tests' tiny two_step_syn at 64 px (tests/lsr/test_lsr_main.py), VGG losses and R1/R2 off.
QUICK_FLAGS = dict(train_resolution=QUICK_SIZE, G_num_upsamples=4, g_nf=8, segmap_g_nf=8,
                   g_nf_max=16, e_nf=8, segmap_e_nf=8, E_num_downsamples=4, style_nc=16, d_nf=8,
                   D_num_downsamples=4, spade_proj_filters=8, K=DEMO_K, w_loss_vgg=0,
                   w_loss_vgg_face_recon=0, w_loss_identity=0, r1_gamma=0, r2_gamma=0,
                   lr_warmstart_steps=0, fix_lr_starting_step='true', log_info_every_n_steps=5,
                   save_summaries_every_n_steps=10 ** 6, save_checkpoint_every_n_steps=10 ** 6)
QUICK_FRAMES = 4  # frames per training record (--num_frame_concatenations)
# Subject folders are <person>/<video>/<part>; the io tuples are named after the driver's.
SOURCE_SUBJECT = ('sample', 'lsr_demo', 'source')
DRIVER_SUBJECT = ('sample', 'lsr_demo', 'driving')

QUICK_LABEL = ("QUICK FIT on the sample, NOT the official model: LSR two_step_syn ({size} px, "
               "narrow) trained from scratch for {steps} steps ({seconds:.0f} s on this machine's "
               "CPU) on the sample's own frames, then run meta inference with K=1. Losses used: "
               "{losses}; the perceptual (VGG19 / VGGFace) and identity losses and the R1/R2 "
               "penalties were disabled (weight 0). Expect blurry, low-quality output.")
CHECKPOINT_LABEL = ("LSR meta inference (K=1, no fine-tuning) at {size} px with the checkpoint "
                    "{checkpoint}.")


def _label_map(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        labels = np.asarray(img)
    if labels.ndim != 2:
        raise InputError(f'{path}: expected an 8-bit label map, got shape {labels.shape}')
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size),
                                                                      Image.NEAREST))


def _write_frame(folder: Path, index: int, image: Path, landmarks: Path, parsing: Path,
                 size: int) -> None:
    rgb = read_image(image)
    points = np.load(landmarks).astype(np.float32)[:, :2] * (size / np.array(rgb.shape[1::-1]))
    write_image(folder / f'{index:05d}_rgb.png', read_image(image, size))
    write_image(folder / f'{index:05d}_contour.png', draw_landmarks(points, size, 'lsr'))
    write_image(folder / f'{index:05d}_segmap_merged.png', _label_map(parsing, size))


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
        raise InputError(f'{sample}: {len(frames) - 1} driving frames; the quick fit needs at '
                         f'least {n - 1}')
    starts = sorted(set(range(0, len(frames) - n + 1, n)) | {len(frames) - n})
    for start in starts:
        part = root / 'dev' / 'sample' / 'lsr_demo' / f'{start:05d}'
        part.mkdir(parents=True)
        for i, frame in enumerate(frames[start:start + n]):
            _write_frame(part, i, *frame, size=QUICK_SIZE)
    exporter.export_voxceleb_to_tfrecords(str(root / 'dev' / '*' / '*' / '*'), str(root), 'dev',
                                          num_shards=1, num_frames_per_video=n,
                                          frame_size=(QUICK_SIZE, QUICK_SIZE))
    return str(root), len(starts)


def _flags(**values) -> list[str]:
    return ['lsr.main'] + [f'--{k}={v}' for k, v in values.items()]


def _parse(argv: list[str]):
    from absl import flags

    from lsr import main as lsr_main
    from lsr import options

    lsr_main.FLAGS.unparse_flags()
    try:
        lsr_main.FLAGS(argv)
    except flags.Error as exc:
        raise InputError(str(exc)) from None
    options.validate_options(lsr_main.FLAGS)
    return lsr_main.FLAGS


def quick_fit(sample: Path, work: Path, steps: int, max_seconds: float) -> tuple[Path, int, float, str]:
    """Train the quick configuration on the sample; (train dir, steps done, seconds, losses)."""
    import tensorflow as tf

    from lsr import engine
    from lsr import main as lsr_main

    dataset_dir, records = write_training_records(sample, work / 'records')
    train_dir = work / 'run'
    base = dict(QUICK_FLAGS, batch_size=min(2, records), num_frame_concatenations=QUICK_FRAMES,
                train_dir=train_dir, dataset_parent_dir=dataset_dir, total_k_examples=1000)
    # Tracing the GAN step costs more than the few steps run here; eager gives the same values.
    tf.config.run_functions_eagerly(True)
    start, done, chunk = time.perf_counter(), 0, 10
    try:
        # train() resumes from train_dir, so the time limit is checked between chunks of steps.
        while done < steps:
            done = min(done + chunk, steps)
            config = _parse(_flags(**base, max_train_steps=done))
            chunk_start = time.perf_counter()
            lsr_main.train(config, engine.make_strategy())
            # stop before a chunk that would end past --max_seconds
            if 2 * time.perf_counter() - chunk_start - start > max_seconds:
                break
    finally:
        tf.config.run_functions_eagerly(False)
    losses = sorted(k[len('w_loss_'):] for k in dir(config)
                    if k.startswith('w_loss_') and getattr(config, k) > 0)
    return train_dir, done, time.perf_counter() - start, ', '.join(losses)


def _linked_checkpoint(train_dir: Path, work: Path) -> Path:
    """A scratch train dir linking to --train_dir's latest checkpoint, so that infer's outputs
    (written under <train_dir>/inference) do not land in the checkpoint folder."""
    from lsr import checkpoint

    prefix = Path(checkpoint.latest_checkpoint(str(train_dir)))
    linked = work / 'checkpoint'
    linked.mkdir()
    for path in prefix.parent.glob(prefix.name + '.*'):
        os.symlink(path.resolve(), linked / path.name)
    return linked


def infer(train_dir: Path, source: Path, driver: Path, size: int, extra: dict) -> Path:
    """`lsr.main.infer_single_example` (meta, K=1); returns its output folder."""
    from lsr import main as lsr_main

    config = _parse(_flags(**{**extra, 'train_resolution': size, 'K': DEMO_K},
                           train_dir=train_dir, run_mode='infer', source_subject_dir=source,
                           driver_subject_dir=driver, few_shot_finetuning='false'))
    return Path(lsr_main.infer_single_example(config))


def collect(inference_dir: Path, out: Path, fps: float) -> list[Path]:
    """Move the io tuples into OUT and write the output panels (4th of 5) as result.mp4."""
    for old in out.glob('*_io_tuple.png'):
        old.unlink()
    written = []
    for path in sorted(inference_dir.glob('*_io_tuple.png')):
        written.append(Path(shutil.move(str(path), out / path.name)))
    if not written:
        raise InputError(f'{inference_dir}: infer wrote no io tuples')
    write_video(out / 'result.mp4', (np.split(read_image(p), 5, axis=1)[3] for p in written),
                fps=fps)
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m lsr.demo', description=__doc__.split('\n')[0])
    add_sample_arguments(parser)
    parser.add_argument('--train_dir', type=Path,
                        help='official/trained checkpoint folder; without it a quick fit on the '
                             'sample is run')
    parser.add_argument('--steps', type=int, default=30, help='quick fit: steps (default 30)')
    parser.add_argument('--max_seconds', type=float, default=35.0,
                        help='quick fit: stop after about this many seconds (default 35)')
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    checked_frames(args.sample)  # every input is checked before TensorFlow is loaded
    if args.train_dir is not None and not args.train_dir.is_dir():
        raise InputError(f'{args.train_dir}: checkpoint folder not found')
    if args.steps < 1:
        raise InputError(f'--steps must be at least 1, got {args.steps}')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='lsr_demo_') as tmp:
        work = Path(tmp)
        if args.train_dir is not None:
            train_dir = _linked_checkpoint(args.train_dir, work)
            source, driver = write_subjects(args.sample, work / 'subjects', OFFICIAL_SIZE)
            label = CHECKPOINT_LABEL.format(size=OFFICIAL_SIZE, checkpoint=args.train_dir)
            out_dir = infer(train_dir, source, driver, OFFICIAL_SIZE, {})
        else:
            train_dir, steps, seconds, losses = quick_fit(args.sample, work, args.steps,
                                                          args.max_seconds)
            source, driver = write_subjects(args.sample, work / 'subjects', QUICK_SIZE)
            label = QUICK_LABEL.format(size=QUICK_SIZE, steps=steps, seconds=seconds,
                                       losses=losses)
            out_dir = infer(train_dir, source, driver, QUICK_SIZE, QUICK_FLAGS)
        written = collect(out_dir, args.out, sample_fps(args.sample))
    text = (f"{label}\nsource: {args.sample / 'source.png'}\ndriving: {args.sample / 'driving'}\n"
            f"{len(written)} io tuples (driver landmarks | predicted layout | oracle layout | "
            f"output | ground truth) -> {args.out}, output panels -> {args.out / 'result.mp4'}\n"
            f"total {time.perf_counter() - started:.0f} s\n")
    (args.out / 'README.txt').write_text(text)
    print(text, end='')


if __name__ == '__main__':
    main()
