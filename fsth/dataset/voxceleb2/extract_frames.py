"""Save 20 evenly spaced frames of every VoxCeleb2 clip, as the original `extract_frames.py`.

    python -m fsth.dataset.voxceleb2.extract_frames ROOT OUTPUT [--sample_count 20] [--workers 6]

`ROOT/<person>/<video>/<clip>.mp4` -> `OUTPUT/<person>/<video>/<clip>/<frame index>.jpg` for the
frame indices round(i (n - 1) / 19), i = 0..19, of a clip of n frames (fewer files when n < 20).
A clip folder is written under a temporary name and renamed when complete, so a finished clip
(or one with 20 frames from the original script) is skipped when the run is repeated. Unlike the
original, which left the whole video at the first finished clip (`break`), the other clips of
that video are still extracted. Unreadable clips are skipped and listed at the end.
"""

from __future__ import annotations

import argparse
import functools
import shutil
from pathlib import Path

from PIL import Image

from common.errors import InputError, cli_main
from common.jobs import run_jobs
from common.progress import get_logger
from common.video import iter_frames, video_info
from fsth.dataset.videos import list_videos

SAMPLE_COUNT = 20
log = get_logger("fsth.dataset.voxceleb2.extract_frames")


def sample_indices(n: int, count: int) -> list[int]:
    """round(i (n - 1) / (count - 1)) for i < count (Python's round: half to even)."""
    return [round(i * (n - 1) / (count - 1)) for i in range(count)]


def _frame_count(clip: Path) -> int:
    count = video_info(clip).frames
    return count if count is not None else sum(1 for _ in iter_frames(clip))


def extract_clip(clip: Path, out: Path, sample_count: int = SAMPLE_COUNT) -> int:
    """Write the sampled frames of one clip into `out` (atomically); returns their number."""
    wanted = set(sample_indices(_frame_count(clip), sample_count))
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for index, frame in enumerate(iter_frames(clip, max_frames=max(wanted) + 1)):
        if index in wanted:
            Image.fromarray(frame).save(tmp / f"{index}.jpg")  # PIL's default quality, as the original
    tmp.rename(out)
    return len(wanted)


def extract_video(video: str, root: Path, output: Path, sample_count: int = SAMPLE_COUNT) -> tuple[int, list[str]]:
    """Every clip of `<person>/<video>` not done yet; returns (clips written, failures)."""
    written, failures = 0, []
    for clip in sorted((root / video).glob("*.mp4")):
        out = output / video / clip.stem
        if out.is_dir():
            continue
        try:
            extract_clip(clip, out, sample_count)
            written += 1
        except InputError as exc:
            shutil.rmtree(out.with_name(f".{out.name}.tmp"), ignore_errors=True)
            failures.append(str(exc))
    return written, failures


def extract_frames(
    root: Path, output: Path, sample_count: int = SAMPLE_COUNT, workers: int = 1
) -> tuple[int, list[str]]:
    """Clips written and failures over the whole tree."""
    if sample_count < 2:
        raise InputError(f"--sample_count must be >= 2, got {sample_count}")
    work = functools.partial(extract_video, root=root, output=output, sample_count=sample_count)
    results, failures = run_jobs(work, list_videos(root), workers, "videos")
    return sum(r for r in results if r), failures


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fsth.dataset.voxceleb2.extract_frames", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="<person>/<video>/<clip>.mp4 tree (vox2_dev_mp4)")
    parser.add_argument("output", type=Path, help="frames go to OUTPUT/<person>/<video>/<clip>/")
    parser.add_argument("--sample_count", type=int, default=SAMPLE_COUNT)
    parser.add_argument("--workers", type=int, default=6)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    written, failures = extract_frames(args.root, args.output, args.sample_count, args.workers)
    log.info("%d clips extracted to %s, %d skipped as unreadable", written, args.output, len(failures))


if __name__ == "__main__":
    main()
