"""Landmark drawings: exact pixels per style on a synthetic face whose groups are far apart."""
from __future__ import annotations

import numpy as np
import pytest

from common.drawing import STYLES, draw_landmarks, overlay_landmarks
from common.errors import InputError

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


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


EYE_GAP = gap(face68(), 41, 36)  # the segment a closed eye polyline would add
LIP_GAP = gap(face68(), 59, 48)


def test_fsth_white_canvas_pillow_width3_exact_colours():
    img = draw_landmarks(face68(), 256, "fsth")
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == WHITE
    # horizontal jaw at y=200, width 3: rows 199-201 exactly green, aliased (no blending)
    assert [tuple(c) for c in img[197:204, 100]] == [WHITE, WHITE, (0, 128, 0), (0, 128, 0), (0, 128, 0), WHITE, WHITE]
    assert tuple(img[40, 60]) == (255, 165, 0)   # brow
    assert tuple(img[75, 120]) == (0, 0, 255)    # nose bridge
    assert tuple(img[70, 65 - 15]) == (255, 0, 0)  # eye corner 36
    assert tuple(img[EYE_GAP]) == WHITE            # eyes are open polylines
    assert tuple(img[LIP_GAP]) == WHITE            # outer lips too
    assert tuple(img[150, 96]) == WHITE            # inner lips (x 96..144) are not drawn
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert colours == {WHITE, (0, 128, 0), (255, 165, 0), (0, 0, 255), (255, 0, 0), (128, 0, 128)}


def test_fsth_passes_float_coordinates_to_pillow_unrounded():
    from PIL import Image, ImageDraw

    lm = face68() + np.float32(0.4)
    expected = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(expected).line([tuple(p) for p in lm[0:17].tolist()], fill="green", width=3)
    got = draw_landmarks(lm, 256, "fsth")
    jaw = np.asarray(expected)[190:210]
    assert np.array_equal(got[190:210], jaw)


def test_lsr_black_canvas_antialiased_colours_and_pixel_centres():
    img = draw_landmarks(face68(), (256, 240), "lsr")
    assert img.shape == (256, 240, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == BLACK
    # lw=2 points = 2.78 px: the centre row is exact, its neighbours partly covered. Agg snaps
    # axis-aligned paths to pixel centres, which puts the line at y=200 on row 201 (so did the
    # original: the same matplotlib calls)
    column = img[198:205, 100]
    assert tuple(column[3]) == (0, 128, 0)
    assert tuple(column[2]) == tuple(column[4]) and 0 < column[2, 1] < 128
    assert tuple(column[0]) == BLACK and tuple(column[6]) == BLACK
    assert tuple(img[EYE_GAP]) == BLACK and tuple(img[LIP_GAP]) == BLACK
    # a landmark at (x, y) is drawn on pixel (x, y): a diagonal inner lip (not snapped) from
    # (100, 140) to (140, 160) has its ink centred on pixel (120, 150), not on (119.5, 149.5)
    lm = face68()
    lm[60:68] = np.linspace((100, 140), (140, 160), 8)
    ink = draw_landmarks(lm, (256, 240), "lsr")[130:170, :, 1].astype(float)  # only pink has green here
    rows, cols = np.mgrid[130:170, 0:240]
    assert abs((ink * cols).sum() / ink.sum() - 120) < 0.1 and abs((ink * rows).sum() / ink.sum() - 150) < 0.1
    assert np.all(draw_landmarks(lm, 256, "lsr")[150, 120] == (255, 192, 203))
    # every drawn pixel of a group is a shade of its colour (antialiasing blends with black)
    jaw = img[190:210]
    lit = jaw.any(axis=2)
    assert lit.sum() > 400 and np.all(jaw[lit][:, [0, 2]] == 0)


def test_lsr_odd_sizes_keep_every_pixel():
    # Agg truncates inches*dpi: 29/100*100 = 28.999... would lose a column
    assert draw_landmarks(face68() / 10, (57, 29), "lsr").shape == (57, 29, 3)


def test_vpgc68_binary_cv2_lines_closed_eyes_and_mouth():
    img = draw_landmarks(face68(), None, "vpgc68")
    assert img.shape == (512, 512) and img.dtype == np.uint8
    assert set(np.unique(img)) == {0, 255}
    assert img[EYE_GAP] == 255 and img[LIP_GAP] == 255  # 41->36 and 59->48 closed
    assert img[150, 96] == 255                          # inner mouth drawn (point 60)
    assert img[40, 110] == 0                            # brows are open: no 21->22 or 26->17
    assert img[60, 280] == 0


def test_vpgc68_truncates_coordinates_like_int():
    lm = np.round(face68())
    assert np.array_equal(draw_landmarks(lm + 0.9, 256, "vpgc68"), draw_landmarks(lm, 256, "vpgc68"))
    assert not np.array_equal(draw_landmarks(lm + 1.0, 256, "vpgc68"), draw_landmarks(lm, 256, "vpgc68"))


def face86() -> np.ndarray:
    """86 points: each vpgc86 group on a circle of its own grid cell; unused points at (0, 0)."""
    p = np.zeros((86, 2))
    for cell, group in enumerate(STYLES["vpgc86"].groups):
        n = len(group.indices)
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        centre = (60 + 120 * (cell % 4), 60 + 120 * (cell // 4))
        p[list(group.indices)] = np.stack([centre[0] + 40 * np.cos(t), centre[1] + 40 * np.sin(t)], 1)
    return p


def test_vpgc86_closed_and_open_groups():
    lm = face86()
    img = draw_landmarks(lm, 512, "vpgc86")
    assert img.shape == (512, 512)

    def at(a, b):
        return img[gap(lm, a, b)]

    assert at(25, 17) == 255 and at(34, 26) == 255       # brows closed
    assert at(40, 35) == 255 and at(48, 43) == 255       # 8-point eyes closed
    assert at(75, 66) == 255 and at(81, 76) == 255       # mouths closed
    assert at(54, 51) == 0 and at(58, 57) == 0 and at(16, 0) == 0  # nose and jaw open
    assert at(36, 41) == 255 and at(36, 37) == 0         # eye order 35,36,41,37,...
    with pytest.raises(InputError, match=r"\(86, 2\)"):
        draw_landmarks(face68(), 512, "vpgc86")


def test_bad_style_or_points_are_one_line_errors():
    with pytest.raises(InputError, match="unknown landmark drawing style 'x'"):
        draw_landmarks(face68(), 256, "x")
    with pytest.raises(InputError, match=r"needs \(68, 2\)"):
        draw_landmarks(face68()[:60], 256, "lsr")


def test_overlay_marks_points_on_a_copy():
    photo = np.full((256, 256, 3), 90, np.uint8)
    out = overlay_landmarks(photo, face68())
    assert out.shape == photo.shape and np.all(photo == 90)
    assert tuple(out[200, 40]) == (0, 255, 0) and tuple(out[5, 5]) == (90, 90, 90)
