"""Landmark drawings, the driving images of FSTH, LSR and VPGC: one group table per style.

A style is data (`LandmarkStyle`): the point chains to join (indices, colour, closed), the
canvas and which of three renderers draws it, each calling its library the way the original did
so that the pixels match:

* `fsth`   (FSTH `plot_landmarks`): white RGB, Pillow `ImageDraw.line` width 3, aliased, float
  coordinates handed to Pillow as they are; inner lips not drawn.
* `lsr`    (LSR `release_landmark.py`): black RGB, matplotlib Agg at dpi 100, `imshow` of a black
  frame then antialiased `plot(..., lw=2)` polylines. As in the original, points outside the
  frame make matplotlib widen the axes, which shrinks the drawing and shows the white figure
  around it. `lsr_fixed` pins the axes to the frame instead (the fix; not what LSR trained on).
* `vpgc68` (VPGC `util.draw_heatmap_from_68_landmark`): HxW uint8 zeros, points truncated with
  `int()`, one `cv2.line(value 255, thickness 2)` per segment, 8-connected.
* `vpgc86` (VPGC `util.draw_heatmap_from_86_landmark`): the same on VPGC's 86-point layout.

Eyes and lips are open polylines in `fsth`/`lsr` and closed in the VPGC styles. Landmarks are
(N, 2) (x, y) pixels of the canvas; `size` is an int (square) or (height, width). A variant is a
`dataclasses.replace` of a preset, not a new routine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from common.errors import InputError

GREEN, ORANGE, BLUE = (0, 128, 0), (255, 165, 0), (0, 0, 255)
RED, PURPLE, PINK = (255, 0, 0), (128, 0, 128), (255, 192, 203)


@dataclass(frozen=True)
class Group:
    """Points joined in this order by one polyline; `closed` adds the last-to-first segment."""

    indices: tuple[int, ...]
    colour: tuple[int, int, int] | int  # RGB, or the grey value of a one-channel canvas
    closed: bool = False


@dataclass(frozen=True)
class LandmarkStyle:
    renderer: str  # 'pillow' | 'matplotlib' | 'cv2'
    groups: tuple[Group, ...]  # drawn in this order
    background: tuple[int, int, int] | int  # an int gives a one-channel canvas
    width: float  # pixels (pillow, cv2) or points (matplotlib)
    default_size: int  # the frame side the method works at
    pin_axes: bool = False  # matplotlib: axes stay on the frame whatever the points

    @property
    def num_points(self) -> int:
        return 1 + max(max(group.indices) for group in self.groups)


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


# iBUG-68 chains in the order and colours FSTH and LSR share (LSR adds the inner lips).
FACE68 = (
    Group(_span(0, 16), GREEN),
    Group(_span(17, 21), ORANGE),
    Group(_span(22, 26), ORANGE),
    Group(_span(27, 30), BLUE),
    Group(_span(31, 35), BLUE),
    Group(_span(36, 41), RED),
    Group(_span(42, 47), RED),
    Group(_span(48, 59), PURPLE),
)
FACE68_ALL = FACE68 + (Group(_span(60, 67), PINK),)


def _vpgc(chains: tuple[tuple[tuple[int, ...], bool], ...]) -> tuple[Group, ...]:
    return tuple(Group(indices, 255, closed) for indices, closed in chains)


_LSR = LandmarkStyle("matplotlib", FACE68_ALL, (0, 0, 0), 2, 224)

STYLES: dict[str, LandmarkStyle] = {
    "fsth": LandmarkStyle("pillow", FACE68, (255, 255, 255), 3, 256),
    "lsr": _LSR,
    "lsr_fixed": replace(_LSR, pin_axes=True),
    "vpgc68": LandmarkStyle(
        "cv2",
        _vpgc(
            (
                (_span(48, 59), True),
                (_span(60, 67), True),
                (_span(36, 41), True),
                (_span(42, 47), True),
                (_span(17, 21), False),
                (_span(22, 26), False),
                (_span(27, 30), False),
                (_span(31, 35), False),
                (_span(0, 16), False),
            )
        ),
        0,
        2,
        512,
    ),
    # the 86-point brows are closed loops: upper edge left to right, lower edge back
    "vpgc86": LandmarkStyle(
        "cv2",
        _vpgc(
            (
                ((66, 72, 67, 68, 69, 73, 70, 74, 85, 71, 84, 75), True),
                ((76, 78, 79, 80, 77, 83, 82, 81), True),
                ((35, 36, 41, 37, 38, 39, 42, 40), True),
                ((43, 44, 49, 45, 46, 47, 50, 48), True),
                ((17, 18, 19, 20, 21, 25, 24, 23, 22), True),
                ((26, 27, 28, 29, 30, 34, 33, 32, 31), True),
                ((51, 52, 53, 54), False),
                ((57, 59, 61, 62, 63, 64, 65, 60, 58), False),
                (_span(0, 16), False),
            )
        ),
        0,
        2,
        512,
    ),
}


def _chain(landmarks: np.ndarray, group: Group) -> np.ndarray:
    points = landmarks[list(group.indices)]
    return np.concatenate([points, points[:1]]) if group.closed else points


def _pillow_lines(canvas, landmarks: np.ndarray, groups: tuple[Group, ...], width: int) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    for group in groups:
        # unrounded floats, as FSTH passed FAN's float32 arrays; a flat Python list because
        # Pillow misreads float64 arrays through the buffer protocol
        draw.line(_chain(landmarks, group).ravel().tolist(), fill=group.colour, width=width)


def _draw_pillow(landmarks: np.ndarray, height: int, width: int, style: LandmarkStyle) -> np.ndarray:
    from PIL import Image

    canvas = Image.new("RGB", (width, height), style.background)
    _pillow_lines(canvas, landmarks, style.groups, int(style.width))
    return np.asarray(canvas, dtype=np.uint8).copy()


def _inches(pixels: int, dpi: int) -> float:
    """pixels/dpi, one ulp up where Agg's int(inches*dpi) would drop a pixel (29 -> 28.999...).

    The original lost that row or column (a 29-px frame gave a 28-px drawing); sizes such as
    224, 256 and 512 are unaffected.
    """
    inches = pixels / dpi
    return inches if int(inches * dpi) == pixels else float(np.nextafter(inches, np.inf))


def _draw_matplotlib(landmarks: np.ndarray, height: int, width: int, style: LandmarkStyle) -> np.ndarray:
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    with matplotlib.style.context("default"):  # the original drew with matplotlib's defaults
        figure = Figure(figsize=(_inches(width, dpi), _inches(height, dpi)), dpi=dpi)
        canvas = FigureCanvasAgg(figure)  # Agg without pyplot: no global figure state
        axes = figure.add_subplot(1, 1, 1)
        # the frame as an image sets what the original's imshow(zeros) set: pixel centres on
        # integer coordinates, y downwards, equal aspect and the autoscaling described above
        axes.imshow(np.full((height, width, 3), np.divide(style.background, 255)))
        figure.subplots_adjust(left=0, right=1, top=1, bottom=0)
        for group in style.groups:
            points = _chain(landmarks, group)
            axes.plot(points[:, 0], points[:, 1], linestyle="-", color=np.divide(group.colour, 255), lw=style.width)
        if style.pin_axes:
            axes.set_xlim(-0.5, width - 0.5)
            axes.set_ylim(height - 0.5, -0.5)
        axes.axis("off")
        canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _draw_cv2(landmarks: np.ndarray, height: int, width: int, style: LandmarkStyle) -> np.ndarray:
    import cv2

    canvas = np.full((height, width), style.background, dtype=np.uint8)
    for group in style.groups:
        points = [(int(x), int(y)) for x, y in _chain(landmarks, group).tolist()]  # int(): truncation
        for start, end in zip(points[:-1], points[1:]):
            cv2.line(canvas, start, end, color=group.colour, thickness=int(style.width))
    return canvas


_RENDERERS = {"pillow": _draw_pillow, "matplotlib": _draw_matplotlib, "cv2": _draw_cv2}


def get_style(style: str | LandmarkStyle) -> LandmarkStyle:
    """A preset by name (see `STYLES`), or the given style itself."""
    if isinstance(style, LandmarkStyle):
        return style
    if style not in STYLES:
        raise InputError(f"unknown landmark drawing style {style!r}; choose one of {', '.join(STYLES)}")
    return STYLES[style]


def _checked_points(landmarks: np.ndarray, needed: int, what: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or len(landmarks) < needed:
        raise InputError(f"{what} needs ({needed}, 2) landmarks, got shape {landmarks.shape}")
    if not np.isfinite(landmarks[:needed]).all():
        raise InputError(f"{what}: landmarks hold NaN or infinite values")
    return landmarks


def draw_landmarks(
    landmarks: np.ndarray, size: int | tuple[int, int] | None = None, style: str | LandmarkStyle = "fsth"
) -> np.ndarray:
    """Rasterise landmarks in a method's style.

    Returns HxWx3 uint8 RGB for 'fsth', 'lsr' and 'lsr_fixed', HxW uint8 (0 or 255) for
    'vpgc68' and 'vpgc86'. `size` None takes the style's frame size (256, 224, 512).
    """
    spec = get_style(style)
    size = spec.default_size if size is None else size
    height, width = (size, size) if np.isscalar(size) else size
    label = f"style {style!r}" if isinstance(style, str) else f"{spec.renderer} style"
    landmarks = _checked_points(landmarks, spec.num_points, label)
    return _RENDERERS[spec.renderer](landmarks, int(height), int(width), spec)


def overlay_landmarks(image: np.ndarray, landmarks: np.ndarray, width: int | None = None) -> np.ndarray:
    """A copy of an RGB photo with the 68 points as dots joined in LSR's colours, for previews.

    `width` (line width in pixels, dots a little larger) defaults to one pixel per 256 of the
    shorter side.
    """
    from PIL import Image, ImageDraw

    photo = np.asarray(image, dtype=np.uint8)
    canvas = Image.fromarray(photo if photo.ndim == 3 else np.repeat(photo[..., None], 3, axis=2))
    landmarks = _checked_points(landmarks, 68, "overlay")
    width = width or max(1, round(min(photo.shape[:2]) / 256))
    _pillow_lines(canvas, landmarks, FACE68_ALL, width)
    draw, radius = ImageDraw.Draw(canvas), width + 1
    for group in FACE68_ALL:
        for x, y in landmarks[list(group.indices)].tolist():
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=group.colour)
    return np.asarray(canvas, dtype=np.uint8).copy()
