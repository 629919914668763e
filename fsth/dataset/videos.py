"""The VoxCeleb folder layout the preprocessing steps walk: `<root>/<person>/<video>/`."""

from __future__ import annotations

from pathlib import Path

from common.errors import InputError


def list_videos(root: Path) -> list[str]:
    """`<person>/<video>` names of the folders two levels below `root`, sorted."""
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    videos = sorted(f"{p.name}/{v.name}" for p in root.iterdir() if p.is_dir() for v in p.iterdir() if v.is_dir())
    if not videos:
        raise InputError(f"{root}: no <person>/<video> folders")
    return videos
