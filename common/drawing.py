"""Landmark drawings, the driving images of FSTH, LSR and VPGC, from one group table per style.

Each style is data: which point chains to join (indices, colour, closed), the canvas and one
of three drawing routines, chosen so the pixels match the original's library call:

* `fsth`   (FSTH `plot_landmarks`): white RGB, Pillow `ImageDraw.line` width 3, aliased.
* `lsr`    (LSR `release_landmark.py`): black RGB, matplotlib Agg, antialiased lw=2 points.
* `vpgc68` (VPGC `draw_heatmap_from_68_landmark`): HxW uint8, points truncated by `int()`,
  `cv2.line` value 255 thickness 2 per segment.
* `vpgc86` (VPGC `draw_heatmap_from_86_landmark`): the same on VPGC's 86-point layout.

Landmarks are (N, 2) (x, y) pixels of the canvas; `size` is an int (square) or (height, width).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import InputError

# the named colours of Pillow and matplotlib the originals used: green, orange, blue, red, purple, pink
GREEN, ORANGE, BLUE, RED = (0, 128, 0), (255, 165, 0), (0, 0, 255), (255, 0, 0)
PURPLE, PINK = (128, 0, 128), (255, 192, 203)


@dataclass(frozen=True)
class Group:
    indices: tuple[int, ...]
    colour: tuple[int, ...] | int
    closed: bool = False


@dataclass(frozen=True)
class Style:
    backend: str           # 'pillow' | 'matplotlib' | 'cv2'
    groups: tuple[Group, ...]
    background: tuple[int, ...] | int
    width: float           # pixels (pillow, cv2) or points (matplotlib)
    default_size: int


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


_FACE68 = (  # order and colours shared by FSTH and LSR
    Group(_span(0, 16), GREEN), Group(_span(17, 21), ORANGE), Group(_span(22, 26), ORANGE),
    Group(_span(27, 30), BLUE), Group(_span(31, 35), BLUE), Group(_span(36, 41), RED),
    Group(_span(42, 47), RED), Group(_span(48, 59), PURPLE),
)

STYLES: dict[str, Style] = {
    "fsth": Style("pillow", _FACE68, (255, 255, 255), 3, 256),  # inner lips not drawn
    "lsr": Style("matplotlib", _FACE68 + (Group(_span(60, 67), PINK),), (0, 0, 0), 2, 224),
    "vpgc68": Style("cv2", (
        Group(_span(48, 59), 255, True), Group(_span(60, 67), 255, True),
        Group(_span(36, 41), 255, True), Group(_span(42, 47), 255, True),
        Group(_span(17, 21), 255), Group(_span(22, 26), 255),
        Group(_span(27, 30), 255), Group(_span(31, 35), 255), Group(_span(0, 16), 255),
    ), 0, 2, 512),
    "vpgc86": Style("cv2", (
        Group(_span(17, 25), 255, True), Group(_span(26, 34), 255, True),
        Group((35, 36, 41, 37, 38, 39, 42, 40), 255, True), Group((43, 44, 49, 45, 46, 47, 50, 48), 255, True),
        Group((66, 72, 67, 68, 69, 73, 70, 74, 85, 71, 84, 75), 255, True),
        Group((76, 78, 79, 80, 77, 83, 82, 81), 255, True),
        Group(_span(51, 54), 255), Group((57, 59, 61, 62, 63, 64, 65, 60, 58), 255), Group(_span(0, 16), 255),
    ), 0, 2, 512),
}


def _chain(landmarks: np.ndarray, group: Group) -> np.ndarray:
    points = landmarks[list(group.indices)]
    return np.concatenate([points, points[:1]]) if group.closed else points


def _draw_pillow(landmarks: np.ndarray, height: int, width: int, style: Style) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, height), style.background)
    draw = ImageDraw.Draw(canvas)
    for group in style.groups:
        # float coordinates go to Pillow as they are: its own rounding is the original's
        draw.line([tuple(p) for p in _chain(landmarks, group).tolist()], fill=group.colour, width=int(style.width))
    return np.asarray(canvas, dtype=np.uint8).copy()


_MPL_DEFAULTS = {"lines.antialiased": True, "lines.solid_capstyle": "projecting",
                 "lines.solid_joinstyle": "round", "path.snap": True}


def _inches(pixels: int, dpi: int) -> float:
    """pixels/dpi, nudged up one ulp where Agg's int(inches*dpi) would lose a pixel (29 -> 28.999...)."""
    inches = pixels / dpi
    return inches if int(inches * dpi) == pixels else float(np.nextafter(inches, np.inf))


