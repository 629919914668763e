"""Speed of the shared components on this machine: video decode/encode and landmark detection.

`python -m tools.bench_common [--frames N] [--json OUT]` prints frames/s per operation and the peak
memory of the process (`--json`: also as common.bench rows, method "common"). It is a measurement
script, not a test: numbers depend on the machine and load.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from common.bench import BenchRow, write_rows_json


def _rate(label: str, count: int, seconds: float) -> BenchRow:
    print(f"{label:<44s} {count / seconds:8.1f} frames/s  ({1000 * seconds / count:7.1f} ms/frame)")
    return BenchRow("common", label, "other", seconds / count, "frame")


def _clip(size: int, frames: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    photo = (resize(data.astronaut(), (size + frames, size + frames), anti_aliasing=True) * 255).astype(np.uint8)
    return np.stack([photo[i : i + size, i : i + size] for i in range(frames)])


def bench_video(frames: int, folder: Path) -> list[BenchRow]:
    from common import video

    rows = []
    for size in (256, 512):
        clip = _clip(size, frames)
        start = time.perf_counter()
        path = video.write_video(folder / f"clip{size}.mp4", clip)
        rows.append(_rate(f"H.264 encode {size}x{size}", frames, time.perf_counter() - start))
        start = time.perf_counter()
        count = sum(1 for _ in video.iter_frames(path))
        rows.append(_rate(f"H.264 decode {size}x{size}", count, time.perf_counter() - start))
    return rows


def bench_landmarks(frames: int, fan_weights: str | None) -> list[BenchRow]:
    from common.landmarks import LandmarkDetector

    detectors = {"dlib (HOG + 68 pts)": LandmarkDetector(backend="dlib")}
    if fan_weights:
        detectors["FAN (S3FD detector)"] = LandmarkDetector(backend="face_alignment", weights_dir=fan_weights)
    rows = []
    for label, detector in detectors.items():
        for size in (256, 512):
            clip = _clip(size, frames)
            detector.detect(clip[0])  # model loading and JIT are not part of the per-frame cost
            start = time.perf_counter()
            for frame in clip:
                detector.detect(frame)
            rows.append(_rate(f"{label} {size}x{size}", frames, time.perf_counter() - start))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fan_weights", help="folder with the FAN/S3FD files, to time that backend too")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as common.bench JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_video(args.frames, Path(tmp))
    rows += bench_landmarks(max(8, args.frames // 4), args.fan_weights)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")
    if args.json:
        for row in rows:
            row.peak_mb, row.notes = peak_mb, "peak: the whole run's resident peak"
        write_rows_json(args.json, rows, f"shared components, {args.frames} video frames")


if __name__ == "__main__":
    main()
