"""VPGC's per-subject dataset layout and the two training datasets built on it.

Layout (what the original's loaders read, see the README and Figures/dataset.png)::

    <root>/images/{train,test}/00000.jpg ...   RGB crops (512x512 for the official models; .png also read)
    <root>/ldmks/{train,test}/00000.txt ...    68 rows "x y": iBUG-68 landmarks in pixels of the crop
    <root>/heatmap/test/*.jpg                  (demo data only) pre-drawn grayscale landmark maps

Images and landmark files are paired by sorted order, as the original pairs them. Names are
checked too where both sides are numbered (`00007.jpg` with `00007.txt`).

Frames are processed in groups of 4 consecutive ones (the original's `batch_internal`, hard-wired
in its quantiser and transformer). Each frame's driving input is the 7 landmark maps of frames
t-3..t+3 (`window`), clamped at the ends of the sequence. The original drops the trailing
`N % 4` frames; `keep_partial=True` keeps them as a last group padded by repeating the final
frame (`groups` gives each group's (start, count) so the caller trims the padding).

`resolution` (quick fits at a reduced size) resizes images with Lanczos and draws the maps
directly at that size from landmarks scaled into the smaller canvas (pixel centres map to pixel
centres: p' = (p + 0.5) * resolution / side - 0.5).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from common.drawing import draw_landmarks
from common.errors import InputError
from common.image import read_image

GROUP = 4  # frames per sample (the original's batch_internal)
WINDOW = 3  # frames each side of t in a driving window (7 maps)
TEST_LIMIT = 1000  # the original reads only the first 1000 files of a test split
STYLES = ("vpgc68", "vpgc86")
IMAGE_PATTERNS = ("*.jpg", "*.png")  # the stage-1 loader's order: all .jpg files, then all .png files


def _split_folder(root: str | os.PathLike, kind: str, split: str) -> Path:
    folder = Path(root) / kind / split
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (expected the layout <root>/{kind}/{split}/)")
    return folder


def _capped(paths: list[Path], limit: int | None) -> list[Path]:
    return paths if limit is None else paths[:limit]


def list_frames(root: str | os.PathLike, split: str, limit: int | None = None) -> list[Path]:
    """`<root>/images/<split>` images: sorted .jpg files then sorted .png files, at most `limit`."""
    folder = _split_folder(root, "images", split)
    frames = [path for pattern in IMAGE_PATTERNS for path in sorted(folder.glob(pattern))]
    if not frames:
        raise InputError(f"{folder}: holds no .jpg or .png images")
    return _capped(frames, limit)


def list_landmarks(root: str | os.PathLike, split: str, limit: int | None = None) -> list[Path]:
    """`<root>/ldmks/<split>/*.txt` in sorted order, at most `limit`."""
    folder = _split_folder(root, "ldmks", split)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(f"{folder}: holds no .txt landmark files")
    return _capped(files, limit)


def list_pairs(root: str | os.PathLike, split: str, limit: int | None = None) -> list[tuple[Path, Path]]:
    """(image, landmark file) per frame, paired by sorted order; counts must agree, and numbered
    names must match (`00007.jpg` with `00007.txt`)."""
    frames, landmarks = list_frames(root, split, limit), list_landmarks(root, split, limit)
    if len(frames) != len(landmarks):
        raise InputError(
            f"{frames[0].parent} holds {len(frames)} images but {landmarks[0].parent} holds "
            f"{len(landmarks)} landmark files; they must pair one to one"
        )
    if all(path.stem.isdigit() for path in frames + landmarks):
        for frame, landmark in zip(frames, landmarks):
            if int(frame.stem) != int(landmark.stem):
                raise InputError(
                    f"{frame} is unpaired: the landmark file in its place (sorted order) is {landmark.name}"
                )
    return list(zip(frames, landmarks))


def image_side(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def read_image_pm1(path: str | os.PathLike, resolution: int | None = None) -> torch.Tensor:
    """An RGB image as float32 [3, H, W] in [-1, 1]: (x / 255 - 0.5) / 0.5 in float32, as the
    original's albumentations ToTensor(normalize mean 0.5, std 0.5). `resolution` resizes (Lanczos)."""
    image = read_image(path, resolution).astype(np.float32)
    scaled = (image / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def read_landmarks(path: str | os.PathLike) -> np.ndarray:
    """A landmark `.txt` (68 rows "x y", np.loadtxt) as float64 [68, 2]."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: landmark file not found")
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: not a landmark text file ({' '.join(str(exc).split())})") from None
    if points.shape != (68, 2):
        raise InputError(f"{path}: expected 68 rows 'x y', got an array of shape {points.shape}")
    if not np.isfinite(points).all():
        raise InputError(f"{path}: landmarks hold NaN or infinite values")
    return points


def rescale_points(points: np.ndarray, source: tuple[int, int], resolution: int) -> np.ndarray:
    """Landmarks of a (height, width) image moved into a resolution x resolution one (pixel
    centres onto pixel centres)."""
    height, width = source
    factor = np.array([resolution / width, resolution / height])
    return (np.asarray(points, dtype=np.float64) + 0.5) * factor - 0.5


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise InputError(f"unknown VPGC landmark style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def landmark_map(points: np.ndarray, size: int | tuple[int, int] = 512, style: str = "vpgc68") -> np.ndarray:
    """The original's landmark drawing, uint8 [size, size] (or (height, width)) of 0/255: `vpgc68`
    (`draw_heatmap_from_68_landmark`, 68 points) or `vpgc86` (`draw_heatmap_from_86_landmark`)."""
    return draw_landmarks(points, size, _check_style(style))


def window(t: int, n: int) -> list[int]:
    """Frame indices of the 7 driving maps of frame t in a sequence of n: t-3..t+3 clamped to
    [0, n-1] (t=0 -> 0,0,0,0,1,2,3; t=n-1 -> n-4,n-3,n-2,n-1,n-1,n-1,n-1).

    The original's branches give the same for every n that is a multiple of 4 and >= 8; with
    exactly 4 frames its t=1 and t=2 branches read frames 4 and 5 (past the 4 it uses, or an
    IndexError); here they clamp.
    """
    if not 0 <= t < n:
        raise IndexError(f"frame {t} outside a sequence of {n}")
    return [min(max(t + offset, 0), n - 1) for offset in range(-WINDOW, WINDOW + 1)]


def window_indices(n: int) -> np.ndarray:
    """int64 [n, 7]: `window(t, n)` for every t."""
    return np.clip(np.arange(n)[:, None] + np.arange(-WINDOW, WINDOW + 1), 0, n - 1).astype(np.int64)


def window_maps(maps):
    """[N, H, W] landmark maps (NumPy or torch) -> [N, 7, H, W]: each frame's window t-3..t+3."""
    indices = window_indices(len(maps))
    return maps[torch.from_numpy(indices)] if isinstance(maps, torch.Tensor) else maps[indices]


def groups(n: int, size: int = GROUP) -> list[tuple[int, int]]:
    """(start, count) of consecutive groups of `size` frames covering n frames; the last one may
    be partial (count < size)."""
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 and size >= 1, got {n} and {size}")
    return [(start, min(size, n - start)) for start in range(0, n, size)]


def group_frames(start: int, count: int, size: int = GROUP) -> list[int]:
    """Frame indices of one group, padded to `size` by repeating its last frame."""
    return [start + min(i, count - 1) for i in range(size)]


def _usable_groups(n: int, size: int, keep_partial: bool, where: str) -> tuple[list[tuple[int, int]], int]:
    """The groups a dataset serves and the sequence length its windows clamp to."""
    used = n if keep_partial else n - n % size
    if used == 0:
        raise InputError(f"{where}: {n} frames, fewer than one group of {size}")
    return groups(used, size), used


def read_heatmaps(folder: str | os.PathLike, limit: int | None = None, resolution: int | None = None) -> np.ndarray:
    """Pre-drawn landmark maps (grayscale JPEG/PNG, e.g. the demo's heatmap/test) in sorted name
    order as uint8 [N, H, W]; colour files are converted to grey. `resolution` resizes (Lanczos)."""
    from PIL import Image, UnidentifiedImageError

    from common.image import list_images

    files = _capped(list_images(folder), limit)
    if not files:
        raise InputError(f"{folder}: holds no landmark map images")
    maps = []
    for path in files:
        try:
            with Image.open(path) as image:
                grey = image.convert("L")
                if resolution is not None:
                    grey = grey.resize((resolution, resolution), Image.LANCZOS)
                maps.append(np.asarray(grey, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if len({m.shape for m in maps}) > 1:
        raise InputError(f"{folder}: landmark maps differ in size")
    return np.stack(maps)


def draw_split(
    root: str | os.PathLike,
    split: str = "test",
    style: str = "vpgc68",
    resolution: int | None = None,
    limit: int | None = TEST_LIMIT,
) -> np.ndarray:
    """Driving maps uint8 [N, H, W] of a split: drawn from `ldmks/<split>` when it exists, else read
    from the pre-drawn `heatmap/<split>` (the demo data). Without `resolution` the canvas is the
    size of the split's images (512 when there are none)."""
    root = Path(root)
    if not (root / "ldmks" / split).is_dir():
        heatmaps = root / "heatmap" / split
        if not heatmaps.is_dir():
            raise InputError(f"{root}: neither ldmks/{split}/ nor heatmap/{split}/ found")
        return read_heatmaps(heatmaps, limit, resolution)
    files = list_landmarks(root, split, limit)
    has_images = (root / "images" / split).is_dir()
    source = image_side(list_frames(root, split, 1)[0]) if has_images else (512, 512)
    canvas = source if resolution is None else resolution
    maps = []
    for path in files:
        points = read_landmarks(path)
        if resolution is not None:
            points = rescale_points(points, source, resolution)
        maps.append(landmark_map(points, canvas, style))
    return np.stack(maps)


class FrameGroups(torch.utils.data.Dataset):
    """Stage-1 samples: item i = frames 4i..4i+3 of `images/<split>` as float32 [4, 3, H, W] in
    [-1, 1] (the original's ObamaDataset; no augmentation). `limit` caps the file list (the
    original caps test splits at 1000); `keep_partial` keeps the trailing frames as a padded group."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: int = GROUP,
        limit: int | None = None,
        resolution: int | None = None,
        keep_partial: bool = False,
    ):
        self.frames = list_frames(root, split, limit)
        self.size, self.resolution = size, resolution
        self.groups, _ = _usable_groups(len(self.frames), size, keep_partial, str(self.frames[0].parent))

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = group_frames(*self.groups[index], self.size)
        return torch.stack([read_image_pm1(self.frames[i], self.resolution) for i in frames])


class LandmarkGroups(torch.utils.data.Dataset):
    """Stage-2 samples: item i -> (maps float32 [4, 7, H, W] in [0, 1], images float32 [4, 3, H, W]
    in [-1, 1]) for frames 4i..4i+3 (the original's GridDataset on `.txt` landmarks).

    Windows clamp at the ends of the frames used (the multiple of 4 the original keeps, or all of
    them with `keep_partial`). The original's random scale for training is drawn but never applied
    to `.txt` landmarks, so there is no augmentation here either.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: int = GROUP,
        style: str = "vpgc68",
        limit: int | None = None,
        resolution: int | None = None,
        keep_partial: bool = False,
    ):
        self.style = _check_style(style)
        self.pairs = list_pairs(root, split, limit)
        self.size, self.resolution = size, resolution
        self.groups, self.used = _usable_groups(len(self.pairs), size, keep_partial, str(self.pairs[0][0].parent))

    def __len__(self) -> int:
        return len(self.groups)

    def map_of(self, index: int) -> np.ndarray:
        """uint8 [H, W] landmark map of frame `index`."""
        image, landmarks = self.pairs[index]
        points = read_landmarks(landmarks)
        if self.resolution is None:
            return landmark_map(points, image_side(image), self.style)
        points = rescale_points(points, image_side(image), self.resolution)
        return landmark_map(points, self.resolution, self.style)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames = group_frames(*self.groups[index], self.size)
        windows = [window(t, self.used) for t in frames]
        drawn = {i: self.map_of(i) for i in sorted({i for w in windows for i in w})}
        maps = np.stack([[drawn[i] for i in w] for w in windows]).astype(np.float32) / np.float32(255)
        images = torch.stack([read_image_pm1(self.pairs[t][0], self.resolution) for t in frames])
        return torch.from_numpy(maps), images
