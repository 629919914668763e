"""Scoring generated face frames and reporting the scores; shared by `tools.evaluate` and `tools.compare_demo`.

A method's output is a set of named frames (a folder's file stems, a video's frame indices
00000, 00001, ...). Each frame is compared with what the evaluation has for it: the ground-truth
frame of the same name (pixel metrics, landmarks, pose, expression), the driving frame
(landmarks, pose and expression of the motion it should copy) and one identity image (face
descriptor distance and similarity). Set-level FID compares all frames with all targets.
`tools.report` writes the scores (per_frame.csv, summary.json, a Markdown table, a plot).
Landmarks and identity come from dlib (`common.metrics`), so AKD, AED and CSIM are labelled with
dlib: they rank methods on the same frames but are not the papers' FAN / ArcFace numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.image import list_images, read_image
from common.progress import progress

PIXEL = ("l1", "psnr", "ssim", "ms_ssim", "lpips")
MOTION = ("akd", "pose", "expression")
IDENTITY = ("aed", "csim")
METRICS = PIXEL + MOTION + IDENTITY + ("fid",)
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "ms_ssim", "csim"})
DRIVER_SUFFIX = "_driving"
LABELS = {
    "l1": "L1",
    "psnr": "PSNR dB",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "lpips": "LPIPS",
    "akd": "AKD px (dlib)",
    "pose": "pose err deg",
    "expression": "expr err",
    "aed": "AED (dlib-ID)",
    "csim": "CSIM (dlib-ID)",
    "fid": "FID",
}
DECIMALS = {"psnr": 2, "akd": 2, "pose": 2, "fid": 1, "seconds_per_frame": 3, "peak_memory_mb": 0}
MISSING = "missing_keypoints"  # per frame: 1 when no face was found in the generated frame

Size = tuple[int, int]  # (width, height)


# ------------------------------------------------------------------------------------ frames
def read_frames(path: Path) -> dict[str, np.ndarray]:
    """Frames of a folder (keyed by file stem) or a video (keyed by index, 00000, 00001, ...)."""
    from common.video import iter_frames

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise InputError(f"{path}: folder holds no images")
        return {image.stem: read_image(image) for image in images}
    return {f"{index:05d}": frame for index, frame in enumerate(iter_frames(path))}


def parse_panel(spec: str) -> tuple[int, int, int, int]:
    """(row, column, rows, columns) of `3/5` (the fourth of five side-by-side panels, 0-based) or
    `1,1/2,4` (row 1, column 1 of a 2 x 4 grid): where a method's output sits in its panel images."""
    try:
        where, _, grid = spec.partition("/")
        place = [int(v) for v in where.split(",")]
        shape = [int(v) for v in grid.split(",")]
    except ValueError:
        place = shape = []
    if len(place) != len(shape) or len(place) not in (1, 2) or not all(0 <= p < n for p, n in zip(place, shape)):
        raise InputError(f"panel {spec!r}: expected INDEX/COUNT such as 3/5, or ROW,COL/ROWS,COLS such as 1,1/2,4")
    return (0, place[0], 1, shape[0]) if len(place) == 1 else (place[0], place[1], shape[0], shape[1])


