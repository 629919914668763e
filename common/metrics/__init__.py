"""Evaluation metrics for reenacted frames, one module per family.

Images are HxWx3 uint8 RGB arrays of equal size; landmarks are (68, 2) iBUG-300W points.

* `pixel`: L1, PSNR, SSIM, MS-SSIM (NumPy + scikit-image).
* `lpips`: LPIPS v0.1, VGG16 variant (imports torch; local weight files only).
* `keypoints`: dlib 68-point landmarks and the average keypoint distance (AKD).
* `identity`: dlib's 128-D face descriptor, its Euclidean distance (AED) and cosine similarity (CSIM).
* `pose`: head pose from landmarks (OpenCV solvePnP), pose and expression errors.
* `fid`: Frechet distance and pytorch-fid's Inception-v3 features (imports torch; local weight file only).

Functions that need a face return None (detections) or NaN (scores) when there is none, so a report can
average over the frames where a metric is defined.
"""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_ENV = "FR_METRICS_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path("checkpoints") / "metrics"


def weights_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where the metrics' weight files are looked up: `directory`, else $FR_METRICS_WEIGHTS, else
    checkpoints/metrics/ (relative to the working directory, the repository root for `make` targets)."""
    return Path(directory or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_DIR)
