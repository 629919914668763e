"""FSRT animation as a library: frames in, reenacted frames out.

The sources are encoded once into the set-latent z; every driving frame then only costs its
keypoints, its expression vector and one decoder pass over the pixels, several frames at a time.
`python -m fsrt.demo` (the original's command) and `python -m fsrt.sample_demo` run on it, and
`fsrt.extract_keypoints` shares its frame preparation and hull measure.

`precision` ("fp32" by default, "bf16", "fp16" on a GPU; see `common.precision`) applies to the
encoder and the decoder, which hold nearly all the work; the keypoint detector and the expression
encoder stay float32, since their keypoints place every query pixel and cost little.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from common.errors import InputError
from common.image import IMAGE_SUFFIXES, read_image, to_uint8
from common.precision import autocast
from common.video import iter_frames

SIZE = 256  # the released models are trained at 256x256 only


# ------------------------------------------------------------------------------------ frames
def prepare(frame: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 HxWx3 -> float32 size x size x 3 (default SIZE) in [0, 1] by skimage's resize, as the
    original (no crop, aspect ratio not kept: faces must be cropped beforehand)."""
    from skimage.transform import resize

    size = size or SIZE
    return resize(frame, (size, size))[..., :3].astype(np.float32)


def to_tensor(frames: Iterable[np.ndarray]) -> torch.Tensor:
    """Prepared HxWx3 float frames -> [N, 3, H, W]."""
    return torch.from_numpy(np.stack(list(frames))).permute(0, 3, 1, 2).contiguous()


def read_sources(paths: list[str], source_idx: list[int] | None) -> np.ndarray:
    """[S, SIZE, SIZE, 3] prepared sources: each image is one source, a video gives its frames;
    `source_idx` picks among them (default: every image given, or frame 0 of a video)."""
    pool: list[np.ndarray] = []
    for path in paths:
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            pool.append(read_image(path))
        else:
            pool.extend(iter_frames(path))
    only_images = all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)
    indices = source_idx if source_idx is not None else (range(len(pool)) if only_images else [0])
    for index in indices:
        if not -len(pool) <= index < len(pool):
            raise InputError(f"{', '.join(paths)}: --source_idx {index} out of range ({len(pool)} frames)")
    return np.stack([prepare(pool[index]) for index in indices])


def batches(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------------------------ motion
def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of [N, 2] points; 0 where they span no area. Detectors may return
    coincident or collinear points, on which Qhull fails instead."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(points).volume)  # in 2-D the hull's "volume" is its area
    except QhullError:  # no 2-D simplex: all points coincide or lie on one line (to Qhull's precision)
        return 0.0


def transfer_motion(
    kp_driving: torch.Tensor,
    kp_source: torch.Tensor,
    kp_anchor: torch.Tensor,
    relative: bool = False,
    adapt_scale: bool = False,
) -> torch.Tensor:
    """Keypoints the decoder gets for driving keypoints [T, K, 2].

    Absolute: the driving keypoints. Relative: the first source's keypoints [K, 2] moved by the
    driving motion since the anchor frame's keypoints [K, 2], scaled with `adapt_scale` by the
    ratio of the keypoint hulls' sizes, sqrt(area(source) / area(anchor)).
    """
    if not relative:
        return kp_driving
    scale = 1.0
    if adapt_scale:
        source, anchor = hull_area(kp_source.cpu().numpy()), hull_area(kp_anchor.cpu().numpy())
        for area, which in ((source, "source image"), (anchor, "anchor driving frame")):
            if area == 0:
                raise InputError(
                    f"--adapt_scale: the keypoints of the {which} span no area (they coincide "
                    "or lie on a line); run without --adapt_scale"
                )
        scale = float(np.sqrt(source / anchor))
    return kp_source + (kp_driving - kp_anchor) * scale


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray | None:
    """68 landmarks centred and divided by sqrt(hull area): comparable across face sizes. None
    where the points span no area (coincident or collinear detections)."""
    centred = landmarks - landmarks.mean(axis=0, keepdims=True)
    area = hull_area(centred)
    return centred / np.sqrt(area) if area > 0 else None


def best_frame(
    source: np.ndarray,
    frames: Iterable[np.ndarray],
    detector,
    source_name: str = "source image",
    driving_name: str = "driving video",
) -> int:
    """Index of the driving frame whose normalised landmarks are closest to the source's.
    Images are prepared float frames; a frame without a face is a NoFaceError naming it
    (`source_name`, or frame i of `driving_name`: give the paths). A driving frame whose
    landmarks span no area is never the best; the source's must span one."""
    reference = normalized_landmarks(detector.detect(to_uint8(source), name=source_name))
    if reference is None:
        raise InputError(f"{source_name}: the detected landmarks span no area; cannot pick a best frame")
    distances = []
    for i, frame in enumerate(frames):
        landmarks = normalized_landmarks(detector.detect(to_uint8(frame), name=f"{driving_name}, driving frame {i}"))
        distances.append(np.inf if landmarks is None else np.square(reference - landmarks).sum())
    if not np.isfinite(distances).any():
        raise InputError(f"{driving_name}: no frame has landmarks that span an area; cannot pick a best frame")
    return int(np.argmin(distances))


# -------------------------------------------------------------------------------------- model
@torch.inference_mode()
def encode_sources(
    model, detector, sources: torch.Tensor, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources [S, 3, H, W] -> (z [1, T, 768], source keypoints [S, K, 2])."""
    kp, expression = model.keypoints_and_expression(detector, sources)
    with autocast(precision, sources.device):
        return model.encode(sources[None], kp[None], expression[None]), kp


@torch.inference_mode()
def drive_codes(model, detector, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Driving frames [B, 3, H, W] -> (keypoints [B, K, 2], expression vectors [B, E])."""
    return model.keypoints_and_expression(detector, frames)


@torch.inference_mode()
def render(
    model,
    z: torch.Tensor,
    kp: torch.Tensor,
    expression: torch.Tensor,
    height: int,
    width: int,
    max_num_pixels: int,
    precision: str = "fp32",
) -> torch.Tensor:
    """Float32 predictions [B, 3, H, W] clamped to [0, 1] for B frames at once; at most
    `max_num_pixels` query pixels of all B frames together are decoded at a time, which bounds the
    memory."""
    chunk = max(1, max_num_pixels // len(kp))
    with autocast(precision, kp.device):
        frames = model.render(z.expand(len(kp), -1, -1), kp, expression, height, width, chunk_size=chunk)
    return frames.float().clamp(0, 1)


def animate(
    model,
    detector,
    sources: torch.Tensor,
    driving: torch.Tensor,
    relative: bool = False,
    adapt_scale: bool = False,
    anchor: int = 0,
    batch_size: int = 4,
    max_num_pixels: int = 8192,
    precision: str = "fp32",
) -> torch.Tensor:
    """Predictions [T, 3, H, W] for in-memory sources [S, 3, H, W] and driving frames [T, 3, H, W];
    the relative motion is measured from driving frame `anchor` (the best frame)."""
    z, kp_source = encode_sources(model, detector, sources, precision)
    kp, expression = drive_codes(model, detector, driving)
    kp = transfer_motion(kp, kp_source[0], kp[anchor], relative, adapt_scale)
    height, width = sources.shape[-2:]
    return torch.cat(
        [
            render(
                model,
                z,
                kp[i : i + batch_size],
                expression[i : i + batch_size],
                height,
                width,
                max_num_pixels,
                precision,
            )
            for i in range(0, len(kp), batch_size)
        ]
    )
