"""Build the small sample every demo uses, from photos that ship with the installed packages.

`python -m tools.make_sample_data --out DIR` writes

    DIR/source.png                 256x256 face crop of skimage's astronaut photo
    DIR/source_2.png               a second identity (matplotlib's Grace Hopper photo), same framing
    DIR/driving.mp4                the driving clip (H.264), made from the source crop
    DIR/driving/00000.png ...      the same frames, lossless
    DIR/driving_2/00000.png ...    the second identity with the same kind of motion, half a period
                                   later (a cross-identity driver for person-specific models)
    DIR/landmarks/<name>.npy       68x2 float32 iBUG landmarks of source, source_2 and every
                                   driving frame (driving/00000.npy ..., driving_2/00000.npy ...)
    DIR/parsing/<name>.png         CelebAMask-HQ label maps (uint8) derived from those landmarks,
    DIR/parsing/<name>_color.png   and their colour previews
    DIR/meta.json                  fps, sizes, motion parameters, provenance

The driving clip is the source photo warped by a thin-plate spline that carries its detected
landmarks to animated positions: a smooth roll/translation/scale head motion, a mouth that opens
twice and one blink. The driving landmarks are therefore known exactly, not re-detected.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError, cli_main
from common.image import write_image
from common.progress import progress

# iBUG-68 indices moved by the expression animation.
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
CHIN_WEIGHTS = {5: 0.2, 6: 0.5, 7: 0.8, 8: 1.0, 9: 0.8, 10: 0.5, 11: 0.2}
UPPER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}  # upper-lid point -> lower-lid point below it
INNER_LIPS = range(60, 68)  # left out of the spline's control points: they coincide when closed


@dataclass
class Motion:
    """Amplitudes of the synthetic driving motion (crop pixels and degrees)."""

    frames: int = 48
    fps: float = 25.0
    roll_deg: float = 7.0
    shift_px: float = 10.0
    scale: float = 0.05
    mouth_px: float = 9.0
    blink_frame: int = 30
    blink_len: int = 6


def face_crop(landmarks: np.ndarray, margin: float = 2.2, lift: float = 0.12) -> tuple[float, float, float]:
    """Square crop (x0, y0, side) around the landmarks, FOMM-style: face about half the side."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    side = float(max(hi - lo)) * margin
    cx, cy = (lo + hi) / 2
    cy -= lift * side
    return float(cx - side / 2), float(cy - side / 2), side


def animate(points: np.ndarray, t: int, motion: Motion, centre: np.ndarray, px: float) -> np.ndarray:
    """Landmarks (and extra anchor points after index 67) moved to frame `t`.

    `px` converts crop pixels to image pixels. Expression first (in the face's own frame),
    then the rigid head motion about `centre`.
    """
    phase = 2 * np.pi * t / motion.frames
    out = points.astype(np.float64).copy()
    opening = motion.mouth_px * px * max(0.0, np.sin(2 * phase)) ** 2
    out[LOWER_LIP, 1] += opening
    for idx, weight in CHIN_WEIGHTS.items():
        out[idx, 1] += weight * opening
    blink = 1 - abs(t - motion.blink_frame) / (motion.blink_len / 2)
    if blink > 0:
        for upper, lower in UPPER_LIDS.items():
            out[upper] += 0.85 * blink * (points[lower] - points[upper])
    angle = np.deg2rad(motion.roll_deg) * np.sin(phase)
    scale = 1 + motion.scale * np.sin(phase + 1.0)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = motion.shift_px * px * np.array([np.sin(phase + 0.5), 0.5 * np.sin(2 * phase)])
    return (out - centre) @ rot.T + centre + shift


