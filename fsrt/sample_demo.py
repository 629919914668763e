"""FSRT reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m fsrt.sample_demo --sample DIR --out OUT [--checkpoint vox256.pt --kp_checkpoint kp_detector.pt
                               [--config vox256]] [--frames N] [--steps N] [--max_seconds S]

With --checkpoint: the official model animates DIR/source.png with the driving frames DIR/driving/
as `python -m fsrt.demo --relative --adapt_scale` does, at 256 x 256 (15-20 s per frame on a 2-core
CPU: --frames N renders only the first N). Without: a QUICK FIT, not the official model: a small
FSRT (the released architecture at its narrowest settings) is trained from scratch with
`fsrt.train.train` on the sample's own frames at 64 x 64, with a random keypoint detector, for
--steps iterations or about --max_seconds, then animates the source the same way. Writes
OUT/frames/00000.png ... (the results alone, lossless), OUT/result.mp4 ([driving | result] per
frame) and OUT/README.txt (what produced them).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.errors import cli_main
from common.image import read_image, tensor_to_image, to_uint8, write_image
from common.progress import get_logger, progress
from common.sample import require, sample_fps, sample_frames
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme
from common.video import VideoWriter, write_frames
from fsrt import animate

log = get_logger("fsrt.sample_demo")

QUICK_SIZE = 64
# The released architecture with its fixed token/render widths but few octaves, one attention
# block and the small decoder (as the tests' small model): about 0.45 s per training step of
# batch 2 on a 2-core CPU. Phase 1 only, at the original learning-rate schedule.
QUICK_MODEL = {
    "expression_size": 8,
    "small_decoder": True,
    "encoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
    "decoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
}
NO_JITTER = {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}  # 0 turns each off
VIDEO_NAME = "sample#frames#0#{count}"  # the vox naming <id>#<video>#...: one identity, one video

QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: a small FSRT ({size} x {size} px, "
    "1 attention block, small decoder, expression size {expression}) trained from scratch "
    "with fsrt.train for {steps} steps of batch 2 ({seconds:.0f} s on this machine's CPU) on the sample's "
    "own {count} frames, then run on them. Losses: MSE on random pixels (phase 1) + the "
    "expression statistical regularisation (invariance/variance/covariance); no perceptual "
    "loss (no VGG weights needed) and no GAN; final MSE {mse:.4f}. The keypoint detector is "
    "random (3-block hourglass, its kp layer sharpened x20 so keypoints follow the image "
    "content), not the official kp_detector.pt. Relative motion with adapt_scale from "
    "driving frame 0. Expect a blurry face-coloured blob that barely moves, not a "
    "reenactment: this many steps only fit the sample's mean colours and layout."
)
CHECKPOINT_LABEL = (
    "FSRT reenactment with checkpoint {checkpoint} (config {config}, keypoint detector "
    "{kp_checkpoint}) at {size} x {size} px, relative motion with adapt_scale from driving "
    "frame 0, as python -m fsrt.demo --relative --adapt_scale."
)


# ------------------------------------------------------------------------------------ quick fit
def training_set(sample: Path, root: Path, size: int) -> dict:
    """The sample as a vox-layout dataset: data/{train,val}/<video>/ frame folders (source + driving,
    already at `size` so the loader does not resize) and kp/<video>.npy landmarks in 256-px units."""
    frames = sample_frames(sample)
    marks = [require(frame.landmarks, sample) for frame in frames]
    name = VIDEO_NAME.format(count=len(frames))
    train = root / "data" / "train" / name
    train.mkdir(parents=True)
    for i, frame in enumerate(frames):
        write_image(train / f"{i:05d}.png", to_uint8(animate.prepare(read_image(frame.image), size)))
    # validation never runs (validate_every 0) but the trainer builds the val set
    shutil.copytree(train, root / "data" / "val" / name)
    side = read_image(frames[0].image).shape[0]
    (root / "kp").mkdir()
    np.save(root / "kp" / f"{name}.npy", (np.stack([np.load(p) for p in marks]) * (256 / side)).astype(np.float32))
    return {"data_path": str(root / "data"), "kp_path": str(root / "kp"), "count": len(frames)}


def quick_config(data: dict, batch_size: int = 2) -> dict:
    """Phase 1 only (MSE on random pixels, the cheapest phase), no augmentation: one identity,
    shown as it will be animated."""
    return {
        "data": {
            "data_path": data["data_path"],
            "kp_path": data["kp_path"],
            "num_pixels_phase1": 512,
            "num_pixels": (QUICK_SIZE // 2) ** 2,  # only checked: validation and phase 2 never run
            "simulate_out_of_frame_motion": False,
            "augmentation_params": {"flip_param": {"horizontal_flip": False}, "jitter_param": NO_JITTER},
        },
        "model": QUICK_MODEL,
        "discriminator": {"use_disc": False},
        "training": {
            "batch_size": batch_size,
            "num_workers": 0,
            "lr_warmup": 1,
            "iters_in_phase1": 10**9,
            "perceptual_loss_weight": [0] * 5,
            "checkpoint_every": 0,
            "backup_every": 0,
            "validate_every": 0,
            "visualize_every": 0,
            "print_every": 10**9,
        },
    }


def quick_detector(seed: int = 0):
    """A random keypoint detector whose keypoints follow the image content: its kp layer's weights
    x20 sharpen the heatmaps (a random one's are near-uniform, its keypoints all near the centre).
    3 hourglass blocks: the released 5 need at least 128 px."""
    from fsrt.model import KPDetector

    torch.manual_seed(seed)
    detector = KPDetector(num_blocks=3)
    with torch.no_grad():
        detector.kp.weight.mul_(20)
    return detector.eval()


def quick_fit(sample: Path, work: Path, steps: int, max_seconds: float, seed: int = 0):
    """Train the quick model on the sample; (model, detector, steps done, seconds, frames, final mse)."""
    from fsrt.checkpoint import load_fsrt
    from fsrt.model import FSRT
    from fsrt.train import train

    start = time.perf_counter()
    data = training_set(sample, work, QUICK_SIZE)
    cfg = quick_config(data)
    detector = quick_detector(seed)
    run, rows = work / "run", []

    def train_until(target: int) -> None:  # resumes from run/model.pt
        rows.extend(
            train(
                cfg,
                run,
                kp_detector=detector,
                max_it=target,
                frame_size=QUICK_SIZE,
                seed=seed,
                show_progress=None,
                device="cpu",
            )
        )

    done, _ = time_boxed_fit(train_until, steps, max_seconds - (time.perf_counter() - start))
    log.info("quick fit: %d steps in %.0f s", done, time.perf_counter() - start)
    model = FSRT(**QUICK_MODEL)
    load_fsrt(model, run / "model.pt")
    mse = float(np.mean([r["mse"] for r in rows[-10:]]))
    return model.eval(), detector, done, time.perf_counter() - start, data["count"], mse


# ------------------------------------------------------------------------------------ reenact
def reenact(
    model,
    detector,
    sample: Path,
    out: Path,
    size: int,
    max_frames: int | None = None,
    batch_size: int = 4,
    max_num_pixels: int = 8192,
) -> list[Path]:
    """Animate source.png with driving/ as fsrt.demo --relative --adapt_scale (motion measured from
    driving frame 0); writes OUT/frames/*.png and OUT/result.mp4 ([driving | result])."""
    driving = [animate.prepare(read_image(frame.image), size) for frame in sample_frames(sample)[1:][:max_frames]]
    source = animate.to_tensor([animate.prepare(read_image(sample / "source.png"), size)])
    z, kp_source = animate.encode_sources(model, detector, source)
    codes = [
        animate.drive_codes(model, detector, animate.to_tensor(batch)) for batch in animate.batches(driving, batch_size)
    ]
    kp, expression = (torch.cat(parts) for parts in zip(*codes))
    kp = animate.transfer_motion(kp, kp_source[0], kp[0], relative=True, adapt_scale=True)
    if (out / "frames").exists():
        shutil.rmtree(out / "frames")
    written = []
    with VideoWriter(out / "result.mp4", fps=sample_fps(sample)) as writer:
        for start in progress(range(0, len(kp), batch_size), desc="rendering", total=-(-len(kp) // batch_size)):
            stop = start + batch_size
            results = tensor_to_image(
                animate.render(model, z, kp[start:stop], expression[start:stop], size, size, max_num_pixels)
            )
            for frame, result in zip(driving[start:stop], results):
                writer.write(np.concatenate([to_uint8(frame), result], axis=1))
            written += write_frames(out / "frames", results, start=start)
    return written


# ------------------------------------------------------------------------------------- command
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsrt.sample_demo", description=__doc__.split("\n")[0])
    add_demo_arguments(parser, steps=1000, max_seconds=40.0, checkpoint_help="official FSRT checkpoint (vox256.pt)")
    parser.add_argument(
        "--kp_checkpoint",
        type=Path,
        default=None,
        help="keypoint detector checkpoint (default checkpoints/fsrt/kp_detector.pt)",
    )
    parser.add_argument("--config", default="vox256", help="config of --checkpoint (default vox256)")
    parser.add_argument("--frames", type=int, default=None, help="animate only the first N driving frames")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        parser.error("--frames must be at least 1")
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    start_demo(args)
    if args.checkpoint is not None:
        from fsrt.checkpoint import DEFAULT_KP_DETECTOR, load_pretrained

        kp_checkpoint = args.kp_checkpoint or DEFAULT_KP_DETECTOR
        detector, model = load_pretrained(args.config, args.checkpoint, kp_checkpoint, "cpu")
        size = animate.SIZE  # the released models are trained at 256 px only
        label = CHECKPOINT_LABEL.format(
            checkpoint=args.checkpoint, config=args.config, kp_checkpoint=kp_checkpoint, size=size
        )
    else:
        with tempfile.TemporaryDirectory(prefix="fsrt_sample_demo_") as work:
            model, detector, steps, seconds, count, mse = quick_fit(
                args.sample, Path(work), args.steps, args.max_seconds, args.seed
            )
        size = QUICK_SIZE
        label = QUICK_LABEL.format(
            size=size, expression=QUICK_MODEL["expression_size"], steps=steps, seconds=seconds, count=count, mse=mse
        )
    start = time.perf_counter()
    written = reenact(model, detector, args.sample, args.out, size, args.frames)
    write_readme(
        args.out,
        label,
        args.sample,
        f"{len(written)} frames ({time.perf_counter() - start:.0f} s to "
        f"animate) -> {args.out / 'frames'}, {args.out / 'result.mp4'}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
