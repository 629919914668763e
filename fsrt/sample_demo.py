"""FSRT reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m fsrt.sample_demo --sample DIR --out OUT [--checkpoint vox256.pt [--kp_checkpoint kp_detector.pt]
                               [--config vox256]] [--quick_fit [--steps N] [--max_seconds S]] [--frames N]

Model: --checkpoint (official, 256 px; 15-20 s a frame on a 2-core CPU, --frames N renders the
first N) > the official files under checkpoints/fsrt/ > the DEMO MODEL in fsrt/demo_model/
(trained on the sample's training frames by `python -m fsrt.demo_model`, 64 px) > a QUICK FIT
(a small FSRT trained here for about --max_seconds with a random keypoint detector; only with
--quick_fit or when no demo model exists). Animates, as `python -m fsrt.demo --relative
--adapt_scale` (motion measured from driving frame 0):
  self:  DIR/source.png driven by DIR/driving/   -> OUT/self/frames/NNNNN.png, OUT/self/result.mp4
  cross: DIR/source_2.png driven by DIR/driving/ -> OUT/cross/frames/NNNNN.png, OUT/cross/result.mp4
(frames named after the driving frames, results alone, lossless; result.mp4 is [driving | result]),
plus OUT/run.json (`common.sample_demo.write_run_info`) and OUT/README.txt (which model).
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
from common.sample import require, sample_fps, sample_frames, training_count
from common.sample_demo import (
    add_demo_arguments,
    pick_model,
    start_demo,
    time_boxed_fit,
    write_readme,
    write_run_info,
)
from common.video import VideoWriter
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
DEMO_LABEL = (
    "DEMO MODEL trained on the sample by `make demo-models` (recipe {recipe}), not the official "
    "model: a small FSRT ({size} x {size} px, hidden widths / 4) trained from scratch by "
    "python -m fsrt.demo_model on both identities' training frames (driving frames 40-47 held out), "
    "with a small keypoint detector fitted to 10 of the sample's dlib landmarks. Relative motion "
    "with adapt_scale from driving frame 0, as python -m fsrt.demo --relative --adapt_scale."
)
CHECKPOINT_LABEL = (
    "FSRT reenactment with checkpoint {checkpoint} (config {config}, keypoint detector "
    "{kp_checkpoint}) at {size} x {size} px, relative motion with adapt_scale from driving "
    "frame 0, as python -m fsrt.demo --relative --adapt_scale."
)


# ------------------------------------------------------------------------------------ quick fit
def training_set(sample: Path, root: Path, size: int) -> dict:
    """The sample as a vox-layout dataset: data/{train,val}/<video>/ frame folders (source + the
    driving clip's training frames, already at `size` so the loader does not resize) and
    kp/<video>.npy landmarks in 256-px units."""
    frames = sample_frames(sample)
    frames = frames[: 1 + training_count(len(frames) - 1)]  # the held-out frames stay unseen
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
    source: Path,
    driving: list[Path],
    out: Path,
    size: int,
    read,
    fps: float,
    batch_size: int = 4,
    max_num_pixels: int = 8192,
) -> tuple[list[Path], float]:
    """Animate `source` with the `driving` frames as fsrt.demo --relative --adapt_scale (motion
    from driving frame 0); writes out/frames/<driving stem>.png and out/result.mp4 ([driving |
    result]). `read(path, size)` gives a float frame in [0, 1] the way the model was trained.
    Returns the written frames and the seconds spent in the networks."""
    frames = [read(path, size) for path in driving]
    start = time.perf_counter()
    z, kp_source = animate.encode_sources(model, detector, animate.to_tensor([read(source, size)]))
    codes = [
        animate.drive_codes(model, detector, animate.to_tensor(batch)) for batch in animate.batches(frames, batch_size)
    ]
    kp, expression = (torch.cat(parts) for parts in zip(*codes))
    kp = animate.transfer_motion(kp, kp_source[0], kp[0], relative=True, adapt_scale=True)
    seconds = time.perf_counter() - start
    if (out / "frames").exists():
        shutil.rmtree(out / "frames")
    written = []
    with VideoWriter(out / "result.mp4", fps=fps) as writer:
        for first in progress(range(0, len(kp), batch_size), desc="rendering", total=-(-len(kp) // batch_size)):
            stop = first + batch_size
            start = time.perf_counter()
            rendered = animate.render(model, z, kp[first:stop], expression[first:stop], size, size, max_num_pixels)
            seconds += time.perf_counter() - start
            for path, frame, result in zip(driving[first:stop], frames[first:stop], tensor_to_image(rendered)):
                writer.write(np.concatenate([to_uint8(frame), result], axis=1))
                written.append(write_image(out / "frames" / f"{path.stem}.png", result))
    return written, seconds


def read_resized(path: Path, size: int) -> np.ndarray:
    """Lanczos resize (common.image), as demo_model wrote the training frames and as the metrics read."""
    return read_image(path, size).astype(np.float32) / 255


def read_prepared(path: Path, size: int) -> np.ndarray:
    """fsrt.demo's own resize, for the official models and the quick fit."""
    return animate.prepare(read_image(path), size)


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
    parser.add_argument(
        "--quick_fit", action="store_true", help="train a quick fit here instead of using the demo model"
    )
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        parser.error("--frames must be at least 1")
    return args


def load_model(args: argparse.Namespace):
    """(detector, model, kind, checkpoint description, size, frame reader, README label)."""
    from fsrt.checkpoint import DEFAULT_KP_DETECTOR, load_pretrained
    from fsrt.demo_model import DEMO_DIR, DETECTOR_FILE, MODEL_FILE, RECIPE, SIZE, load_demo_model

    official = [args.checkpoint or Path("checkpoints/fsrt/vox256.pt"), args.kp_checkpoint or DEFAULT_KP_DETECTOR]
    if args.checkpoint is not None:
        picked = official, "official"
    elif args.quick_fit:
        picked = None
    else:
        picked = pick_model(official=official, demo=[DEMO_DIR / MODEL_FILE, DEMO_DIR / DETECTOR_FILE])
    if picked is None:
        with tempfile.TemporaryDirectory(prefix="fsrt_sample_demo_") as work:
            model, detector, steps, seconds, count, mse = quick_fit(
                args.sample, Path(work), args.steps, args.max_seconds, args.seed
            )
        label = QUICK_LABEL.format(
            size=QUICK_SIZE,
            expression=QUICK_MODEL["expression_size"],
            steps=steps,
            seconds=seconds,
            count=count,
            mse=mse,
        )
        return detector, model, "quick fit", f"quick fit ({steps} steps)", QUICK_SIZE, read_prepared, label
    files, kind = picked
    if kind == "demo model":
        detector, model = load_demo_model(files[0].parent)
        label = DEMO_LABEL.format(recipe=RECIPE.relative_to(RECIPE.parents[2]), size=SIZE)
        return detector, model, kind, " + ".join(map(str, files)), SIZE, read_resized, label
    config = args.config if args.checkpoint is not None else "vox256"
    detector, model = load_pretrained(config, files[0], files[1], "cpu")
    label = CHECKPOINT_LABEL.format(checkpoint=files[0], config=config, kp_checkpoint=files[1], size=animate.SIZE)
    return detector, model, kind, " + ".join(map(str, files)), animate.SIZE, read_prepared, label


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    driving = [frame.image for frame in start_demo(args)[1:]][: args.frames]
    source_2 = require(args.sample / "source_2.png", args.sample)
    detector, model, kind, checkpoint, size, read, label = load_model(args)
    sources = {"self": args.sample / "source.png", "cross": source_2}
    parts, seconds, count = {}, 0.0, 0
    for name, source in sources.items():
        written, spent = reenact(model, detector, source, driving, args.out / name, size, read, sample_fps(args.sample))
        seconds, count = seconds + spent, count + len(written)
        parts[name] = {
            "frames": f"{name}/frames",
            "source": source,
            "driving": args.sample / "driving",
            "identity": source,
        }
    write_run_info(args.out, "fsrt", kind, checkpoint, size, parts, seconds / count)
    write_readme(
        args.out,
        label,
        args.sample,
        f"self: source.png, cross: source_2.png, both driven by driving/: {len(driving)} frames each at "
        f"{size} px ({seconds / count:.2f} s a frame in the networks) -> {args.out}/{{self,cross}}/frames, "
        f"result.mp4; {args.out / 'run.json'}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
