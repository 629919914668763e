"""Face-parsing label orders, palettes, colour previews and nearest-neighbour label resizing.

Every map this package returns is in the CelebAMask-HQ order, which is also LSR's; BiSeNet's
own order is converted with `BISENET_TO_CELEBAMASK`.
"""

from __future__ import annotations

import numpy as np

from common.errors import InputError

CELEBAMASK_LABELS = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
BISENET_LABELS = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)
# BISENET_TO_CELEBAMASK[bisenet_label] -> CelebAMask-HQ label.
BISENET_TO_CELEBAMASK = np.array([0, 1, 6, 7, 4, 5, 3, 8, 9, 15, 2, 10, 11, 12, 17, 16, 18, 13, 14], dtype=np.uint8)

# CelebAMask-HQ `labelcolormap(19)`.
CELEBAMASK_PALETTE = np.array(
    [
        (0, 0, 0),
        (204, 0, 0),
        (76, 153, 0),
        (204, 204, 0),
        (51, 51, 255),
        (204, 0, 204),
        (0, 255, 255),
        (51, 255, 255),
        (102, 51, 0),
        (255, 0, 0),
        (102, 204, 0),
        (255, 255, 0),
        (0, 0, 153),
        (0, 0, 204),
        (255, 51, 153),
        (0, 204, 204),
        (0, 51, 0),
        (255, 153, 51),
        (0, 204, 0),
    ],
    dtype=np.uint8,
)
# LSR's `visualize_label_map` differs in one entry: r_brow (7) is pink.
LSR_PALETTE = CELEBAMASK_PALETTE.copy()
LSR_PALETTE[7] = (255, 204, 204)

PALETTES = {"celebamask": CELEBAMASK_PALETTE, "lsr": LSR_PALETTE}


def colorize(labels: np.ndarray, palette: str = "celebamask") -> np.ndarray:
    """HxW label map (CelebAMask-HQ order) -> HxWx3 uint8 colour preview."""
    if palette not in PALETTES:
        raise InputError(f"unknown palette '{palette}'; choose one of {sorted(PALETTES)}")
    labels = np.asarray(labels)
    colours = PALETTES[palette]
    if labels.size and (labels.min() < 0 or labels.max() >= len(colours)):
        raise InputError(
            f"label map holds values outside 0-{len(colours) - 1} (min {labels.min()}, max {labels.max()})"
        )
    return colours[labels.astype(np.intp)]


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to `size` = (height, width).

    OpenCV's INTER_NEAREST (source index floor(i * src / dst)) is what LSR's merge script
    uses, so the oracle maps pick exactly the same pixels.
    """
    import cv2

    labels = np.asarray(labels, dtype=np.uint8)
    height, width = size
    if labels.shape == (height, width):
        return labels.copy()
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
