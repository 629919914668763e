"""Face label maps drawn from 68-point landmarks: a parsing map when no network weights exist.

Polygons through the iBUG-68 points give skin, brows, eyes, nose, lips and inner mouth in the
CelebAMask-HQ label order. It is coarse (no hair, ears, neck or cloth) and is used for the
sample data and tests; real parsing comes from the networks in this package. Left/right follow
the subject (anatomical): the subject's left eye is iBUG 42-47, on the image's right.
"""

from __future__ import annotations

import numpy as np

from common.parsing.labels import CELEBAMASK_LABELS

_L = {name: i for i, name in enumerate(CELEBAMASK_LABELS)}


def _brow(points: np.ndarray, thickness: float) -> np.ndarray:
    return np.concatenate([points, points[::-1] + [0, thickness]])


def region_polygons(lm: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, polygon) pairs in drawing order; later regions overwrite earlier ones."""
    lm = np.asarray(lm, dtype=np.float64)
    brows = lm[17:27]
    face_height = np.linalg.norm(lm[8] - brows.mean(0))
    forehead = brows[::-1] - [0, 0.35 * face_height]
    thick = 0.05 * face_height
    return [
        (_L["skin"], np.concatenate([lm[0:17], forehead])),
        (_L["nose"], lm[[27, 31, 32, 33, 34, 35]]),
        (_L["r_brow"], _brow(lm[17:22], thick)),
        (_L["l_brow"], _brow(lm[22:27], thick)),
        (_L["r_eye"], lm[36:42]),
        (_L["l_eye"], lm[42:48]),
        (_L["u_lip"], np.concatenate([lm[48:55], lm[64:59:-1]])),
        (_L["l_lip"], np.concatenate([lm[54:60], lm[48:49], lm[60:61], lm[67:63:-1]])),
        (_L["mouth"], lm[60:68]),
    ]


def labels_from_landmarks(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW uint8 CelebAMask-HQ label map for one face; `size` is (height, width)."""
    from PIL import Image, ImageDraw

    height, width = size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for label, polygon in region_polygons(landmarks):
        draw.polygon([tuple(p) for p in polygon], fill=int(label))
    return np.asarray(canvas, dtype=np.uint8).copy()
