"""Train FSRT's small demo model on the shared sample (`tools.make_sample_data`) and write it to
fsrt/demo_model/ in the official checkpoint layouts.

    python -m fsrt.demo_model --sample DIR [--work DIR] [--out fsrt/demo_model] [--steps N]

1. Dataset: both identities' TRAINING frames (source.png + driving/ up to `training_count`,
   source_2.png + driving_2/ likewise; the held-out frames are never read) at 64 x 64, as two
   vox-layout videos with their landmark files (`fsrt.train`'s data layout).
2. Keypoint detector: FSRT freezes a pretrained FOMM detector; none exists for this sample, and a
   random one gives keypoints that barely follow the face. So a small `KPDetector` is fitted,
   by regression of its soft-argmax keypoints, to 10 of the sample's dlib landmarks (eye corners
   and upper lids, nose bridge and tip, mouth corners, inner lips) on the same training frames. Its
   keypoints then carry real head pose and mouth/eye motion, and it runs on any frame.
3. FSRT: `fsrt.train.train` (the library entry of `python -m fsrt.train`) with the recipe
   fsrt/runs/sample.yaml and that detector, on the CPU with a fixed seed.
4. Output: `sample.pt` (encoder, decoder and expression encoder: the vox256.pt layout without the
   optimiser state) and `kp_detector.pt` (a flat KPDetector state dict), written atomically.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.checkpoint import save_checkpoint
from common.errors import InputError, cli_main, require_at_least_one
from common.image import read_image, write_image
from common.progress import get_logger
from common.sample import SampleFrame, require, sample_frames, second_identity_frames, training_count

log = get_logger("fsrt.demo_model")

PACKAGE = Path(__file__).resolve().parent
RECIPE = PACKAGE / "runs" / "sample.yaml"
DEMO_DIR = PACKAGE / "demo_model"
MODEL_FILE, DETECTOR_FILE = "sample.pt", "kp_detector.pt"
SIZE = 64
# The released input scale 0.25 (a 16 x 16 hourglass input at 64 px; at full resolution the
# expression encoder's 7x7 convolution to 320 channels makes a CPU training step ~15x slower),
# 3 narrow hourglass blocks. block_expansion stays 32: the expression encoder reads its 32 + 3
# feature-map channels.
DETECTOR_KWARGS = {"num_blocks": 3, "max_features": 64}
# dlib 68-point indices the 10 keypoints learn: outer eye corners, upper lids, nose bridge and tip,
# mouth corners, inner upper/lower lip. (The 10 x 10 heatmap's grid spans the central 3/4 of the
# frame only, which leaves out the chin.)
KEYPOINT_LANDMARKS = (36, 45, 37, 44, 27, 30, 48, 54, 62, 66)
DETECTOR_STEPS, DETECTOR_BATCH, DETECTOR_LR = 800, 16, 2e-3


def training_clips(sample: Path) -> dict[str, list[SampleFrame]]:
    """Each identity's still plus its clip's training frames, named in the vox way <id>#<video>#..."""
    first = sample_frames(sample)
    second = second_identity_frames(sample)
    still_2 = SampleFrame(
        sample / "source_2.png", sample / "landmarks" / "source_2.npy", sample / "parsing" / "source_2.png"
    )
    require(still_2.image, sample)
    return {
        "astronaut#driving#train": first[: 1 + training_count(len(first) - 1)],
        "hopper#driving_2#train": [still_2] + second[: training_count(len(second))],
    }


def write_dataset(sample: Path, root: Path, size: int = SIZE) -> tuple[dict, torch.Tensor, np.ndarray]:
    """The clips as root/data/{train,val}/<video>/NNNNN.png at `size` plus root/kp/<video>.npy
    (landmarks in 256-px units). Returns the data paths, all frames [N, 3, size, size] in [0, 1]
    and their landmarks [N, 68, 2] in `size`-px units. Validation never runs; the trainer still
    builds the val split, so it repeats the training videos."""
    frames, marks = [], []
    for name, clip in training_clips(sample).items():
        folder = root / "data" / "train" / name
        folder.mkdir(parents=True)
        video_marks = []
        for index, frame in enumerate(clip):
            side = read_image(frame.image).shape[0]
            image = read_image(frame.image, size)
            write_image(folder / f"{index:05d}.png", image)
            frames.append(image)
            video_marks.append(np.load(require(frame.landmarks, sample)).astype(np.float32) / side)
        (root / "kp").mkdir(exist_ok=True)
        np.save(root / "kp" / f"{name.split('.')[0]}.npy", np.stack(video_marks) * 256)
        shutil.copytree(folder, root / "data" / "val" / name)
        # resizing maps pixel centres: x_small = (x + 0.5) * size / side - 0.5
        marks += [m * size - 0.5 for m in video_marks]
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    return {"data_path": str(root / "data"), "kp_path": str(root / "kp")}, images, np.stack(marks)


def heatmap_targets(landmarks: np.ndarray, size: int, input_side: int, heatmap_side: int) -> torch.Tensor:
    """Landmarks (pixels of a `size` image) -> the detector's keypoint units. The hourglass sees the
    image subsampled to `input_side` (every size/input_side-th pixel from 0); the soft-argmax grid
    spans the heatmap, whose valid 7x7 convolution trims (input_side - heatmap_side) / 2 pixels a side."""
    margin = (input_side - heatmap_side) / 2
    points = landmarks[:, KEYPOINT_LANDMARKS] * input_side / size
    return torch.from_numpy(2 * (points - margin) / (heatmap_side - 1) - 1).float()


