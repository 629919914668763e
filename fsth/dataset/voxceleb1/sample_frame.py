"""Copy 50 evenly spaced frames of every VoxCeleb1 video, as the original `sample_frame.py`.

    python -m fsth.dataset.voxceleb1.sample_frame SOURCE DEST [--sample_count 50] [--workers 6]

SOURCE is the frame tree of `dense-face-frames.tar.gz`, `<person>/<video>/<clip>/<frame>.jpg` with
integer clip folders and frame stems. Per video the frames of all clips, in numeric order, are
joined; frames round(i (n - 1) / 49), i = 0..49, are copied to `DEST/<person>/<video>/<clip>_<frame>`
(all of them when n <= 50). A video whose copies all exist is skipped, so a run can be repeated;
a video with non-numeric names or no frames is skipped and listed at the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
from pathlib import Path

from common.errors import InputError, cli_main
from common.jobs import run_jobs
from common.progress import get_logger
from fsth.dataset.videos import list_videos
from fsth.dataset.voxceleb2.extract_frames import sample_indices

SAMPLE_COUNT = 50
log = get_logger("fsth.dataset.voxceleb1.sample_frame")


def _numeric(path: Path, name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise InputError(f"{path}: expected an integer-named clip folder or frame, got {path.name!r}") from None


def video_frames(folder: Path) -> list[tuple[str, str]]:
    """(clip, frame file) of every frame of a video folder, clips and frames in numeric order."""
    clips = sorted((c for c in folder.iterdir() if c.is_dir()), key=lambda c: _numeric(c, c.name))
    frames = [
        (clip.name, f.name)
        for clip in clips
        for f in sorted((f for f in clip.iterdir() if f.is_file()), key=lambda f: _numeric(f, f.stem))
    ]
    if not frames:
        raise InputError(f"{folder}: no <clip>/<frame> files")
    return frames


def select_frames(frames: list, sample_count: int = SAMPLE_COUNT) -> list:
    return frames if len(frames) <= sample_count else [frames[i] for i in sample_indices(len(frames), sample_count)]


def sample_video(video: str, source: Path, dest: Path, sample_count: int = SAMPLE_COUNT) -> tuple[int, list[str]]:
    """Copy the selected frames of `<person>/<video>` not copied yet; returns (copied, failures)."""
    out = dest / video
    out.mkdir(parents=True, exist_ok=True)
    copied = 0
    for clip, frame in select_frames(video_frames(source / video), sample_count):
        target = out / f"{clip}_{frame}"
        if target.exists():
            continue
        tmp = out / f".{target.name}.tmp"
        shutil.copyfile(source / video / clip / frame, tmp)
        os.replace(tmp, target)  # a file that exists is complete
        copied += 1
    return copied, []


def sample_frame(source: Path, dest: Path, sample_count: int = SAMPLE_COUNT, workers: int = 1) -> tuple[int, list[str]]:
    """Frames copied and failures over the whole tree."""
    if sample_count < 2:
        raise InputError(f"--sample_count must be >= 2, got {sample_count}")
    work = functools.partial(sample_video, source=source, dest=dest, sample_count=sample_count)
    results, failures = run_jobs(work, list_videos(source), workers, "videos")
    return sum(r for r in results if r), failures


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fsth.dataset.voxceleb1.sample_frame", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("source", type=Path, help="<person>/<video>/<clip>/<frame>.jpg tree")
    parser.add_argument("dest", type=Path, help="sampled frames go to DEST/<person>/<video>/")
    parser.add_argument("--sample_count", type=int, default=SAMPLE_COUNT)
    parser.add_argument("--workers", type=int, default=6)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    copied, failures = sample_frame(args.source, args.dest, args.sample_count, args.workers)
    log.info("%d frames copied to %s, %d videos skipped", copied, args.dest, len(failures))


if __name__ == "__main__":
    main()
