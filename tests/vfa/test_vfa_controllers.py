"""Controller selection (fact sheet 4.3) and the mediapipe FaceMesh wrapper.

The rules are checked against a plain restatement of the fact sheet on random landmarks and a
z-buffer with steps, holes and background; FaceMesh runs for real on the sample's face photo
and on a render of the photo heightfield avatar (see vfa_infer_testlib).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from vfa_infer_testlib import photo_heightfield, sample_folder, sample_photo_rgb

from common.errors import InputError, NoFaceError
from vfa import controllers as ctl
from vfa.facemesh import NUM_LANDMARKS, face_mesh_landmarks, face_mesh_solution
from vfa.render import render_source


def reference_selection(landmarks: np.ndarray, zbuf: np.ndarray) -> list[tuple[int, int, int]]:
    """(landmark id, column, row) kept, restating the rules literally."""
    size_y, size_x = zbuf.shape
    delta = 0.05 * (zbuf.max() - zbuf[zbuf > 0].min())
    kept = []

    def pixel(i):
        return int(landmarks[i, 0] * size_x), int(landmarks[i, 1] * size_y)

    def inside(x, y):
        return 0 <= x < size_x and 0 <= y < size_y and zbuf[y, x] > 0

    for i in ctl.UPPER_OUTER_LIP + ctl.LOWER_OUTER_LIP:
        x, y = pixel(i)
        if inside(x, y) and all((x, y) != (k[1], k[2]) for k in kept):
            kept.append((i, x, y))
    for i in range(NUM_LANDMARKS):
        x, y = pixel(i)
        if i in ctl.EXTENDED_LIPS or not inside(x, y) or x > 205:
            continue
        if kept and min(abs(k[1] - x) + abs(k[2] - y) for k in kept) < 10:
            continue
        steps = []
        if x - 3 > 0:
            steps.append(zbuf[y, x - 3])
        if x + 3 < size_x:
            steps.append(zbuf[y, x + 3])
        if y - 3 > 0:
            steps.append(zbuf[y - 3, x])
        if y + 3 < size_y:
            steps.append(zbuf[y + 3, x])
        if any(abs(s - zbuf[y, x]) > delta for s in steps):
            continue
        kept.append((i, x, y))
    return kept


def stepped_zbuf(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 255.0
    zbuf = (7.5 + 0.3 * (x - 0.5) ** 2 + 0.2 * y).astype(np.float32)
    zbuf[(x - 0.5) ** 2 + (y - 0.5) ** 2 > 0.2] = -1.0  # background outside a disc
    zbuf[100:140, 60:70] += 0.5  # a step the smoothness test must see
    holes = rng.integers(0, 256, size=(200, 2))
    zbuf[holes[:, 0], holes[:, 1]] = -1.0
    return zbuf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_matches_the_rules(seed):
    rng = np.random.default_rng(seed)
    landmarks = rng.uniform(-0.02, 1.02, size=(NUM_LANDMARKS, 3)).astype(np.float32)
    landmarks[61] = landmarks[291]  # two lip points on one pixel: the second is a duplicate
    zbuf = stepped_zbuf(seed)
    chosen = ctl.select_controllers(landmarks, zbuf)
    expected = reference_selection(landmarks, zbuf)
    assert [tuple(p) for p in zip(chosen.landmark_ids, *chosen.pixels.T)] == expected
    assert chosen.points[:, 2] == pytest.approx([1.0 / zbuf[y, x] for _, x, y in expected], rel=1e-7)
    lips = ctl.UPPER_OUTER_LIP + ctl.LOWER_OUTER_LIP
    first_other = next(n for n, kind in enumerate(chosen.kinds) if kind == "other")
    assert all(i in lips for i in chosen.landmark_ids[:first_other])
    assert (chosen.pixels[first_other:, 0] <= ctl.MAX_X).all()


def test_lip_points_ignore_the_other_rules():
    zbuf = np.full((256, 256), 8.0, np.float32)
    landmarks = np.full((NUM_LANDMARKS, 3), 0.5, np.float32)
    landmarks[list(ctl.UPPER_OUTER_LIP), 0] = np.linspace(0.82, 0.86, len(ctl.UPPER_OUTER_LIP))  # x > 205
    chosen = ctl.select_controllers(landmarks, zbuf)
    # all 11 upper lip points although right of x = 205 and 1 px apart; of the lower ones only the
    # first (the rest share its pixel, and 61 is the upper list's first pixel again)
    assert chosen.kinds == ("lipsUpperOuter",) * 11 + ("lipsLowerOuter",)
    assert chosen.pixels[:11, 0].min() > ctl.MAX_X
    assert list(chosen.landmark_ids).count(61) == 1


def test_selection_needs_478_points_and_a_surface():
    with pytest.raises(InputError, match="478"):
        ctl.select_controllers(np.zeros((468, 3)), np.ones((256, 256)))
    with pytest.raises(InputError, match="no visible surface"):
        ctl.select_controllers(np.zeros((478, 3)), -np.ones((256, 256)))


def test_facemesh_on_the_sample_photo():
    photo = sample_photo_rgb()
    normalised = face_mesh_landmarks(photo)
    pixels = face_mesh_landmarks(photo, pixels=True)
    assert normalised.shape == pixels.shape == (NUM_LANDMARKS, 3)
    assert np.abs(pixels[:, :2] - normalised[:, :2] * 256).max() < 1.0  # same detection, scaled
    assert 0 < normalised[:, :2].min() and normalised[:, :2].max() < 1
    with pytest.raises(NoFaceError, match="blank: no face"):
        face_mesh_landmarks(np.full((256, 256, 3), 128, np.uint8), name="blank")


def test_controllers_on_a_rendered_avatar():
    source = render_source(photo_heightfield(sample_photo_rgb(), grid=64))
    chosen = ctl.find_controllers(source.colour_bgr, source.zbuf)
    assert 100 <= len(chosen) <= 200
    pixels = chosen.pixels
    assert (source.zbuf[pixels[:, 1], pixels[:, 0]] > 0).all()
    others = pixels[np.array(chosen.kinds) == "other"]
    l1 = np.abs(others[:, None] - others[None]).sum(-1) + 1000 * np.eye(len(others))
    assert l1.min() >= ctl.MIN_L1_DISTANCE
    picture = ctl.draw_controllers(source.colour_bgr, chosen)
    assert (picture[pixels[:, 1], pixels[:, 0]] == [0, 255, 255]).all(axis=1).sum() == len(others)


def test_no_face_on_the_render_is_one_clear_error():
    blank = np.full((256, 256, 3), 90, np.uint8)
    with pytest.raises(NoFaceError, match="no face found on the rendered avatar.*--adjust_camera"):
        ctl.find_controllers(blank, np.full((256, 256), 8.0, np.float32))


def test_missing_mediapipe_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(InputError, match="mediapipe is not installed.*0.10.14"):
        face_mesh_solution()


def test_sample_is_shared():
    assert (sample_folder() / "source.png").is_file()
