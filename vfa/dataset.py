"""VFA's training data: preprocessed MMFace4D videos and the optional Azure Kinect captures.

Layout under the data root (the original's `./datasets`):

    MMFace4D/<person>/color/<video>.mp4 + depth/<video>.nut     training persons
    MMFace4D_test/<person>/color/... + depth/...                test persons
    kinect_data/color/<i>.png + depth/<i>.png, static.png       optional (the original needs it)

Every video is 256x256 (`python -m vfa.preprocess` writes them): colour H.264, depth 16-bit FFV1
with 0 = background. Per person the first 80 % of the videos are the train split, the rest the
test split. One sample per video: source = frame 0, driving = a random frame. The Kinect folder
adds, for training, source = static.png and driving = every 4th frame of the first 80 % ('raw'
trains on the Kinect folder alone: every frame of the last 20 %).

Deviations: listings are sorted (the original used `os.listdir` order, which depends on the file
system) and only `*.mp4` files count as videos; the driving frame is drawn from a generator seeded
by (seed, draw) so that the data are reproducible and a resume continues them; only frame 0 and the
driving frame are decoded (the original decodes every video twice per sample).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch

from common.errors import InputError
from common.video import iter_frames, video_info

SIZE = 256
TRAIN_FRACTION = (8, 10)  # the first n * 8 // 10 videos (or frames) of each folder train
KINECT_STRIDE = 4  # training takes every 4th Kinect frame
SPLITS = ("train", "test", "raw")


def color_norm(color: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """Training normalisation -> HxWx4 float32 (HxWx3 without depth).

    With depth (HxW, 0 = background): colour (RGB, 0-255) standardised per image and channel over
    the foreground, (c − mean) / (2·std), clipped to [−1, 1], background −1; depth / its maximum,
    then ·2 − 1 (background −1). Without depth: colour / 255 · 2 − 1. A frame without foreground
    gives −1 everywhere and a channel that is constant over the foreground gives 0 there (the
    original's NaNs would poison training).
    """
    color = np.array(color, dtype=np.float32)
    if depth is None:
        return color / 255.0 * 2.0 - 1.0
    depth = np.asarray(depth)
    content = depth > 0
    if not content.any():
        return np.full((*depth.shape, 4), -1.0, dtype=np.float32)
    pixels = color[content]
    mean, std = np.mean(pixels, axis=0), np.std(pixels, axis=0)
    std = np.where(std > 0, std, np.inf).astype(np.float32)  # a constant channel gives 0, not NaN
    color[content] = np.clip((pixels - mean) / (std * 2), -1.0, 1.0)
    color[~content] = -1.0
    depth = np.array(depth, dtype=np.float32) / np.max(depth) * 2.0 - 1.0
    return np.concatenate([color, depth[:, :, None]], axis=2)


def _to_tensor(color: np.ndarray, depth: np.ndarray | None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(color_norm(color, depth).transpose(2, 0, 1)))


def _check_size(frame: np.ndarray, path: Path, size: int) -> np.ndarray:
    if frame.shape[:2] != (size, size):
        raise InputError(
            f"{path}: frames are {frame.shape[1]}x{frame.shape[0]}, this training needs {size}x{size} "
            "(python -m vfa.preprocess writes 256x256)"
        )
    return frame


def train_count(total: int) -> int:
    """How many of a folder's `total` items are in the train split (the first 80 %)."""
    return total * TRAIN_FRACTION[0] // TRAIN_FRACTION[1]


class PersonVideos:
    """One person's folder: `color/<video>.mp4` with `depth/<video>.nut`, split 80/20 in sorted order."""

    def __init__(self, folder: Path, train: bool, in_channels: int = 4, size: int = SIZE):
        self.folder, self.in_channels, self.size = folder, in_channels, size
        videos = sorted(p.name for p in (folder / "color").glob("*.mp4"))
        cut = train_count(len(videos))
        self.videos = videos[:cut] if train else videos[cut:]
        self._frame_counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def frame_count(self, name: str) -> int:
        """Frames of the colour video (stored in the mp4, else counted once)."""
        if name not in self._frame_counts:
            path = self.folder / "color" / name
            frames = video_info(path).frames
            self._frame_counts[name] = frames or sum(1 for _ in iter_frames(path))
        return self._frame_counts[name]

    def _frames(self, path: Path, indices: list[int], pix_fmt: str) -> list[np.ndarray]:
        wanted = set(indices)
        found = {}
        for i, frame in enumerate(itertools.islice(iter_frames(path, pix_fmt=pix_fmt), max(indices) + 1)):
            if i in wanted:
                found[i] = _check_size(frame, path, self.size)
        missing = sorted(wanted - set(found))
        if missing:
            raise InputError(f"{path}: has no frame {missing[0]} (the colour video has more frames)")
        return [found[i] for i in indices]

    def pair(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(frame 0, a random frame) of video `index`, normalised, [C, 256, 256] each."""
        name = self.videos[index]
        indices = [0, int(rng.integers(self.frame_count(name)))]
        colors = self._frames(self.folder / "color" / name, indices, "rgb24")
        if self.in_channels != 4:
            return tuple(_to_tensor(c, None) for c in colors)
        depth_path = self.folder / "depth" / (Path(name).stem + ".nut")
        info = video_info(depth_path)
        if info.pix_fmt not in ("gray16le", "gray16be"):
            raise InputError(f"{depth_path}: not a 16-bit depth video (pixel format {info.pix_fmt})")
        depths = self._frames(depth_path, indices, "gray16le")
        return tuple(_to_tensor(c, d) for c, d in zip(colors, depths))


class KinectFrames:
    """`kinect_data`: source `static.png`, driving `<i>.png` (colour 8-bit, depth 16-bit PNG).

    Of the n numbered frames (every `stride`-th counted), the first 80 % train and the rest test."""

    def __init__(self, folder: Path, train: bool, stride: int, in_channels: int = 4, size: int = SIZE):
        self.folder, self.stride, self.in_channels, self.size = folder, stride, in_channels, size
        total = (len(os.listdir(folder / "color")) - 1) // stride  # static.png is not a driving frame
        self.first = 0 if train else train_count(total)
        self.count = train_count(total) if train else total - train_count(total)
        self.source = self.read("static.png")

    def __len__(self) -> int:
        return self.count

    def read(self, name: str) -> torch.Tensor:
        import cv2

        color_path = self.folder / "color" / name
        color = cv2.imread(str(color_path), cv2.IMREAD_COLOR)
        if color is None:
            raise InputError(f"{color_path}: missing or not a readable image")
        color = _check_size(color[:, :, ::-1], color_path, self.size)
        if self.in_channels != 4:
            return _to_tensor(color, None)
        depth_path = self.folder / "depth" / name
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.ndim != 2:
            raise InputError(f"{depth_path}: missing or not a one-channel depth image")
        return _to_tensor(color, _check_size(depth, depth_path, self.size))

    def pair(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.source, self.read(f"{(self.first + index) * self.stride}.png")


class MMFace4D(torch.utils.data.Dataset):
    """The original's MMFace4D dataset over `root` (its `./datasets`): 'train' (Kinect folder if
    present, then every training person), 'test' (MMFace4D_test persons, last 20 % of their videos)
    or 'raw' (the Kinect folder's last 20 %). Frames must be `size`² (256, the original's only size).

    An item is (source, driving), [in_channels, 256, 256] float32 in [−1, 1]. A key is a sample
    number or (sample number, draw): the driving frame comes from numpy's generator seeded with
    (seed, draw); a plain number draws with itself.
    """

    def __init__(
        self, root: str | os.PathLike, split: str = "train", in_channels: int = 4, seed: int = 0, size: int = SIZE
    ):
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}: use {', '.join(SPLITS)}")
        root = Path(root)
        self.seed = seed
        self.parts: list[PersonVideos | KinectFrames] = []
        kinect = root / "kinect_data"
        if split == "raw" and not (kinect / "color").is_dir():
            raise InputError(f"{kinect}: the 'raw' split needs the Kinect folder (color/, depth/, static.png)")
        if split != "test" and (kinect / "color").is_dir():
            self.parts.append(
                KinectFrames(kinect, split == "train", KINECT_STRIDE if split == "train" else 1, in_channels, size)
            )
        if split != "raw":
            persons = root / ("MMFace4D_test" if split == "test" else "MMFace4D")
            if not persons.is_dir():
                raise InputError(f"{persons}: dataset folder not found (expected <person>/color/*.mp4 inside)")
            for person in sorted(p for p in persons.iterdir() if (p / "color").is_dir()):
                self.parts.append(PersonVideos(person, split == "train", in_channels, size))
        self.ends = np.cumsum([len(part) for part in self.parts]).tolist()
        if not self.ends or self.ends[-1] == 0:
            raise InputError(f"{root}: no {split} samples (need videos under MMFace4D*/<person>/color/)")

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        index, draw = key if isinstance(key, tuple) else (key, key)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        part = int(np.searchsorted(self.ends, index, side="right"))
        start = self.ends[part - 1] if part else 0
        return self.parts[part].pair(index - start, np.random.default_rng([self.seed, draw]))
