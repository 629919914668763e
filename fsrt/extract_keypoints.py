"""68 face landmarks per frame of every video in a folder, as FSRT's VoxCeleb loader reads them:
`python -m fsrt.extract_keypoints --folder_in VIDEOS --folder_out KEYPOINTS`.

Each `VIDEOS/<name>.mp4` gives `KEYPOINTS/<name>.npy`, float32 [T, 68, 2] (x, y) in pixels of
the frame resized to 256x256. A frame without a face gets zeros (the loader's marker for it);
of several faces the one with the largest landmark hull is kept, as the original does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.image import to_uint8
from common.landmarks import NUM_POINTS, LandmarkDetector
from common.progress import get_logger, progress
from common.video import iter_frames
from fsrt.animate import hull_area, prepare

log = get_logger("fsrt.extract_keypoints")


def video_keypoints(path: Path, detector: LandmarkDetector) -> np.ndarray:
    """[T, 68, 2] float32 landmarks of a video's frames at 256x256; zeros where no face is found."""
    keypoints = []
    for frame in progress(iter_frames(path), desc=path.name):
        faces = detector.detect_all(to_uint8(prepare(frame)))
        if faces:
            keypoints.append(max((face.landmarks for face in faces), key=hull_area))
        else:
            keypoints.append(np.zeros((NUM_POINTS, 2), np.float32))
    return np.stack(keypoints).astype(np.float32)


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsrt.extract_keypoints", description=__doc__.split("\n")[0])
    parser.add_argument("--folder_in", required=True, help="folder of .mp4 videos (not searched recursively)")
    parser.add_argument("--folder_out", required=True, help="output folder for <video name>.npy (created)")
    parser.add_argument(
        "--backend",
        default="dlib",
        choices=("dlib", "face_alignment"),
        help="landmark detector; face_alignment (the original's) needs local weights",
    )
    parser.add_argument("--fan_weights", default=None, help="folder of the face_alignment weight files")
    add_device_argument(parser)
    parser.add_argument("--cpu", action="store_true", help="the original's flag: the same as --device cpu")
    opt = parser.parse_args(argv)

    folder_in, folder_out = Path(opt.folder_in), Path(opt.folder_out)
    if not folder_in.is_dir():
        raise InputError(f"{folder_in}: not a directory")
    videos = sorted(folder_in.glob("*.mp4"))
    if not videos:
        raise InputError(f"{folder_in}: holds no .mp4 videos")
    device = str(resolve_device("cpu" if opt.cpu else opt.device))
    detector = LandmarkDetector(opt.backend, device=device, flip_input=False, weights_dir=opt.fan_weights)
    folder_out.mkdir(parents=True, exist_ok=True)
    for video in videos:
        keypoints = video_keypoints(video, detector)
        target = folder_out / f"{video.stem}.npy"
        tmp = target.with_name(f".{video.stem}.tmp.npy")  # atomic: a crash leaves no truncated file
        np.save(tmp, keypoints)
        os.replace(tmp, target)
        missing = int((keypoints == 0).all(axis=(1, 2)).sum())
        log.info("%s: %d frames, %d without a face", target, len(keypoints), missing)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
