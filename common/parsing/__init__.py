"""Face parsing: the CelebAMask-HQ U-Net and BiSeNet, LSR's oracle maps, labels and palettes.

Importing this package does not import torch; the networks are built by `load_parser`.
Every label map is HxW uint8 in the CelebAMask-HQ order (`CELEBAMASK_LABELS`).
"""

from common.parsing.labels import (
    BISENET_LABELS,
    BISENET_TO_CELEBAMASK,
    CELEBAMASK_LABELS,
    CELEBAMASK_PALETTE,
    LSR_PALETTE,
    colorize,
    resize_labels,
)
from common.parsing.landmark_regions import labels_from_landmarks
from common.parsing.lsr_oracle import OracleSegmentation, lsr_merge, lsr_oracle_segmentation
from common.parsing.parser import MODELS, FaceParser, load_parser

__all__ = [
    "BISENET_LABELS",
    "BISENET_TO_CELEBAMASK",
    "CELEBAMASK_LABELS",
    "CELEBAMASK_PALETTE",
    "LSR_PALETTE",
    "MODELS",
    "FaceParser",
    "OracleSegmentation",
    "colorize",
    "labels_from_landmarks",
    "load_parser",
    "lsr_merge",
    "lsr_oracle_segmentation",
    "resize_labels",
]
