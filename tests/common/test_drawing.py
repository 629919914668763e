"""Landmark drawings: exact pixels per style, and the originals' call sequences on real landmarks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from common.drawing import STYLES, draw_landmarks, get_style, overlay_landmarks
from common.errors import InputError

WHITE, BLACK = (255, 255, 255), (0, 0, 0)
GREEN, ORANGE, BLUE, RED = (0, 128, 0), (255, 165, 0), (0, 0, 255), (255, 0, 0)
PURPLE, PINK = (128, 0, 128), (255, 192, 203)
SPANS = [(0, 17), (17, 22), (22, 27), (27, 31), (31, 36), (36, 42), (42, 48), (48, 60), (60, 68)]
NAMES = ["green", "orange", "orange", "blue", "blue", "red", "red", "purple", "pink"]


def face68() -> np.ndarray:
    """68 points: jaw horizontal at y=200, hexagon eyes, elliptic lips, each group on its own."""
    p = np.zeros((68, 2))
    p[0:17] = np.stack([np.arange(40, 201, 10), np.full(17, 200)], 1)
    p[17:22] = np.stack([np.arange(40, 81, 10), np.full(5, 40)], 1)
    p[22:27] = np.stack([np.arange(140, 181, 10), np.full(5, 40)], 1)
    p[27:31] = np.stack([np.full(4, 120), np.arange(60, 91, 10)], 1)
    p[31:36] = np.stack([np.arange(100, 141, 10), np.full(5, 110)], 1)
    eye = np.array([(50, 70), (60, 60), (70, 60), (80, 70), (70, 80), (60, 80)])
    p[36:42], p[42:48] = eye, eye + (100, 0)
    t = np.linspace(np.pi, 3 * np.pi, 12, endpoint=False)
    p[48:60] = np.stack([120 + 40 * np.cos(t), 150 + 20 * np.sin(t)], 1)
    t = np.linspace(np.pi, 3 * np.pi, 8, endpoint=False)
    p[60:68] = np.stack([120 + 24 * np.cos(t), 150 + 8 * np.sin(t)], 1)
    return p.astype(np.float32)


def gap(lm: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """(row, col) of the pixel midway between points a and b."""
    x, y = (lm[a] + lm[b]) / 2
    return int(y), int(x)


EYE_GAP = gap(face68(), 41, 36)  # on the segment a closed eye polyline would add
LIP_GAP = gap(face68(), 59, 48)


@pytest.fixture(scope="module")
def real68(astronaut):
    """dlib's landmarks of the astronaut moved into a 224 frame: float32 with fractions, like FAN's."""
    from common.landmarks import LandmarkDetector

    return LandmarkDetector().detect(astronaut) - np.float32([100.3, 40.3])


# --------------------------------------------------------------------------------------- fsth
def test_fsth_white_canvas_pillow_width3_exact_colours():
    img = draw_landmarks(face68(), 256, "fsth")
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == WHITE
    # horizontal jaw at y=200, width 3: rows 199-201 exactly green, aliased (no blending)
    assert [tuple(c) for c in img[197:204, 100]] == [WHITE, WHITE, GREEN, GREEN, GREEN, WHITE, WHITE]
    assert tuple(img[40, 60]) == ORANGE and tuple(img[75, 120]) == BLUE and tuple(img[70, 50]) == RED
    assert tuple(img[EYE_GAP]) == WHITE  # eyes are open polylines
    assert tuple(img[LIP_GAP]) == WHITE  # outer lips too
    assert tuple(img[150, 96]) == WHITE  # inner lips (x 96..144) are not drawn
    assert {tuple(c) for c in img.reshape(-1, 3)} == {WHITE, GREEN, ORANGE, BLUE, RED, PURPLE}


def test_fsth_matches_the_originals_pillow_calls(real68):
    from PIL import Image, ImageDraw

    expected = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(expected)
    for (a, b), colour in list(zip(SPANS, NAMES))[:-1]:  # FSTH: numpy slices, named colours
        draw.line(real68[a:b, :], fill=colour, width=3)
    assert np.array_equal(draw_landmarks(real68, 256, "fsth"), np.asarray(expected))
    # float coordinates reach Pillow unrounded: a sub-pixel shift changes the drawing
    assert not np.array_equal(draw_landmarks(real68 + 0.4, 256, "fsth"), np.asarray(expected))


# ---------------------------------------------------------------------------------------- lsr
def lsr_reference(preds: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """LSR's drawing call sequence (pyplot figure, imshow of zeros, one plot per group)."""
    from matplotlib import pyplot as plt

    fig = plt.figure(figsize=(shape[1] / 100, shape[0] / 100), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(np.zeros(shape))
    plt.subplots_adjust(left=0, right=1, top=1, bottom=0)
    for (a, b), colour in zip(SPANS, NAMES):
        ax.plot(preds[a:b, 0], preds[a:b, 1], marker="", markersize=5, linestyle="-", color=colour, lw=2)
    ax.axis("off")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def test_lsr_black_canvas_antialiased_colours():
    img = draw_landmarks(face68(), (256, 240), "lsr")
    assert img.shape == (256, 240, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == BLACK
    # lw=2 points = 2.78 px: one full-colour row, partly covered neighbours (antialiasing).
    # Agg snaps this axis-aligned line at y=200 to row 201, as it did for the original.
    column = img[198:205, 100]
    assert tuple(column[3]) == GREEN
    assert tuple(column[2]) == tuple(column[4]) and 0 < column[2, 1] < 128
    assert tuple(column[0]) == BLACK and tuple(column[6]) == BLACK
    assert tuple(img[EYE_GAP]) == BLACK and tuple(img[LIP_GAP]) == BLACK  # open eyes and lips
    lm = face68()
    lm[60:68] = np.linspace((100, 140), (140, 160), 8)  # a diagonal inner lip: no snapping
    assert tuple(draw_landmarks(lm, 256, "lsr")[150, 120]) == PINK
    jaw = img[190:210]
    lit = jaw.any(axis=2)
    assert lit.sum() > 400 and np.all(jaw[lit][:, [0, 2]] == 0)  # shades of green on black only


@pytest.mark.parametrize("shape", [(224, 224, 3), (200, 256, 3)])
def test_lsr_matches_the_originals_matplotlib_calls(real68, shape):
    expected = lsr_reference(real68, shape)
    assert np.array_equal(draw_landmarks(real68, shape[:2], "lsr"), expected)
    assert np.array_equal(draw_landmarks(real68, shape[:2], "lsr_fixed"), expected)  # all points inside


def test_lsr_points_outside_the_frame_rescale_like_the_original_unless_fixed(real68):
    lm = real68 + (0, 120)  # chin and mouth below a 224 frame
    faithful = draw_landmarks(lm, 224, "lsr")
    assert np.array_equal(faithful, lsr_reference(lm, (224, 224, 3)))
    assert np.all(faithful[:, 0] == 255)  # the axes shrank: the white figure shows at the side
    fixed = draw_landmarks(lm, 224, "lsr_fixed")
    assert not np.any(np.all(fixed == 255, axis=2))  # black frame, drawing clipped at its edge
    tall = draw_landmarks(lm, (400, 224), "lsr")  # every point inside: no rescaling
    assert np.array_equal(fixed[:220], tall[:220])  # pinned axes keep pixel coordinates (clipping aside)


def test_lsr_odd_sizes_keep_every_pixel():
    # Agg truncates inches*dpi: 29/100*100 = 28.999... would lose a column (the original did)
    assert draw_landmarks(face68() / 10, (57, 29), "lsr").shape == (57, 29, 3)


# --------------------------------------------------------------------------------------- vpgc
def vpgc_reference(lm: np.ndarray, chains: list[tuple[list[int], bool]], size: int = 512) -> np.ndarray:
    """VPGC's loop: int() per point, one cv2.line per segment, the closing one for loops."""
    import cv2

    canvas = np.zeros((size, size), np.uint8)
    for indices, closed in chains:
        ends = list(zip(indices[:-1], indices[1:])) + ([(indices[-1], indices[0])] if closed else [])
        for a, b in ends:
            cv2.line(canvas, (int(lm[a][0]), int(lm[a][1])), (int(lm[b][0]), int(lm[b][1])), thickness=2, color=255)
    return canvas


def test_vpgc68_binary_cv2_lines_closed_eyes_and_mouth():
    img = draw_landmarks(face68(), None, "vpgc68")
    assert img.shape == (512, 512) and img.dtype == np.uint8
    assert set(np.unique(img)) == {0, 255}
    assert img[EYE_GAP] == 255 and img[LIP_GAP] == 255  # 41->36 and 59->48 closed
    assert img[150, 96] == 255  # inner mouth drawn (point 60)
    assert img[40, 110] == 0  # brows are open: nothing joins 21 and 22
    assert img[150, 200] == 0 and img[300, 300] == 0


def test_vpgc68_matches_the_originals_loop_and_truncates(real68):
    r = lambda a, b: list(range(a, b))  # noqa: E731
    chains = [
        (r(48, 60), True),
        (r(60, 68), True),
        (r(36, 42), True),
        (r(42, 48), True),
        (r(17, 22), False),
        (r(22, 27), False),
        (r(27, 31), False),
        (r(31, 36), False),
        (r(0, 17), False),
    ]
    lm = real68 * 2
    assert np.array_equal(draw_landmarks(lm, 512, "vpgc68"), vpgc_reference(lm, chains))
    grid = np.round(face68())
    assert np.array_equal(draw_landmarks(grid + 0.9, 256, "vpgc68"), draw_landmarks(grid, 256, "vpgc68"))
    assert not np.array_equal(draw_landmarks(grid + 1.0, 256, "vpgc68"), draw_landmarks(grid, 256, "vpgc68"))


VPGC86 = [
    ([66, 72, 67, 68, 69, 73, 70, 74, 85, 71, 84, 75], True),
    ([76, 78, 79, 80, 77, 83, 82, 81], True),
    ([35, 36, 41, 37, 38, 39, 42, 40], True),
    ([43, 44, 49, 45, 46, 47, 50, 48], True),
    ([17, 18, 19, 20, 21, 25, 24, 23, 22], True),
    ([26, 27, 28, 29, 30, 34, 33, 32, 31], True),
    ([51, 52, 53, 54], False),
    ([57, 59, 61, 62, 63, 64, 65, 60, 58], False),
    (list(range(17)), False),
]


def face86() -> np.ndarray:
    """86 points: each VPGC-86 chain on a circle of its own grid cell, in drawing order."""
    p = np.zeros((86, 2))
    for cell, (indices, _) in enumerate(VPGC86):
        t = np.linspace(0, 2 * np.pi, len(indices), endpoint=False)
        centre = (60 + 120 * (cell % 4), 60 + 120 * (cell // 4))
        p[indices] = np.stack([centre[0] + 40 * np.cos(t), centre[1] + 40 * np.sin(t)], 1)
    return p


def test_vpgc86_chains_closed_and_open():
    lm = face86()
    img = draw_landmarks(lm, 512, "vpgc86")
    assert img.shape == (512, 512) and np.array_equal(img, vpgc_reference(lm, VPGC86))

    def at(a, b):
        return img[gap(lm, a, b)]

    assert at(22, 17) == 255 and at(31, 26) == 255  # brows: closed loops, lower edge back to 17/26
    assert at(21, 25) == 255 and at(21, 22) == 0  # ... which turn at 21 -> 25
    assert at(40, 35) == 255 and at(48, 43) == 255  # 8-point eyes closed, order 35, 36, 41, 37...
    assert at(36, 41) == 255 and at(36, 37) == 0
    assert at(75, 66) == 255 and at(81, 76) == 255  # mouths closed
    assert at(54, 51) == 0 and at(58, 57) == 0 and at(16, 0) == 0  # nose and jaw open
    with pytest.raises(InputError, match=r"\(86, 2\)"):
        draw_landmarks(face68(), 512, "vpgc86")


# ------------------------------------------------------------------------------------- shared
def test_styles_are_data_and_variants_use_the_same_renderers():
    assert get_style("fsth") is STYLES["fsth"]
    thin = replace(STYLES["fsth"], width=1)
    img = draw_landmarks(face68(), 256, thin)
    assert [tuple(c) for c in img[199:202, 100]] == [WHITE, GREEN, WHITE]
    no_mouth = replace(STYLES["vpgc68"], groups=STYLES["vpgc68"].groups[2:])  # VPGC's draw_mouth=False
    assert draw_landmarks(face68(), 256, no_mouth)[LIP_GAP] == 0


def test_bad_style_or_points_are_one_line_errors():
    with pytest.raises(InputError, match="unknown landmark drawing style 'x'"):
        draw_landmarks(face68(), 256, "x")
    with pytest.raises(InputError, match=r"needs \(68, 2\)"):
        draw_landmarks(face68()[:60], 256, "lsr")
    bad = face68()
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        draw_landmarks(bad, 256, "vpgc68")


def closed_face68() -> np.ndarray:
    """face68 with closed eyes and inner lips: the lids on the same points, as dlib's whole pixels give."""
    lm = face68()
    lm[[37, 38]], lm[[43, 44]], lm[61:64] = lm[[41, 40]], lm[[47, 46]], lm[[67, 66, 65]]
    return lm


def test_coincident_points_draw():
    collapsed = np.full((86, 2), 100.0)  # a face too small for distinct points
    for points in (closed_face68(), collapsed):
        for name, style in STYLES.items():
            if style.num_points <= len(points):
                assert draw_landmarks(points, 256, name).shape[:2] == (256, 256)
        assert overlay_landmarks(np.zeros((256, 256, 3), np.uint8), points).shape == (256, 256, 3)
    assert tuple(draw_landmarks(closed_face68(), 256, "fsth")[70, 50]) == RED  # the closed eye's corner


def test_overlay_draws_on_a_copy_of_the_photo():
    photo = np.full((256, 256, 3), 90, np.uint8)
    out = overlay_landmarks(photo, face68())
    assert out.shape == photo.shape and out.dtype == np.uint8 and np.all(photo == 90)
    assert tuple(out[200, 40]) == GREEN and tuple(out[150, 96]) == PINK  # dots and lines, LSR colours
    assert tuple(out[5, 5]) == (90, 90, 90)
    assert overlay_landmarks(photo[..., 0], face68()).shape == (256, 256, 3)