def _draw_matplotlib(landmarks: np.ndarray, height: int, width: int, style: Style) -> np.ndarray:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    with matplotlib.rc_context(_MPL_DEFAULTS):  # a user matplotlibrc must not change the drawing
        figure = Figure(figsize=(_inches(width, dpi), _inches(height, dpi)), dpi=dpi,
                        facecolor=np.array(style.background) / 255)
        canvas = FigureCanvasAgg(figure)
        axes = figure.add_axes((0, 0, 1, 1))
        # the limits of the original's imshow(zeros(H, W)): pixel centres at integer coordinates
        axes.set_xlim(-0.5, width - 0.5)
        axes.set_ylim(height - 0.5, -0.5)
        axes.axis("off")
        for group in style.groups:
            points = _chain(landmarks, group)
            axes.plot(points[:, 0], points[:, 1], linestyle="-", color=np.array(group.colour) / 255, lw=style.width)
        canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:height, :width, :3].copy()


def _draw_cv2(landmarks: np.ndarray, height: int, width: int, style: Style) -> np.ndarray:
    import cv2

    canvas = np.full((height, width), style.background, dtype=np.uint8)
    for group in style.groups:
        points = [(int(x), int(y)) for x, y in _chain(landmarks, group).tolist()]  # int(): truncation
        for start, end in zip(points[:-1], points[1:]):
            cv2.line(canvas, start, end, color=group.colour, thickness=int(style.width))
    return canvas


_BACKENDS = {"pillow": _draw_pillow, "matplotlib": _draw_matplotlib, "cv2": _draw_cv2}


def draw_landmarks(landmarks: np.ndarray, size: int | tuple[int, int] | None, style: str) -> np.ndarray:
    """Rasterise landmarks in a method's style.

    Returns HxWx3 uint8 RGB for 'fsth' and 'lsr', HxW uint8 (0 or 255, 255 = line) for
    'vpgc68' / 'vpgc86'. `size` None takes the style's usual frame size (256, 224, 512).
    """
    if style not in STYLES:
        raise InputError(f"unknown landmark drawing style {style!r}; choose one of {', '.join(STYLES)}")
    spec = STYLES[style]
    size = spec.default_size if size is None else size
    height, width = (size, size) if np.isscalar(size) else size
    landmarks = np.asarray(landmarks, dtype=np.float64)
    needed = 1 + max(max(g.indices) for g in spec.groups)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or len(landmarks) < needed:
        raise InputError(f"style {style!r} needs ({needed}, 2) landmarks, got shape {landmarks.shape}")
    return _BACKENDS[spec.backend](landmarks, int(height), int(width), spec)


def overlay_landmarks(image: np.ndarray, landmarks: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0),
                      radius: int | None = None) -> np.ndarray:
    """A copy of an RGB photo with each landmark as a small filled dot, for previews."""
    import cv2

    canvas = np.ascontiguousarray(np.array(image, dtype=np.uint8, copy=True))
    if canvas.ndim == 2:
        canvas = np.ascontiguousarray(np.repeat(canvas[..., None], 3, axis=2))
    radius = radius or max(1, round(min(canvas.shape[:2]) / 256))
    for x, y in np.asarray(landmarks, dtype=np.float64):
        cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colour, thickness=-1, lineType=cv2.LINE_AA)
    return canvas
