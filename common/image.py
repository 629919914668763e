"""Image files and array conversions shared by every package.

Images are HxWx3 uint8 RGB NumPy arrays at the boundaries; methods convert to their own
tensor ranges with the helpers here, so the [0,1] / [-1,1] conventions live in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (grey and RGBA are converted).

    `size` (square int or (width, height)) resizes with Lanczos, as the methods' loaders do.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None:
                wh = (size, size) if isinstance(size, int) else tuple(size)
                img = img.resize(wh, Image.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an HxW or HxWx3 uint8 image; the suffix picks the format. Written atomically."""
    from PIL import Image

    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{path}: expected a uint8 image, got {image.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder in sorted name order (the frame order of a frame folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def to_float(image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """uint8 [0,255] -> float32 in `value_range` ((0,1) or (-1,1) in practice)."""
    lo, hi = value_range
    return (np.asarray(image, dtype=np.float32) / 255.0) * (hi - lo) + lo


def to_uint8(image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """float in `value_range` -> uint8 [0,255], clipped and rounded."""
    lo, hi = value_range
    scaled = (np.asarray(image, dtype=np.float32) - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def image_to_tensor(image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)):
    """HxWx3 uint8 (or NxHxWx3) -> float32 torch tensor 3xHxW (or Nx3xHxW)."""
    import torch

    arr = to_float(image, value_range)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, -3)))


def tensor_to_image(tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """3xHxW (or Nx3xHxW) torch tensor -> HxWx3 (or NxHxWx3) uint8."""
    arr = tensor.detach().float().cpu().numpy()
    return to_uint8(np.moveaxis(arr, -3, -1), value_range)
