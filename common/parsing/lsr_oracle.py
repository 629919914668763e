"""LSR's oracle segmentation: the CelebAMask-HQ U-Net at 256 and at 512, merged per class.

The 512 run resolves the small face parts better, the 256 run hair, neck and cloth; LSR
(`preprocessing/segmentation/release_merge.py`) combines them on a 256 grid and stores the
result at 224x224 as `NNNNN_segmap_merged.png`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.parsing.labels import CELEBAMASK_LABELS, resize_labels

_INDEX = {name: i for i, name in enumerate(CELEBAMASK_LABELS)}
HAIR = _INDEX["hair"]
FROM_256_LAST = (_INDEX["neck"], _INDEX["cloth"])
# LSR's `take_big`: the labels the 512 run decides.
FROM_512 = tuple(
    _INDEX[name]
    for name in (
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
        "hat",
        "ear_r",
        "neck_l",
    )
)


def lsr_merge(segmap_256: np.ndarray, segmap_512: np.ndarray, size: int = 224) -> np.ndarray:
    """Merge the two plain label maps exactly as LSR does; returns a size x size uint8 map.

    On the grid of `segmap_256` (the 512 map resized nearest): start from background, take
    hair from the 256 map, then every FROM_512 label of the 512 map, then neck and cloth of
    the 256 map; finally resize nearest to `size`.
    """
    small = np.asarray(segmap_256, dtype=np.uint8)
    big = resize_labels(segmap_512, small.shape)
    merged = np.where(small == HAIR, small, 0).astype(np.uint8)
    merged = np.where(np.isin(big, FROM_512), big, merged)
    merged = np.where(np.isin(small, FROM_256_LAST), small, merged)
    return resize_labels(merged, (size, size))


@dataclass(frozen=True)
class OracleSegmentation:
    """size x size uint8 maps: LSR's `_segmap_merged`, `_segmap_256` and `_segmap_512`."""

    merged: np.ndarray
    segmap_256: np.ndarray
    segmap_512: np.ndarray


def lsr_oracle_segmentation(parser, image: np.ndarray, size: int = 224) -> OracleSegmentation:
    """Run `parser` (a `FaceParser`, the CelebAMask-HQ U-Net in LSR) at 256 and 512 on one
    HxWx3 uint8 frame (224x224 in LSR) and merge the two maps."""
    plain_256 = parser.parse(image, imsize=256, at_input_size=False)
    plain_512 = parser.parse(image, imsize=512, at_input_size=False)
    return OracleSegmentation(
        merged=lsr_merge(plain_256, plain_512, size),
        segmap_256=resize_labels(plain_256, (size, size)),
        segmap_512=resize_labels(plain_512, (size, size)),
    )
