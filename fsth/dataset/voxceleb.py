"""Episodes of the meta-training set, as the original `dataset/voxceleb.py` draws them.

A video is a folder `<root>/<person>/<video>`; videos are sorted and their index is the row of
D's per-video embedding. Two layouts are read:
- the original's: frames plus `metadata.pkl`, a pickled list of (frame file name, 68x2 landmarks
  in the coordinates of the frame resized to 256 x 256);
- frame folders: images plus per-frame `.npy` landmarks in the frame's own pixels, beside each
  frame or in a `landmarks/` sub-folder (what `python -m tools.extract_landmarks` writes).
Frames without landmarks are skipped, as the original's preprocessing skipped faceless frames.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from common.drawing import draw_landmarks
from common.errors import InputError
from common.image import image_to_tensor, list_images, read_image
from common.landmarks import load_landmarks

METADATA = "metadata.pkl"
METADATA_FRAME_SIZE = 256  # the original detected landmarks on frames resized to this


def find_landmarks(image_path: str | os.PathLike) -> Path | None:
    """The .npy landmarks of an image: `<stem>.npy` beside it, in a `landmarks/` sub-folder, or in
    `../landmarks/<folder>/` (the layout of tools.make_sample_data); None if there is none."""
    path = Path(image_path)
    for candidate in (
        path.with_suffix(".npy"),
        path.parent / "landmarks" / f"{path.stem}.npy",
        path.parent.parent / "landmarks" / path.parent.name / f"{path.stem}.npy",
    ):
        if candidate.is_file():
            return candidate
    return None


def landmark_image(landmarks: np.ndarray, size: int, normalize: bool = True) -> torch.Tensor:
    """(68, 2) landmarks in `size`-pixel coordinates -> the original's landmark image tensor."""
    return image_to_tensor(draw_landmarks(landmarks, size, "fsth"), (0.0, 1.0) if normalize else (0.0, 255.0))


class VoxCeleb(Dataset):
    """Item `i` (or `(i, seed)`, see EpisodeSampler): (i, x, y, x_t, y_t) with `return_count`
    frames of video i; frame 0 is the target (x_t, y_t), the others (return_count-1, 3, H, W)
    feed the embedder. With random_flip every frame is mirrored independently with p = 0.5."""

    def __init__(
        self,
        root_dir: str | os.PathLike,
        image_size: int,
        return_count: int,
        normalize: bool = True,
        random_flip: bool = False,
    ):
        self.root_dir = Path(root_dir)
        if not self.root_dir.is_dir():
            raise InputError(f"{root_dir}: training dataset folder not found")
        self.image_size, self.return_count = image_size, return_count
        self.normalize, self.random_flip = normalize, random_flip
        self.videos = sorted(
            f"{p.name}/{v.name}" for p in self.root_dir.iterdir() if p.is_dir() for v in p.iterdir() if v.is_dir()
        )
        if not self.videos:
            raise InputError(f"{root_dir}: no <person>/<video> folders")
        # Frame folders are indexed now (cheap: names only); metadata.pkl is read per item.
        self._frames = {v: self._list_frames(v) for v in self.videos if not (self.root_dir / v / METADATA).is_file()}

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def video_count(self) -> int:
        return len(self.videos)

    def _list_frames(self, video: str) -> list[tuple[Path, Path]]:
        frames = [(f, lm) for f in list_images(self.root_dir / video) if (lm := find_landmarks(f))]
        if not frames:
            raise InputError(f"{self.root_dir / video}: no {METADATA} and no frames with .npy landmarks")
        return frames

    def _read_metadata(self, video: str) -> list[tuple[Path, np.ndarray, float]]:
        path = self.root_dir / video / METADATA
        try:
            with open(path, "rb") as f:
                entries = pickle.load(f)  # holds numpy arrays: the original's format is a pickle
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise InputError(f"{path}: not a readable metadata.pkl ({exc.__class__.__name__})") from None
        if not entries:
            raise InputError(f"{path}: lists no frames")
        return [
            (self.root_dir / video / name, np.asarray(lm, dtype=np.float64), METADATA_FRAME_SIZE)
            for name, lm in entries
        ]

    def _frame_list(self, video: str) -> list[tuple[Path, np.ndarray | Path, float | None]]:
        if video in self._frames:
            return [(f, lm, None) for f, lm in self._frames[video]]
        return self._read_metadata(video)

    def _sample(self, count: int, rng: random.Random) -> list[int]:
        # Whole passes over a short video first, then a random subset for the remainder.
        remains, picked = self.return_count, []
        while remains > count:
            picked.extend(range(count))
            remains -= count
        return picked + rng.sample(range(count), remains)

    def _load(self, frame: Path, landmarks, landmark_frame_size, rng: random.Random):
        if landmark_frame_size is None:  # .npy landmarks are in the frame's own pixels
            with Image.open(frame) as img:
                width, height = img.size
            landmarks = load_landmarks(landmarks).astype(np.float64)
        else:
            width = height = landmark_frame_size
        size = self.image_size
        landmarks = landmarks * np.array([size / width, size / height])
        image = read_image(frame, size)
        if self.random_flip and rng.random() > 0.5:
            image = image[:, ::-1]
            landmarks[:, 0] = size - 1 - landmarks[:, 0]
        value_range = (0.0, 1.0) if self.normalize else (0.0, 255.0)
        return image_to_tensor(image, value_range), landmark_image(landmarks, size, self.normalize)

    def __getitem__(self, key):
        item, seed = key if isinstance(key, tuple) else (key, None)
        rng = random.Random(seed) if seed is not None else random  # plain index: the global stream, as the original
        frames = self._frame_list(self.videos[item])
        pairs = [self._load(*frames[i], rng) for i in self._sample(len(frames), rng)]
        x, y = (torch.stack(t) for t in zip(*pairs))
        return item, x[1:], y[1:], x[0], y[0]


class EpisodeSampler(Sampler):
    """Yields (video index, episode seed) for one epoch: a permutation fixed by (seed, epoch),
    padded to a multiple of `world_size` and sharded by `rank` like DistributedSampler; `start`
    skips this rank's first items (resuming mid-epoch). The episode seed fixes the frames drawn
    and the flips, so a resumed or multi-worker run sees the same episodes."""

    def __init__(
        self,
        count: int,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ):
        if shuffle:
            order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        else:
            order = list(range(count))
        order += order[: (-len(order)) % world_size]
        positions = range(rank, len(order), world_size)
        self.items = [
            (order[p], int(np.random.SeedSequence([seed, epoch, p]).generate_state(1)[0])) for p in positions
        ][start:]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