def crop_panel(frames: dict[str, np.ndarray], panel: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    """The `panel` (see `parse_panel`) of every frame."""
    row, column, rows, columns = panel
    cropped = {}
    for name, frame in frames.items():
        height, width = frame.shape[:2]
        top, left = row * height // rows, column * width // columns
        cropped[name] = frame[top : (row + 1) * height // rows, left : (column + 1) * width // columns]
    return cropped


def parse_selection(spec: str) -> set[int]:
    """Frame numbers of `40-47`, `40,41` or a mix such as `0,40-47`."""
    numbers: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            first, _, last = part.partition("-")
            numbers.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise InputError(f"--frames {spec!r}: expected numbers and ranges such as 40-47 or 40,41") from None
    if not numbers:
        raise InputError(f"--frames {spec!r} selects no frames")
    return numbers


def select_frames(frames: dict[str, np.ndarray], numbers: set[int] | None, label: str) -> dict[str, np.ndarray]:
    """The frames whose number (the stem when it is a number, else the position) is in `numbers`."""
    if numbers is None:
        return frames
    picked = {
        name: frame
        for position, (name, frame) in enumerate(frames.items())
        if (int(name) if name.isdigit() else position) in numbers
    }
    if not picked:
        raise InputError(f"{label}: none of its {len(frames)} frames is among the selected ones")
    return picked


def align(names: Sequence[str], target: dict[str, np.ndarray], label: str) -> list[np.ndarray]:
    """The target frames for generated frames `names`: same name, else same position when the
    names differ but the counts agree (a video against a folder of differently named frames)."""
    if all(name in target for name in names):
        return [target[name] for name in names]
    if len(names) == len(target):
        return list(target.values())
    missing = next(name for name in names if name not in target)
    raise InputError(f"{label}: has {len(target)} frames and no frame {missing!r}; the generated set has {len(names)}")


def fit(image: np.ndarray, size: Size) -> np.ndarray:
    """`image` at (width, height) `size`, resized with Lanczos as common.image.read_image does."""
    if image.shape[1::-1] == tuple(size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))


def frame_size(frames: dict[str, np.ndarray]) -> Size:
    first = next(iter(frames.values()))
    return first.shape[1], first.shape[0]


# ------------------------------------------------------------------------------------ metrics
def driver_column(metric: str) -> str:
    return metric + DRIVER_SUFFIX


def column_label(column: str) -> str:
    """Table header: name, 'to driver' for driver columns, and an arrow saying which way is better."""
    base = column.removesuffix(DRIVER_SUFFIX)
    arrow = "↑" if base in HIGHER_IS_BETTER else "↓"
    return f"{LABELS[base]}{' to driver' if column != base else ''} {arrow}"


def higher_is_better(column: str) -> bool:
    return column.removesuffix(DRIVER_SUFFIX) in HIGHER_IS_BETTER


def parse_metrics(spec: str | None) -> list[str] | None:
    """The metric names of `l1,psnr,...`; None (every metric that can run) when not given."""
    if spec is None:
        return None
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise InputError(f"--metrics: unknown metric {unknown[0] if unknown else spec!r}; known: {', '.join(METRICS)}")
    return names


@dataclass
class Weights:
    """Files of the metrics that need downloaded networks; None where not found."""

    lpips: tuple[Path, Path] | None = None  # linear heads, VGG16 backbone
    fid: Path | None = None

    @classmethod
    def find(cls) -> Weights:
        from common.metrics.fid import find_fid_weights
        from common.metrics.lpips import find_lpips_weights

        return cls(find_lpips_weights(), find_fid_weights())


def load_lpips(weights: Weights):
    """The LPIPS metric; without found weights, the loader's error names the missing file."""
    from common.metrics import lpips, weights_dir

    return lpips.LPIPS(*(weights.lpips or (weights_dir() / lpips.LIN_FILE, weights_dir() / lpips.VGG16_FILE)))


def load_fid(weights: Weights):
    """The FID network; without found weights, the loader's error names the missing file."""
    from common.metrics import fid, weights_dir

    return fid.InceptionFID(weights.fid or weights_dir() / fid.FID_FILE)


def plan_columns(
    requested: list[str] | None,
    reference: bool,
    driving: bool,
    identity: bool,
    weights: Weights,
    candidates: Sequence[str] = METRICS,
) -> tuple[list[str], list[str]]:
    """The score columns to compute and one-line notes on the metrics left out.

    Default (`requested` None): every metric of `candidates` whose inputs are given; LPIPS and FID
    only when their weights were found. A requested metric whose inputs are missing is an error,
    except LPIPS/FID weights, whose loader then names the missing file.
    """
    names = requested if requested is not None else list(candidates)
    columns: list[str] = []
    notes: list[str] = []
    for name in names:
        if name in ("lpips", "fid") and requested is None and getattr(weights, name) is None:
            notes.append(f"{LABELS[name]} skipped: its weights were not found (see docs/evaluation.md)")
            continue
        if name in PIXEL or name == "fid":
            targets = [name] if reference or (name == "fid" and driving) else []
        elif name in MOTION:
            targets = ([name] if reference else []) + ([driver_column(name)] if driving else [])
        else:
            targets = [name] if identity else []
        if not targets and requested is not None:
            raise InputError(f"--metrics {name} needs {_inputs_needed(name)}")
        columns += targets
    if not columns:
        raise InputError("no metric can run: give --reference, --driving or --source/--identity")
    return columns, notes


def _inputs_needed(metric: str) -> str:
    if metric in IDENTITY:
        return "--identity or --source"
    return "--reference" if metric in PIXEL else "--reference or --driving"


@dataclass
class Targets:
    """What one method's frames are compared with, aligned frame by frame, at the frames' size."""

    size: Size
    reference: list[np.ndarray] | None = None
    driving: list[np.ndarray] | None = None
    identity: np.ndarray | None = None  # 128-D descriptor of the identity image
    reference_landmarks: list[np.ndarray | None] = field(default_factory=list)
    driving_landmarks: list[np.ndarray | None] = field(default_factory=list)


class FaceCache:
    """dlib landmarks and identity descriptors, computed once per image key: the targets are
    shared by every method scored at the same size."""

    def __init__(self):
        self._landmarks: dict[tuple, np.ndarray | None] = {}
        self._descriptors: dict[tuple, np.ndarray | None] = {}

    def landmarks(self, key: tuple, image: np.ndarray) -> np.ndarray | None:
        from common.metrics.keypoints import detect_landmarks

        if key not in self._landmarks:
            self._landmarks[key] = detect_landmarks(image)
        return self._landmarks[key]

    def descriptor(self, key: tuple, image: np.ndarray) -> np.ndarray | None:
        from common.metrics.identity import descriptor

        if key not in self._descriptors:
            self._descriptors[key] = descriptor(image)
        return self._descriptors[key]


def make_targets(
    names: Sequence[str],
    size: Size,
    columns: Sequence[str],
    cache: FaceCache,
    reference: dict[str, np.ndarray] | None = None,
    driving: dict[str, np.ndarray] | None = None,
    identity: Path | None = None,
    labels: tuple[str, str] = ("--reference", "--driving"),
) -> Targets:
    """Targets for generated frames `names` at `size`, with the landmarks the columns need."""
    targets = Targets(size)
    needs_landmarks = {
        "reference": bool(set(columns) & set(MOTION)),
        "driving": any(c.endswith(DRIVER_SUFFIX) for c in columns),
    }
    for kind, frames, label in (("reference", reference, labels[0]), ("driving", driving, labels[1])):
        if frames is None:
            continue
        resized = [fit(frame, size) for frame in align(names, frames, label)]
        setattr(targets, kind, resized)
        if needs_landmarks[kind]:
            found = [cache.landmarks((label, name, size), frame) for name, frame in zip(names, resized)]
            setattr(targets, f"{kind}_landmarks", found)
    if identity is not None and set(columns) & set(IDENTITY):
        targets.identity = cache.descriptor(("identity", str(identity), size), read_image(identity, size))
        if targets.identity is None:
            raise InputError(f"{identity}: no face found in the identity image")
    return targets


def score_frames(
    frames: Sequence[np.ndarray], targets: Targets, columns: Sequence[str], lpips=None, desc: str = ""
) -> list[dict[str, float]]:
    """Per-frame scores (column -> value; NaN where a face was not found) of `frames` against `targets`."""
    from common.metrics import identity, keypoints, pixel

    pixel_metrics = {"l1": pixel.l1, "psnr": pixel.psnr, "ssim": pixel.ssim, "ms_ssim": pixel.ms_ssim, "lpips": lpips}
    wants_landmarks = any(c.removesuffix(DRIVER_SUFFIX) in MOTION for c in columns)
    wants_identity = bool(set(columns) & set(IDENTITY))
    faces: dict[int, tuple] = {}  # landmarks and descriptor per frame object: a baseline repeats one image
    rows = []
    for index, original in enumerate(progress(frames, desc=desc)):
        frame = fit(original, targets.size)
        row: dict[str, float] = {}
        for column in columns:
            if column in PIXEL:
                row[column] = float(pixel_metrics[column](frame, targets.reference[index]))
        if id(original) not in faces:
            landmarks = keypoints.detect_landmarks(frame) if wants_landmarks else None
            faces[id(original)] = landmarks, identity.descriptor(frame, landmarks) if wants_identity else None
        landmarks, own = faces[id(original)]
        if wants_landmarks:
            row[MISSING] = float(landmarks is None)
        for column in columns:
            metric = column.removesuffix(DRIVER_SUFFIX)
            if metric in MOTION:
                found = targets.driving_landmarks if column != metric else targets.reference_landmarks
                row[column] = _motion_error(metric, landmarks, found[index], targets.size)
            elif metric in IDENTITY:  # NaN when either face is missing
                row[column] = float(getattr(identity, metric)(own, targets.identity))
        rows.append(row)
    return rows


def _motion_error(metric: str, landmarks, target, size: Size) -> float:
    if landmarks is None or target is None:
        return math.nan
    if metric == "akd":
        from common.metrics.keypoints import akd

        return float(akd(landmarks, target))
    from common.metrics import pose

    if metric == "pose":
        return float(pose.pose_error(landmarks, target, size))
    return float(pose.expression_error(target, landmarks))


def set_scores(frames: Sequence[np.ndarray], targets: Targets, columns: Sequence[str], fid=None) -> dict:
    """Set-level scores: FID (`fid`, an InceptionFID) of the frames against the ground truth, else
    the driving frames."""
    if "fid" not in columns:
        return {}
    real = targets.reference if targets.reference is not None else targets.driving
    return {"fid": float(fid.fid([fit(f, targets.size) for f in frames], real))}


@dataclass
class Evaluation:
    """What the sets scored against the same targets share: the columns, the target frames, the
    identity image, the metric networks and the cache of the targets' landmarks."""

    columns: list[str]
    reference: dict[str, np.ndarray] | None = None
    driving: dict[str, np.ndarray] | None = None
    identity: Path | None = None
    lpips: object = None  # common.metrics.lpips.LPIPS when "lpips" is scored
    fid: object = None  # common.metrics.fid.InceptionFID when "fid" is scored
    labels: tuple[str, str] = ("--reference", "--driving")
    cache: FaceCache = field(default_factory=FaceCache)

    def score(
        self,
        method: str,
        names: Sequence[str],
        frames: Sequence[np.ndarray],
        size: Size,
        info: dict | None = None,
        set_level: bool = True,
    ) -> Result:
        """`frames` (named `names`) scored at `size`; set-level scores (FID) if `set_level`."""
        args = (self.reference, self.driving, self.identity, self.labels)
        targets = make_targets(names, size, self.columns, self.cache, *args)
        rows = score_frames(frames, targets, self.columns, self.lpips, desc=method)
        sets = set_scores(frames, targets, self.columns, self.fid) if set_level else {}
        return Result(method, list(names), rows, sets, info or {})


# ------------------------------------------------------------------------------------ results
@dataclass
class Result:
    """One row of the report: a method's per-frame scores and what describes it."""

    method: str
    frames: list[str]
    rows: list[dict[str, float]]
    set_level: dict[str, float] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)  # shown as extra table columns

    def summary(self) -> dict:
        """count, the mean of each per-frame score over frames where it exists, set-level
        scores, and the share of frames with no face found (missing-keypoint rate)."""
        columns = [c for c in (self.rows[0] if self.rows else {}) if c != MISSING]
        mean = {c: _mean([row[c] for row in self.rows]) for c in columns}
        out = {"count": len(self.rows), "mean": {**mean, **self.set_level}}
        if self.rows and MISSING in self.rows[0]:
            out["missing_keypoint_rate"] = float(np.mean([row[MISSING] for row in self.rows]))
        return {**out, **self.info}


def _mean(values: Iterable[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan
