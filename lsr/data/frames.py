"""Processed-subject folders (`<person>/<video>/<part>/NNNNN_{rgb,contour,segmap_merged}.png`)
and the example dictionary keys every LSR data provider emits."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.image import read_image

# Example keys (the names are the original's, so examples and summaries match it).
# Where the example comes from: three strings.
PERSON_ID_KEY, VIDEO_ID_KEY, VIDEO_PART_ID_KEY = "person_id", "video_id", "video_part_id"
# Per modality, the K few-shot inputs ([K, H, W, C] per example) and the target ([H, W, C]).
FRAMES_KEY, TARGET_FRAME_KEY = "frames_in", "frame_gt"
CONTOURS_KEY, TARGET_CONTOUR_KEY = "contours_in", "contour_gt"
SEGMAPS_KEY, TARGET_SEGMAP_KEY = "segmaps_in", "segmap_gt"

# The PNG providers match loosely; the tfrecord exporter matches '*_<kind>.png' exactly.
FRAME_GLOBS = ("*_rgb*", "*_contour*", "*_segmap_merged*")
FRAME_SIZE = (224, 224)


def subject_ids(part_dir) -> tuple[str, str, str]:
    """(person_id, video_id, video_part_id): the folder's last three path components."""
    parts = Path(part_dir).parts
    if len(parts) < 3:
        raise InputError(f"{part_dir}: expected a <person>/<video>/<part> folder")
    return parts[-3], parts[-2], parts[-1]


def list_frames(part_dir, use_segmaps=True, globs=FRAME_GLOBS) -> list[list[str]]:
    """Sorted [rgbs, contours(, segmaps)] file lists of one folder, equally long, paired by
    position."""
    if not os.path.isdir(part_dir):
        raise InputError(f"{part_dir}: subject folder not found")
    kinds = globs if use_segmaps else globs[:2]
    lists = [sorted(glob.glob(os.path.join(glob.escape(str(part_dir)), g))) for g in kinds]
    if not lists[0]:
        raise InputError(f"{part_dir}: no {kinds[0]} frames")
    for pattern, files in zip(kinds[1:], lists[1:]):
        if len(files) != len(lists[0]):
            raise InputError(f"{part_dir}: {len(lists[0])} {kinds[0]} frames but {len(files)} {pattern} files")
    return lists


def check_frame_size(files, size=FRAME_SIZE) -> None:
    """Check the first file of each kind of a `list_frames` result against `size` (H, W),
    reading headers only, so that a wrong resolution fails before the pipeline runs."""
    from PIL import Image

    for path in (kind[0] for kind in files):
        with Image.open(path) as img:
            _check_size(path, np.empty((img.height, img.width)), size)


def read_rgb(path, size=FRAME_SIZE) -> np.ndarray:
    """An RGB frame or landmark drawing as HxWx3 uint8, checked against `size` (H, W)."""
    image = read_image(path)
    _check_size(path, image, size)
    return image


def read_label_map(path, size=FRAME_SIZE) -> np.ndarray:
    """A merged segmentation map as HxW uint8 labels, exactly as stored (8-bit grayscale)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            labels = np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise InputError(f"{path}: expected an 8-bit grayscale label map, got {labels.dtype} {labels.shape}")
    _check_size(path, labels, size)
    return labels


def _check_size(path, image, size):
    if size is not None and image.shape[:2] != tuple(size):
        raise InputError(f"{path}: frame is {image.shape[1]}x{image.shape[0]}, expected {size[1]}x{size[0]}")


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1] with the original's x·2/255 − 1."""
    return images.astype(np.float32) * 2.0 / 255.0 - 1.0
