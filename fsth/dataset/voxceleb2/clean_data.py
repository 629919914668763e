"""Move VoxCeleb2 clips too small to hold video (< 1024 bytes) out of the dataset, as the original
`clean_data.py`.

    python -m fsth.dataset.voxceleb2.clean_data ROOT --recycle_dir DIR [--min_size 1024] [--workers 4]

ROOT holds `<person>/<video>/<clip>.mp4`. A small clip goes to `DIR/<person>_<video>_<clip>.mp4`;
a video folder left empty then goes to `DIR/<person>_<video>` (the original kept only `<video>`,
which collides between people). Running it again finds nothing more to move.
"""

from __future__ import annotations

import argparse
import functools
import shutil
from pathlib import Path

from common.errors import InputError, cli_main
from common.jobs import run_jobs
from common.progress import get_logger
from fsth.dataset.videos import list_videos

MIN_SIZE = 1024
log = get_logger("fsth.dataset.voxceleb2.clean_data")


def clean_video(video: str, root: Path, recycle_dir: Path, min_size: int = MIN_SIZE) -> tuple[list[str], list[str]]:
    """Move the small clips of `<person>/<video>`; returns (moved names, failures)."""
    person, name = video.split("/")
    folder = root / video
    moved = []
    for clip in sorted(folder.iterdir()):
        if clip.is_file() and clip.stat().st_size < min_size:
            shutil.move(clip, recycle_dir / f"{person}_{name}_{clip.name}")
            moved.append(f"{video}/{clip.name}")
    if not any(folder.iterdir()):
        shutil.move(folder, recycle_dir / f"{person}_{name}")
        moved.append(video)
    return moved, []


def clean_data(root: Path, recycle_dir: Path, min_size: int = MIN_SIZE, workers: int = 1) -> list[str]:
    """Every moved clip and folder, as `<person>/<video>[/<clip>]`."""
    videos = list_videos(root)
    recycle_dir.mkdir(parents=True, exist_ok=True)
    work = functools.partial(clean_video, root=root, recycle_dir=recycle_dir, min_size=min_size)
    results, _ = run_jobs(work, videos, workers, "videos")
    return [m for moved in results if moved for m in moved]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fsth.dataset.voxceleb2.clean_data", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="<person>/<video>/<clip>.mp4 tree (vox2_dev_mp4)")
    parser.add_argument("--recycle_dir", type=Path, required=True, help="where small clips are moved")
    parser.add_argument("--min_size", type=int, default=MIN_SIZE, help="bytes; smaller clips are moved")
    parser.add_argument("--workers", type=int, default=4)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.recycle_dir.resolve().is_relative_to(args.root.resolve()):
        raise InputError(f"{args.recycle_dir}: the recycle folder must lie outside {args.root}")
    moved = clean_data(args.root, args.recycle_dir, args.min_size, args.workers)
    log.info("%d clips and folders moved to %s", len(moved), args.recycle_dir)


if __name__ == "__main__":
    main()
