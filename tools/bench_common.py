"""Speed of the shared components on this machine: video decode/encode and landmark detection.

`python -m tools.bench_common [--frames N]` prints frames/s per operation and the peak memory
of the process. It is a measurement script, not a test: numbers depend on the machine and load.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _rate(label: str, count: int, seconds: float) -> None:
    print(f"{label:<44s} {count / seconds:8.1f} frames/s  ({1000 * seconds / count:7.1f} ms/frame)")


def _clip(size: int, frames: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    photo = (resize(data.astronaut(), (size + frames, size + frames), anti_aliasing=True) * 255).astype(np.uint8)
    return np.stack([photo[i : i + size, i : i + size] for i in range(frames)])


def bench_video(frames: int, folder: Path) -> None:
    from common import video

    for size in (256, 512):
        clip = _clip(size, frames)
        start = time.perf_counter()
        path = video.write_video(folder / f"clip{size}.mp4", clip)
        _rate(f"H.264 encode {size}x{size}", frames, time.perf_counter() - start)
        start = time.perf_counter()
        count = sum(1 for _ in video.iter_frames(path))
        _rate(f"H.264 decode {size}x{size}", count, time.perf_counter() - start)


def bench_landmarks(frames: int, fan_weights: str | None) -> None:
    from common.landmarks import LandmarkDetector

    detectors = {"dlib (HOG + 68 pts)": LandmarkDetector(backend="dlib")}
    if fan_weights:
        detectors["FAN (S3FD detector)"] = LandmarkDetector(backend="face_alignment", weights_dir=fan_weights)
    for label, detector in detectors.items():
        for size in (256, 512):
            clip = _clip(size, frames)
            detector.detect(clip[0])  # model loading and JIT are not part of the per-frame cost
            start = time.perf_counter()
            for frame in clip:
                detector.detect(frame)
            _rate(f"{label} {size}x{size}", frames, time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fan_weights", help="folder with the FAN/S3FD files, to time that backend too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench_video(args.frames, Path(tmp))
    bench_landmarks(max(8, args.frames // 4), args.fan_weights)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