def merge_coincident(src: np.ndarray, dst: np.ndarray, min_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Control points whose targets `dst` lie closer than `min_gap` merged into one (mean `src`).

    Detectors may return coincident points (a closed mouth puts the inner lips on each other,
    a closed eye its lids), and a spline through two equal targets is singular. Targets that
    close cannot be told apart in the rendered frame anyway. Points are kept in their order, so
    a set without close pairs passes through unchanged.
    """
    from scipy.spatial import cKDTree

    groups = np.arange(len(dst))
    for i, j in sorted(cKDTree(dst).query_pairs(min_gap)):
        groups[groups == groups[j]] = groups[i]
    labels = np.unique(groups)
    if len(labels) == len(dst):
        return src, dst
    return (np.stack([src[groups == g].mean(0) for g in labels]), np.stack([dst[groups == g].mean(0) for g in labels]))


def warp(
    image: np.ndarray, src: np.ndarray, dst: np.ndarray, crop: tuple[float, float, float], size: int
) -> np.ndarray:
    """Render the `size`x`size` crop of `image` deformed so that points `src` move to `dst`.

    Backward mapping: a thin-plate spline from output positions to source positions, sampled
    bilinearly. The spline has an affine part, so a purely rigid motion is reproduced exactly.
    Targets within a tenth of an output pixel of each other are merged first (`merge_coincident`).
    """
    from scipy.interpolate import RBFInterpolator
    from scipy.ndimage import map_coordinates

    x0, y0, side = crop
    step = side / size
    src, dst = merge_coincident(src, dst, min_gap=0.1 * step)
    grid = (np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2) + 0.5) * step
    grid += [x0, y0]
    try:
        sample = RBFInterpolator(dst, src, kernel="thin_plate_spline")(grid)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise InputError(f"landmarks give no usable warp ({len(dst)} distinct control points): {exc}") from None
    channels = [
        map_coordinates(
            image[..., c].astype(np.float32), [sample[:, 1] - 0.5, sample[:, 0] - 0.5], order=1, mode="reflect"
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8).reshape(size, size, -1)


def to_crop(points: np.ndarray, crop: tuple[float, float, float], size: int) -> np.ndarray:
    x0, y0, side = crop
    return ((points - [x0, y0]) * (size / side)).astype(np.float32)


def anchor_ring(landmarks: np.ndarray, crop: tuple[float, float, float], count: int = 20) -> np.ndarray:
    """Points well outside the face that move with the head, so the background follows it."""
    centre = landmarks.mean(0)
    radius = crop[2] * 0.75
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1)


def write_annotations(out: Path, name: str, landmarks: np.ndarray, size: int) -> None:
    """`landmarks/<name>.npy` and the label map drawn from them, `parsing/<name>(_color).png`."""
    from common.parsing import colorize, labels_from_landmarks

    np.save(out / "landmarks" / f"{name}.npy", landmarks)
    labels = labels_from_landmarks(landmarks, (size, size))
    write_image(out / "parsing" / f"{name}.png", labels)
    write_image(out / "parsing" / f"{name}_color.png", colorize(labels))


def write_still(out: Path, name: str, photo: np.ndarray, points: np.ndarray, crop, size: int) -> None:
    """A photo cropped at the sample's framing, with its annotations."""
    write_image(out / f"{name}.png", warp(photo, points, points, crop, size))
    write_annotations(out, name, to_crop(points[:68], crop, size), size)


def control_points(photo: np.ndarray, detector) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The 68 landmarks followed by the anchor ring, and the crop around them."""
    landmarks = detector.detect(photo)
    crop = face_crop(landmarks)
    return np.concatenate([landmarks, anchor_ring(landmarks, crop)]).astype(np.float64), crop


def write_clip(
    out: Path, clip: str, photo: np.ndarray, src: np.ndarray, crop, size: int, motion: Motion, offset: int = 0
) -> list[np.ndarray]:
    """Write `clip`/NNNNN.png and its annotations: the photo animated from motion frame `offset` on."""
    keep = [i for i in range(len(src)) if i not in INNER_LIPS]
    centre, px = src[:68].mean(0), crop[2] / size
    frames = []
    for t in progress(range(motion.frames), desc=f"{clip} frames"):
        dst = animate(src, (t + offset) % motion.frames, motion, centre, px)
        frames.append(warp(photo, src[keep], dst[keep], crop, size))
        write_image(out / clip / f"{t:05d}.png", frames[-1])
        write_annotations(out, f"{clip}/{t:05d}", to_crop(dst[:68], crop, size), size)
    return frames


def make_sample(out: Path, size: int = 256, motion: Motion | None = None, detector=None) -> dict:
    """Write the sample into `out` (`motion` default: `Motion()`); `detector` (default: dlib's)
    finds the photos' landmarks."""
    motion = motion or Motion()
    from matplotlib import cbook
    from skimage import data

    from common.image import read_image
    from common.landmarks import LandmarkDetector
    from common.video import write_video

    for clip in ("driving", "driving_2"):
        (out / "landmarks" / clip).mkdir(parents=True, exist_ok=True)
    detector = detector or LandmarkDetector(backend="dlib")
    hopper = read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    hopper_points, hopper_crop = control_points(hopper, detector)
    write_still(out, "source_2", hopper, hopper_points, hopper_crop, size)

    photo = data.astronaut()
    src, crop = control_points(photo, detector)
    write_still(out, "source", photo, src, crop, size)
    write_video(out / "driving.mp4", write_clip(out, "driving", photo, src, crop, size, motion), fps=motion.fps)
    write_clip(out, "driving_2", hopper, hopper_points, hopper_crop, size, motion, offset=motion.frames // 2)

    meta = {
        "size": size,
        "fps": motion.fps,
        "frames": motion.frames,
        "motion": asdict(motion),
        "source": "skimage.data.astronaut(), cropped at (x0, y0, side) = " + ", ".join(f"{v:.1f}" for v in crop),
        "source_2": "matplotlib sample_data/grace_hopper.jpg",
        "driving_2": "source_2 animated with the same motion, starting half a period later",
        "landmarks": "dlib 68-point on the photos; driving landmarks are the warp targets (exact)",
        "parsing": "CelebAMask-HQ labels drawn from the landmarks (common.parsing.labels_from_landmarks), "
        "not a parsing network",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (default 256)")
    parser.add_argument("--frames", type=int, default=Motion.frames, help="driving clip length")
    parser.add_argument("--fps", type=float, default=Motion.fps)
    args = parser.parse_args(argv)
    meta = make_sample(args.out, args.size, Motion(frames=args.frames, fps=args.fps))
    print(f"wrote the sample ({meta['frames']} driving frames at {meta['size']}px) to {args.out}")
    return 0


if __name__ == "__main__":
    main()
