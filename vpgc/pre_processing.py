"""A portrait video -> a VPGC subject folder: `python -m vpgc.pre_processing -i video.mp4 -o DATA/Subject`.

The original's `pre_processing.py` was never released (its issue #4); its README says: crop the
head of a static-background portrait video to 512x512 (a ratio sets how much around the face),
save the frames as `%05d.jpg`, and take 2-D landmarks in crop pixels from DECA. DECA is not
available here, so the landmarks come from `common.landmarks` (dlib's 68-point predictor by
default, or FAN with `--detector fan`), both in the same iBUG-68 order DECA's 2-D landmarks use.
Models trained on one detector's landmarks should be driven with the same detector's.

Crop (one for the whole video, so the static background stays static):

* each frame's face box is the bounding box of its 68 landmarks;
* the crop's centre is the per-axis median of the box centres over all frames, moved up by
  `lift` x face size; the face size is the median over frames of max(box width, box height);
* side = round(ratio x face size) pixels, the square's top-left corner rounded to a pixel;
* where the square does not fit in the frame it is shifted inside (clamped); where it is larger
  than the frame, the frame is padded by replicating its border pixels;
* the square is resized to `size` x `size` (OpenCV INTER_AREA when shrinking, INTER_CUBIC when
  enlarging) and the landmarks are carried along, pixel centres onto pixel centres:
  p' = (p - corner + 0.5) * size / side - 0.5.

Frames without a detected face get landmarks interpolated linearly in time from the nearest
frames with a face (frames before the first or after the last copy it): dropping them would
put jumps into the sequence, and the model reads 7-frame windows and a temporal loss. A video
without any face is an error.

Output (the original's layout; the last `test` frames are the test split, the rest train):

    <output>/images/{train,test}/%05d.jpg   JPEG quality 95, 4:4:4 chroma (Pillow)
    <output>/ldmks/{train,test}/%05d.txt    68 rows "x y" (np.savetxt, crop pixels)
    <output>/preprocess.json                 crop box, sizes, split, frames without a face

Files are numbered by frame position in the processed sequence (test continues after train),
zero-padded to at least 5 digits. Everything is written into a hidden folder beside the output
and moved into place at the end, so a failed run leaves nothing half-written; an output that
already holds images/ or ldmks/ is refused unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError, NoFaceError, cli_main
from common.landmarks import LandmarkDetector
from common.progress import get_logger, progress
from common.video import iter_frames, video_info

log = get_logger("vpgc.pre_processing")

JPEG_QUALITY = 95
DATASET_ENTRIES = ("images", "ldmks", "preprocess.json")


@dataclass(frozen=True)
class CropBox:
    """A square of `side` pixels with top-left corner (x0, y0) in frame pixels (may leave the frame)."""

    x0: int
    y0: int
    side: int


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2]: the bounding box of a frame's landmarks."""
    return np.concatenate([landmarks.min(0), landmarks.max(0)])


def crop_box(landmarks: np.ndarray, frame_hw: tuple[int, int], ratio: float, lift: float = 0.0) -> CropBox:
    """The fixed square crop of a video from its [N, 68, 2] landmarks (see the module docstring)."""
    if ratio <= 0:
        raise InputError(f"--ratio must be positive, got {ratio}")
    boxes = np.stack([face_box(points) for points in landmarks])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    face = float(np.median(np.max(boxes[:, 2:] - boxes[:, :2], axis=1)))
    cx, cy = np.median(centres, axis=0)
    cy -= lift * face
    side = max(1, round(ratio * face))
    height, width = frame_hw
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    # shift inside the frame along each axis where the square fits; beyond that it is padded
    x0 = min(max(x0, 0), width - side) if side <= width else round((width - side) / 2)
    y0 = min(max(y0, 0), height - side) if side <= height else round((height - side) / 2)
    return CropBox(int(x0), int(y0), int(side))


