"""Extract 68-point face landmarks from an image, a video or a folder of images.

`python -m tools.extract_landmarks --input PATH --output DIR [--backend dlib|face_alignment]
[--every_k N] [--fan_weights DIR] [--device cpu] [--no_preview]` writes

    DIR/<name>.npy           (68, 2) float32 (x, y) pixels; images by file stem, video frames by
                             frame index (00000.npy, 00005.npy ... with --every_k 5)
    DIR/preview/<name>.png   the frame with its landmarks as dots (unless --no_preview)
    DIR/no_face.txt          names of the frames where no face was found (only if any)

Frames without a face are skipped, not fatal; they are listed at the end.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from common.errors import InputError, NoFaceError, cli_main
from common.image import IMAGE_SUFFIXES, list_images, read_image, write_image
from common.progress import progress


def iter_inputs(path: Path, every_k: int = 1) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(name, RGB frame) pairs of an image, a folder of images or a video, and their count if known."""
    from common.video import iter_frames, video_info

    if every_k < 1:
        raise InputError(f"--every_k must be >= 1, got {every_k}")
    if not path.exists():
        raise InputError(f"{path}: input not found")
    if path.is_dir():
        images = list_images(path)[::every_k]
        if not images:
            raise InputError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return ((image.stem, read_image(image)) for image in images), len(images)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return iter([(path.stem, read_image(path))]), 1
    frames = video_info(path).frames
    total = None if frames is None else -(-frames // every_k)
    # names carry the frame index in the video, so sparse extraction stays aligned with it
    pairs = ((f"{i * every_k:05d}", frame) for i, frame in enumerate(iter_frames(path, every_k=every_k)))
    return pairs, total


def extract(pairs: Iterable[tuple[str, np.ndarray]], output: Path, detector, total: int | None = None,
            preview: bool = True) -> tuple[int, list[str]]:
    """Write one `.npy` (and preview) per named frame with a face; returns (written, names without a face)."""
    from common.drawing import overlay_landmarks
    from common.landmarks import save_landmarks

    output.mkdir(parents=True, exist_ok=True)
    written, missing = 0, []
    no_face = output / "no_face.txt"
    try:
        for name, frame in progress(pairs, desc="landmarks", total=total, unit="frame"):
            try:
                landmarks = detector.detect(frame, name=name)
            except NoFaceError:
                missing.append(name)
                continue
            save_landmarks(output / f"{name}.npy", landmarks)
            if preview:
                write_image(output / "preview" / f"{name}.png", overlay_landmarks(frame, landmarks))
            written += 1
    finally:  # an unreadable frame stops the run, but the misses found so far are kept
        if missing:
            no_face.write_text("".join(f"{name}\n" for name in missing))
    if not missing:
        no_face.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    return written, missing


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="an image, a video, or a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--backend", choices=("dlib", "face_alignment"), default="dlib",
                        help="dlib (offline, default) or face_alignment (FAN, needs local weights)")
    parser.add_argument("--every_k", type=int, default=1, help="keep every k-th frame / image")
    parser.add_argument("--fan_weights", type=Path, default=None,
                        help="folder holding 2DFAN4-11f355bf06.pth.tar (and s3fd-619a316812.pth for sfd); "
                             "default: the torch hub cache")
    parser.add_argument("--face_detector", choices=("sfd", "dlib"), default="sfd",
                        help="face detector of the face_alignment backend")
    parser.add_argument("--flip_input", action="store_true", help="face_alignment: also run FAN on the mirror")
    parser.add_argument("--device", default="cpu", help="face_alignment device: cpu, cuda, cuda:1 ...")
    parser.add_argument("--no_preview", action="store_true", help="do not write preview images")
    args = parser.parse_args(argv)

    from common.landmarks import LandmarkDetector

    pairs, total = iter_inputs(args.input, args.every_k)  # bad input fails before models load
    detector = LandmarkDetector(args.backend, device=args.device, flip_input=args.flip_input,
                                face_detector=args.face_detector, weights_dir=args.fan_weights)
    written, missing = extract(pairs, args.output, detector, total, not args.no_preview)
    print(f"wrote {written} landmark files to {args.output}")
    if missing:
        print(f"no face in {len(missing)} frame(s), listed in {args.output / 'no_face.txt'}: "
              f"{', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
