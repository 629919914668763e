"""Write `metadata.pkl` (frame name, 68 x 2 landmarks) for every sampled video folder, as the
original `extract_landmark.py`.

    python -m fsth.dataset.voxceleb1.extract_landmark ROOT [--backend dlib|face_alignment] [--workers 2]

Every image of `ROOT/<person>/<video>/` is resized to 256 x 256 (Lanczos) and its landmarks are
detected there; with several faces the one with the largest landmark extent is kept. A frame
without a face or unreadable is left out and listed at the end. The pickle (highest protocol)
is what `fsth.dataset.VoxCeleb` and the original read: a list of (file name, float32 (68, 2)
array, x then y, in 256-pixel coordinates). Folders that already hold one are skipped; one in
which no frame has a face gets none and is listed.
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
from pathlib import Path

from common.errors import InputError, cli_main
from common.image import list_images, read_image
from common.jobs import run_jobs
from common.landmarks import LandmarkDetector, find_fan_weights
from common.progress import get_logger
from fsth.dataset.videos import list_videos
from fsth.dataset.voxceleb import METADATA, METADATA_FRAME_SIZE

log = get_logger("fsth.dataset.voxceleb1.extract_landmark")
_detector: LandmarkDetector | None = None  # one per worker process


def init_detector(backend: str, device: str, weights_dir: str | None) -> None:
    global _detector
    # flip_input as the original's FAN; the largest face as its main-face rule
    _detector = LandmarkDetector(backend, device=device, flip_input=True, weights_dir=weights_dir, main_face="largest")


def video_metadata(folder: Path, detector: LandmarkDetector, size: int = METADATA_FRAME_SIZE) -> tuple[list, list[str]]:
    """(file name, landmarks) of the frames of `folder` with a face, and the frames left out."""
    entries, failures = [], []
    for frame in list_images(folder):
        try:
            entries.append((frame.name, detector.detect(read_image(frame, size), name=str(frame))))
        except InputError as exc:
            failures.append(str(exc))
    return entries, failures


def extract_video(video: str, root: Path) -> tuple[int, list[str]]:
    """metadata.pkl of `<person>/<video>` unless it exists; returns (frames kept, failures)."""
    path = root / video / METADATA
    if path.exists():
        return 0, []
    entries, failures = video_metadata(root / video, _detector)
    if not entries:
        return 0, failures + [f"{root / video}: no frame with a face, no {METADATA} written"]
    tmp = path.with_name(f".{METADATA}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(entries, f, pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)  # an existing metadata.pkl is complete
    return len(entries), failures


def extract_landmark(
    root: Path, backend: str = "dlib", workers: int = 1, device: str = "cpu", weights_dir: str | None = None
) -> tuple[int, list[str]]:
    """Frames with landmarks and failures over the whole tree."""
    if backend == "face_alignment":
        find_fan_weights(weights_dir)  # a missing file is one error here, not one per worker
    work = functools.partial(extract_video, root=root)
    results, failures = run_jobs(
        work, list_videos(root), workers, "videos", init_detector, (backend, device, weights_dir)
    )
    return sum(r for r in results if r), failures


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fsth.dataset.voxceleb1.extract_landmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="<person>/<video>/<frames> (the output of sample_frame)")
    parser.add_argument(
        "--backend",
        choices=("dlib", "face_alignment"),
        default="dlib",
        help="the original used face_alignment (FAN, large, flip_input)",
    )
    parser.add_argument("--device", default="cpu", help="FAN device, e.g. cuda")
    parser.add_argument("--weights_dir", help="folder with the FAN weight files (face_alignment)")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    kept, failures = extract_landmark(args.root, args.backend, args.workers, args.device, args.weights_dir)
    log.info("landmarks of %d frames written under %s, %d frames or folders skipped", kept, args.root, len(failures))


if __name__ == "__main__":
    main()