def crop_frame(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The box of an HxWx3 frame (border pixels replicated outside it) resized to size x size."""
    import cv2

    height, width = frame.shape[:2]
    pad = max(0, -box.x0, -box.y0, box.x0 + box.side - width, box.y0 + box.side - height)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = box.x0 + pad, box.y0 + pad
    square = frame[y0 : y0 + box.side, x0 : x0 + box.side]
    if box.side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def to_crop(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Frame-pixel landmarks in pixels of the resized crop (pixel centres onto pixel centres)."""
    return (np.asarray(points, dtype=np.float64) - [box.x0, box.y0] + 0.5) * (size / box.side) - 0.5


def fill_missing(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, list[int]]:
    """[N, 68, 2] with the frames without a face (None) interpolated linearly in time between the
    nearest found frames (copied before the first and after the last), and their indices."""
    found = [i for i, points in enumerate(landmarks) if points is not None]
    missing = [i for i, points in enumerate(landmarks) if points is None]
    if not found:
        raise NoFaceError("no face found in any frame")
    known = np.stack([landmarks[i] for i in found]).astype(np.float64).reshape(len(found), -1)
    frames = np.arange(len(landmarks))
    filled = np.stack([np.interp(frames, found, known[:, k]) for k in range(known.shape[1])], axis=1)
    return filled.reshape(len(landmarks), -1, 2), missing


def held_out(frames: int, test_fraction: float | None, test_frames: int | None) -> int:
    """How many of the last frames go to the test split (the rest, at least 4, is train)."""
    if test_frames is None:
        if not 0 <= test_fraction < 1:
            raise InputError(f"--test_fraction must be in [0, 1), got {test_fraction}")
        test_frames = round(test_fraction * frames)
    if test_frames < 0 or frames - test_frames < 4:
        raise InputError(
            f"{frames} frames leave {frames - test_frames} for training after {test_frames} test frames; "
            "training needs at least 4 (one group)"
        )
    return test_frames


def _detector(name: str, device: str, fan_weights: str | None, frame_hw: tuple[int, int]) -> LandmarkDetector:
    if name == "fan":
        return LandmarkDetector("face_alignment", device=device, weights_dir=fan_weights)
    # dlib's HOG finds faces from about 80 px without upsampling, 40 px with one level (4x slower)
    return LandmarkDetector("dlib", upsample=0 if min(frame_hw) >= 480 else 1)


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, quality=JPEG_QUALITY, subsampling=0)


def _holds_dataset(folder: Path) -> bool:
    return any((folder / entry).exists() for entry in DATASET_ENTRIES)


def _move_into(staging: Path, target: Path) -> None:
    """Move the staged dataset entries into `target`, replacing the entries already there."""
    if not target.exists():
        os.replace(staging, target)
        return
    for entry in DATASET_ENTRIES:
        old = target / entry
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        os.replace(staging / entry, old)
    staging.rmdir()


def crop_video(
    video: str | os.PathLike,
    output: str | os.PathLike,
    ratio: float = 1.6,
    size: int = 512,
    test_fraction: float = 0.1,
    test_frames: int | None = None,
    every_k: int = 1,
    max_frames: int | None = None,
    detector: LandmarkDetector | str = "dlib",
    lift: float = 0.0,
    overwrite: bool = False,
    device: str = "cpu",
    fan_weights: str | None = None,
) -> dict:
    """Write the subject folder `output` from `video` (a video file or a folder of frames); returns
    the summary also written to preprocess.json. `detector`: 'dlib', 'fan' or a LandmarkDetector."""
    video, output = Path(video), Path(output)
    if size < 1:
        raise InputError(f"--size must be positive, got {size}")
    info = video_info(video)  # a missing or unreadable input fails here
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder")
    if output.is_dir() and _holds_dataset(output) and not overwrite:
        raise InputError(f"{output}: already holds a dataset (images/, ldmks/); pass --overwrite to replace it")
    frame_hw = (info.height, info.width)
    if not isinstance(detector, LandmarkDetector):
        detector = _detector(detector, device, fan_weights, frame_hw)

    total = None if info.frames is None else -(-info.frames // every_k)  # for the progress bar
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    detected = []
    for frame in progress(iter_frames(video, every_k, max_frames), desc="landmarks", total=total):
        faces = detector.detect_all(frame)
        detected.append(faces[0].landmarks if faces else None)
    try:
        landmarks, missing = fill_missing(detected)
    except NoFaceError:
        raise NoFaceError(f"{video}: no face found in any of its {len(detected)} frames") from None
    tests = held_out(len(landmarks), test_fraction, test_frames)
    box = crop_box(landmarks, frame_hw, ratio, lift)
    digits = max(5, len(str(len(landmarks) - 1)))
    train = len(landmarks) - tests

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for kind in ("images", "ldmks"):
            for split in ("train", "test"):
                (staging / kind / split).mkdir(parents=True)
        frames = iter_frames(video, every_k, max_frames)
        for index, frame in enumerate(progress(frames, desc="crops", total=len(landmarks))):
            if index >= len(landmarks):  # a stream that grew between the passes
                break
            split = "train" if index < train else "test"
            name = f"{index:0{digits}d}"
            _write_jpeg(staging / "images" / split / f"{name}.jpg", crop_frame(frame, box, size))
            np.savetxt(staging / "ldmks" / split / f"{name}.txt", to_crop(landmarks[index], box, size))
        summary = {
            "video": str(video),
            "frames": len(landmarks),
            "train": train,
            "test": tests,
            "frame_size": [info.width, info.height],
            "crop": asdict(box),
            "size": size,
            "ratio": ratio,
            "lift": lift,
            "every_k": every_k,
            "detector": detector.backend,
            "missing_faces": missing,
            "jpeg_quality": JPEG_QUALITY,
        }
        (staging / "preprocess.json").write_text(json.dumps(summary, indent=2) + "\n")
        _move_into(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if missing:
        log.warning("%d of %d frames had no face; their landmarks are interpolated", len(missing), len(landmarks))
    log.info("%s: %d train and %d test frames, crop %s -> %dpx", output, train, tests, box, size)
    return summary


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpgc.pre_processing",
        description=__doc__.split("\n\n")[0] + " DECA (the original's landmarks) is not available: "
        "landmarks come from dlib (default) or FAN. See the module docstring for the crop.",
    )
    parser.add_argument("-i", "--input", required=True, help="portrait video (or a folder of frames)")
    parser.add_argument("-o", "--output", required=True, help="subject folder to write (DATA/Subject)")
    parser.add_argument("--ratio", type=float, default=1.6, help="crop side / face size (landmark box; default 1.6)")
    parser.add_argument("--lift", type=float, default=0.0, help="move the crop up by this x face size (default 0)")
    parser.add_argument("--size", type=int, default=512, help="crop size in pixels (default 512, the models')")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test_fraction", type=float, default=0.1, help="last part of the video for test (0.1)")
    split.add_argument("--test_frames", type=int, default=None, help="last N frames for test instead")
    parser.add_argument("--every_k", type=int, default=1, help="keep every k-th frame (default 1)")
    parser.add_argument("--max_frames", type=int, default=None, help="stop after this many kept frames")
    parser.add_argument("--detector", choices=("dlib", "fan"), default="dlib", help="landmark detector (dlib)")
    parser.add_argument("--fan_weights", default=None, help="folder of FAN's weight files (--detector fan)")
    parser.add_argument("--device", default="cpu", help="device for FAN (cpu, cuda, cuda:N)")
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset already in --output")
    opt = parser.parse_args(argv)
    crop_video(
        opt.input,
        opt.output,
        ratio=opt.ratio,
        size=opt.size,
        test_fraction=opt.test_fraction,
        test_frames=opt.test_frames,
        every_k=opt.every_k,
        max_frames=opt.max_frames,
        detector=opt.detector,
        lift=opt.lift,
        overwrite=opt.overwrite,
        device=opt.device,
        fan_weights=opt.fan_weights,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
