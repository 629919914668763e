"""The shared sample of `python -m tools.make_sample_data`, as the `make demo` steps read it.

DIR/source.png and DIR/driving/NNNNN.png, their landmarks DIR/landmarks/source.npy and
DIR/landmarks/driving/NNNNN.npy, their label maps DIR/parsing/source.png and
DIR/parsing/driving/NNNNN.png, the second identity's clip DIR/driving_2/ with its annotations in
the same places, and DIR/meta.json (fps among others).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

from common.errors import InputError
from common.image import list_images

DEFAULT_FPS = 25.0


class SampleFrame(NamedTuple):
    image: Path
    landmarks: Path
    parsing: Path


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--sample DIR --out OUT` pair every demo takes."""
    parser.add_argument("--sample", required=True, type=Path, help="folder written by tools.make_sample_data")
    parser.add_argument("--out", required=True, type=Path, help="output folder")


def require(path: Path, sample: Path) -> Path:
    """`path` if it exists, else a one-line error that says how to build the sample."""
    if not path.exists():
        raise InputError(f"{path} not found (run python -m tools.make_sample_data --out {sample})")
    return path


def sample_frames(sample: Path) -> list[SampleFrame]:
    """The source, then every driving frame in order. The images are checked here; landmark and
    label files only where a demo reads them (`require`)."""
    require(sample / "source.png", sample)
    driving = list_images(require(sample / "driving", sample))
    if not driving:
        raise InputError(f"{sample / 'driving'}: no frames (run python -m tools.make_sample_data --out {sample})")
    frames = [
        SampleFrame(sample / "source.png", sample / "landmarks" / "source.npy", sample / "parsing" / "source.png")
    ]
    return frames + [
        SampleFrame(
            p, sample / "landmarks" / "driving" / f"{p.stem}.npy", sample / "parsing" / "driving" / f"{p.stem}.png"
        )
        for p in driving
    ]


def second_identity_frames(sample: Path) -> list[SampleFrame]:
    """The second identity's clip DIR/driving_2/ (source_2 animated with the same kind of motion):
    a cross-identity driver for person-specific models."""
    frames = list_images(require(sample / "driving_2", sample))
    if not frames:
        raise InputError(f"{sample / 'driving_2'}: no frames (run python -m tools.make_sample_data --out {sample})")
    return [
        SampleFrame(
            p, sample / "landmarks" / "driving_2" / f"{p.stem}.npy", sample / "parsing" / "driving_2" / f"{p.stem}.png"
        )
        for p in frames
    ]


def training_count(count: int, group: int = 4) -> int:
    """How many of a clip's first frames train a demo model; the rest are held out.

    The last sixth of the clip is held out, in whole groups of `group` frames (at least one group;
    VPGC trains on windows of 4): frames 40-47 of the default 48. Every method's demo model is
    trained without them, so the self-reenactment of those frames is scored on unseen poses.
    """
    held_out = max(group, count // 6 // group * group)
    if count - held_out < group:
        raise InputError(f"the sample's driving clip has {count} frames; a demo needs at least {group + held_out}")
    return count - held_out


def held_out_frames(sample: Path) -> list[SampleFrame]:
    """The driving clip's held-out frames (after the first `training_count`), never trained on."""
    clip = sample_frames(sample)[1:]
    return clip[training_count(len(clip)) :]


def sample_fps(sample: Path) -> float:
    """The driving clip's frame rate from meta.json (25 when it is missing or unreadable)."""
    try:
        return float(json.loads((sample / "meta.json").read_text())["fps"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_FPS