def detector_keypoints(detector, images: torch.Tensor) -> torch.Tensor:
    """The detector's forward pass with gradients (its own forward is frozen by design)."""
    from fsrt.model.keypoint_detector import soft_argmax

    if detector.down is not None:
        images = detector.down(images)
    logits = detector.kp(detector.predictor(images))
    heatmap = F.softmax(logits.flatten(2) / detector.temperature, dim=2).view_as(logits)
    return soft_argmax(heatmap)


def fit_detector(images: torch.Tensor, landmarks: np.ndarray, steps: int, seed: int = 0):
    """A `KPDetector(**DETECTOR_KWARGS)` whose keypoints regress `KEYPOINT_LANDMARKS` (Adam on
    seeded random batches); returns it in eval mode with its mean keypoint error in pixels."""
    from fsrt.model import KPDetector

    torch.manual_seed(seed)
    detector = KPDetector(**DETECTOR_KWARGS)
    with torch.no_grad():
        maps = detector(images[:1])[1]
    input_side, heatmap_side = maps["feature_map"].shape[-1], maps["heatmap"].shape[-1]
    targets = heatmap_targets(landmarks, images.shape[-1], input_side, heatmap_side)
    optimizer = torch.optim.Adam(detector.parameters(), lr=DETECTOR_LR)
    generator = torch.Generator().manual_seed(seed)
    detector.train()
    for _ in range(steps):
        batch = torch.randperm(len(images), generator=generator)[:DETECTOR_BATCH]
        optimizer.zero_grad()
        loss = ((detector_keypoints(detector, images[batch]) - targets[batch]) ** 2).mean()
        loss.backward()
        optimizer.step()
    detector.eval()
    with torch.no_grad():
        error = (detector(images)[0] - targets).norm(dim=-1).mean().item() * (heatmap_side - 1) / 2
    error *= images.shape[-1] / input_side  # in pixels of the frames
    return detector, error


def recipe(data: dict) -> dict:
    """fsrt/runs/sample.yaml with the dataset folders filled in."""
    from fsrt.config import load_config

    config = load_config(RECIPE)
    config["data"].update(data)
    return config


def load_demo_model(folder: Path = DEMO_DIR, device="cpu"):
    """(detector, model) from a demo-model folder, both loaded strictly by fsrt.checkpoint's loaders."""
    from fsrt.checkpoint import load_fsrt, load_kp_detector
    from fsrt.config import load_config
    from fsrt.model import FSRT, KPDetector

    model = FSRT(**load_config(RECIPE)["model"])
    load_fsrt(model, folder / MODEL_FILE)
    detector = load_kp_detector(folder / DETECTOR_FILE, KPDetector(**DETECTOR_KWARGS))
    return detector.to(device), model.to(device).eval()


def build(sample: Path, work: Path, out: Path, steps: int | None, detector_steps: int, seed: int) -> dict:
    """Dataset, detector fit, FSRT training, export; returns a summary of the run."""
    from fsrt.checkpoint import load_fsrt, save_fsrt
    from fsrt.model import FSRT
    from fsrt.train import train

    start = time.perf_counter()
    data, images, landmarks = write_dataset(sample, work)
    detector, error = fit_detector(images, landmarks, detector_steps, seed)
    log.info("keypoint detector: %d frames, mean keypoint error %.2f px at %d px", len(images), error, SIZE)
    save_checkpoint(detector.state_dict(), work / DETECTOR_FILE)  # the run folder is complete without `out`
    config = recipe(data)
    rows = train(config, work / "run", kp_detector=detector, max_it=steps, frame_size=SIZE, seed=seed, device="cpu")
    model = FSRT(**config["model"])
    load_fsrt(model, work / "run" / "model.pt")
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(detector.state_dict(), out / DETECTOR_FILE)
    save_fsrt(out / MODEL_FILE, model, it=len(rows), t=seconds)
    mse = float(np.mean([row["mse"] for row in rows[-50:]])) if rows else float("nan")
    log.info("FSRT: %d steps, final mse %.4f, %.0f s in all -> %s", len(rows), mse, seconds, out)
    return {"frames": len(images), "keypoint_error_px": error, "steps": len(rows), "mse": mse, "seconds": seconds}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsrt.demo_model", description=__doc__.split("\n")[0])
    parser.add_argument("--sample", required=True, type=Path, help="folder written by tools.make_sample_data")
    parser.add_argument("--work", type=Path, help="dataset and run folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default fsrt/demo_model)")
    parser.add_argument("--steps", type=int, help="FSRT training steps (default: the recipe's max_it)")
    parser.add_argument("--detector_steps", type=int, default=DETECTOR_STEPS, help="keypoint-detector fit steps")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    require_at_least_one(args, "steps", "detector_steps")
    training_clips(args.sample)  # one-line errors for a missing or incomplete sample before any work
    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            raise InputError(f"--work {args.work} is not empty")
        args.work.mkdir(parents=True, exist_ok=True)
        build(args.sample, args.work, args.out, args.steps, args.detector_steps, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="fsrt_demo_model_") as work:
            build(args.sample, Path(work), args.out, args.steps, args.detector_steps, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
