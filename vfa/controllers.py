"""Controllers: the FaceMesh landmarks of the rendered avatar that the driving motion moves.

Selection, as VFA's `get_keypoints` (fact sheet 4.3), on the rendered source's z-buffer:

1. The outer-lip landmarks, upper then lower list, on the face (zbuf > 0); a pixel already taken
   is skipped (landmark 61 ends both lists).
2. Then every other landmark in index order that is not in the extended lip set (outer and inner
   lips and the ring around them), kept only if it is on the face, at x <= 205, at an L1 distance
   of at least 10 px from every point kept so far, and on smooth depth: the z-buffer 3 px left,
   right, above and below (where that pixel is in the image) differs by at most 5% of the face's
   depth range.

A landmark's pixel is (int(x·W), int(y·H)) of its normalised position, truncated toward zero.
One outside the image is skipped (the original would read a wrapped-around pixel for a negative
coordinate and stop with an IndexError past the right or bottom edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.errors import InputError, NoFaceError
from vfa.facemesh import NUM_LANDMARKS, FaceMesh

UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324)
# The ring of points around and between the lip contours.
LIP_SURROUNDINGS = (
    76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306, 62, 183, 42, 41, 38, 12, 268, 271, 272,
    407, 292, 96, 89, 179, 86, 15, 316, 403, 319, 325, 77, 90, 180, 85, 16, 315, 404, 320, 307,
)  # fmt: skip
EXTENDED_LIPS = frozenset(UPPER_OUTER_LIP + LOWER_OUTER_LIP + UPPER_INNER_LIP + LOWER_INNER_LIP + LIP_SURROUNDINGS)

MAX_X = 205  # hard-coded in the original: controllers right of this column are dropped
MIN_L1_DISTANCE = 10  # px between a non-lip controller and every earlier one
STEP = 3  # px to the neighbours of the depth-smoothness test
DEPTH_STEP_FRACTION = 0.05  # of (max zbuf - min positive zbuf)

KINDS = ("lipsUpperOuter", "lipsLowerOuter", "other")
# Debug-picture colours (BGR) per kind, as the original's test_bfm_color_bones.png.
KIND_COLOURS = {"lipsUpperOuter": (0, 0, 255), "lipsLowerOuter": (0, 255, 0), "other": (0, 255, 255)}


@dataclass(frozen=True, eq=False)
class Controllers:
    """`points` [C,3] float64: pixel column, pixel row (integers) and 1/zbuf there; `kinds` the
    original's controller type per point; `landmark_ids` [C] the FaceMesh index of each."""

    points: np.ndarray
    kinds: tuple[str, ...]
    landmark_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    @property
    def pixels(self) -> np.ndarray:
        """[C,2] int64 (column, row)."""
        return self.points[:, :2].astype(np.int64)


def landmark_pixels(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N,2] int64 (column, row) = (int(x·W), int(y·H)) of normalised landmarks."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    columns = np.trunc(landmarks[:, 0] * np.float32(width))
    rows = np.trunc(landmarks[:, 1] * np.float32(height))
    return np.stack([columns, rows], axis=1).astype(np.int64)


def select_controllers(landmarks: np.ndarray, zbuf: np.ndarray) -> Controllers:
    """Apply the selection rules (module docstring) to normalised FaceMesh landmarks [478, 2+]
    on the source's z-buffer [H,W] (-1 where empty)."""
    zbuf = np.asarray(zbuf, dtype=np.float32)
    height, width = zbuf.shape
    if len(landmarks) < NUM_LANDMARKS:
        raise InputError(f"need {NUM_LANDMARKS} FaceMesh landmarks (refine_landmarks=True), got {len(landmarks)}")
    foreground = zbuf > 0
    if not foreground.any():
        raise InputError("the rendered avatar has no visible surface")
    max_step = DEPTH_STEP_FRACTION * (zbuf.max() - zbuf[foreground].min())
    pixels = landmark_pixels(landmarks, width, height).tolist()

    points, kinds, ids = [], [], []
    taken = set()  # lip pixels already used

    def on_face(column: int, row: int) -> bool:
        return 0 <= column < width and 0 <= row < height and zbuf[row, column] > 0

    def keep(index: int, column: int, row: int, kind: str) -> None:
        points.append((column, row, float(np.float32(1.0) / zbuf[row, column])))
        kinds.append(kind)
        ids.append(index)

    for kind, lip in (("lipsUpperOuter", UPPER_OUTER_LIP), ("lipsLowerOuter", LOWER_OUTER_LIP)):
        for index in lip:
            column, row = pixels[index]
            if on_face(column, row) and (column, row) not in taken:
                keep(index, column, row, kind)
                taken.add((column, row))

    for index, (column, row) in enumerate(pixels[:NUM_LANDMARKS]):
        if index in EXTENDED_LIPS or not on_face(column, row) or column > MAX_X:
            continue
        if points and min(abs(p[0] - column) + abs(p[1] - row) for p in points) < MIN_L1_DISTANCE:
            continue
        if _depth_step_too_large(zbuf, column, row, max_step):
            continue
        keep(index, column, row, "other")

    return Controllers(
        points=np.asarray(points, dtype=np.float64).reshape(-1, 3),
        kinds=tuple(kinds),
        landmark_ids=np.asarray(ids, dtype=np.int64),
    )


def _depth_step_too_large(zbuf: np.ndarray, column: int, row: int, max_step: float) -> bool:
    """The original's sharpness test: a neighbour STEP px away (left/up only when that index is
    > 0, right/down when < the size) whose zbuf differs by more than `max_step`."""
    height, width = zbuf.shape
    centre = zbuf[row, column]
    neighbours = []
    if column - STEP > 0:
        neighbours.append(zbuf[row, column - STEP])
    if column + STEP < width:
        neighbours.append(zbuf[row, column + STEP])
    if row - STEP > 0:
        neighbours.append(zbuf[row - STEP, column])
    if row + STEP < height:
        neighbours.append(zbuf[row + STEP, column])
    return any(abs(value - centre) > max_step for value in neighbours)


def find_controllers(colour_bgr: np.ndarray, zbuf: np.ndarray, feed_rgb: bool = False) -> Controllers:
    """Run FaceMesh on the rendered source and select the controllers.

    The original hands FaceMesh the BGR array as it is (mediapipe expects RGB); `feed_rgb`
    converts it first. No face is a NoFaceError that suggests moving the camera.
    """
    image = np.ascontiguousarray(colour_bgr[..., ::-1]) if feed_rgb else colour_bgr
    with FaceMesh() as mesh:
        landmarks = mesh.landmarks(image)
    if landmarks is None:
        raise NoFaceError(
            "no face found on the rendered avatar (mediapipe FaceMesh); move the camera with --eye / "
            "--translation and check the render with --adjust_camera"
        )
    return select_controllers(landmarks, zbuf)


def draw_controllers(colour_bgr: np.ndarray, controllers: Controllers) -> np.ndarray:
    """The original's debug picture: each controller's pixel painted in its kind's colour (BGR)."""
    picture = np.array(colour_bgr, dtype=np.uint8, copy=True)
    for (column, row), kind in zip(controllers.pixels, controllers.kinds):
        picture[row, column] = KIND_COLOURS[kind]
    return picture


def write_controllers_picture(path, colour_bgr: np.ndarray, controllers: Controllers) -> None:
    """Write `draw_controllers` as a PNG."""
    if not cv2.imwrite(str(path), draw_controllers(colour_bgr, controllers)):
        raise InputError(f"{path}: cannot write the controllers picture")
