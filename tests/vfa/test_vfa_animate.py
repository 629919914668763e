"""The retargeting loop (fact sheet 4.2, 4.5): normalisation, backward-to-forward flow, controller
tracking with its untracked rules, blending, smoothing, the two views, the start-frame search,
and one animated frame of the photo heightfield avatar through a random-weight generator."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from numerics import ROUNDING, assert_close
from vfa_infer_testlib import photo_heightfield, sample_photo_rgb

from common.errors import InputError, NoFaceError
from common.landmarks import Face
from vfa import animate
from vfa.bfm import rotation_matrix
from vfa.controllers import Controllers, find_controllers
from vfa.model import Generator
from vfa.render import Camera, render_source, screen_to_world
from vfa.weights import controller_corners, geodesic_weights


def test_norm_image_swaps_colour_and_scales_depth():
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 255  # blue in BGR
    depth = np.array([[0, 10, 20, 30]] * 4, np.float32)
    rgbd = animate.norm_image(colour, depth)[0]
    assert rgbd.shape == (4, 4, 4) and rgbd.dtype == torch.float32
    assert (rgbd[2] == 1).all() and (rgbd[0] == -1).all()  # B of BGR -> channel 2 of RGB
    assert rgbd[3, 0].tolist() == [-1.0, -1.0, 0.0, 1.0]  # background and nearest both -1
    with pytest.raises(InputError, match="frame 3: the depth map has no foreground"):
        animate.norm_image(colour, np.zeros((4, 4)), name="frame 3")


def test_depth_to_uint16():
    depth = np.array([[-2.0, -1.0], [0.0, 0.5]], np.float32)
    assert animate.depth_to_uint16(depth).tolist() == [[0, 0], [43690, 65535]]
    assert not animate.depth_to_uint16(np.zeros((2, 2))).any()


def reference_forward(flow_px: np.ndarray, pixel) -> np.ndarray | None:
    """The forward position of `pixel` restated with dictionaries, one target pixel at a time."""
    registered, shares = defaultdict(list), defaultdict(list)
    height, width = flow_px.shape[:2]
    for column in range(width):
        for row in range(height):
            x, y = flow_px[row, column]
            x0, y0 = int(x), int(y)
            for dx, dy, share in (
                (0, 0, (x0 + 1 - x) * (y0 + 1 - y)),
                (1, 0, (x - x0) * (y0 + 1 - y)),
                (0, 1, (x0 + 1 - x) * (y - y0)),
                (1, 1, (x - x0) * (y - y0)),
            ):
                registered[(x0 + dx, y0 + dy)].append((column, row))
                shares[(x0 + dx, y0 + dy)].append(share)
    if tuple(pixel) not in registered:
        return None
    share = np.array(shares[tuple(pixel)])
    return (np.array(registered[tuple(pixel)]) * (share / share.sum())[:, None]).sum(0)


def test_forward_positions_match_the_splatting_rule():
    rng = np.random.default_rng(0)
    size = 24
    rows, columns = np.mgrid[0:size, 0:size]
    flow_px = np.stack([columns + rng.normal(0, 1.5, (size, size)), rows + rng.normal(0, 1.5, (size, size))], -1)
    flow_px = flow_px.astype(np.float32)
    pixels = rng.integers(0, size, (40, 2))
    got = animate.forward_positions(flow_px, pixels)
    for pixel, position in zip(pixels, got):
        expected = reference_forward(flow_px, pixel)
        if expected is None:
            assert np.isnan(position).all()
        else:
            assert_close(position, expected, ROUNDING, f"forward position of {pixel}")


def controllers_at(pixels, depth: float) -> Controllers:
    pixels = np.asarray(pixels, np.float64)
    points = np.concatenate([pixels, np.full((len(pixels), 1), np.float32(1) / np.float32(depth))], 1)
    return Controllers(points, ("other",) * len(pixels), np.arange(len(pixels)))


def shifted_flow(shift_px: float, size: int = 256) -> np.ndarray:
    """A backward flow (grid_sample coordinates) whose target pixel (c, r) samples (c - shift, r)."""
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.stack([(columns - shift_px) / size * 2 - 1, rows / size * 2 - 1], -1)


def test_tracking_a_shift_and_the_untracked_rules():
    camera = Camera.looking_at_origin()
    depth = np.full((256, 256), 40000, np.uint16)
    depth[:, :20] = 0  # background on the left
    depth[100:110, 150:160] = 65535  # a depth jump
    flat = [[40 + 8 * i, 200] for i in range(20)]  # enough ordinary jumps for mean + 2 std to single one out
    controllers = controllers_at([[60, 80], [100, 120], [253, 40], [149, 104], [10, 10]] + flat, depth=7.5)
    tracking = animate.track_controllers(shifted_flow(2.0), depth, controllers, camera, 7.5, 8.1)
    # all move 2 px right; untracked: the one landing on column 255, the one jumping onto the
    # raised block, the one on background depth
    assert tracking.untracked.tolist() == [False, False, True, True, True] + [False] * 20
    mapped = np.float32(40000 / 65535) * np.float32(8.1 - 7.5) + np.float32(7.5)
    for c in (0, 1):
        x, y = controllers.points[c, :2]
        assert tracking.targets[c].tolist() == pytest.approx([x + 2, y, 1 / mapped], rel=1e-6)
        before = screen_to_world(controllers.points[c : c + 1], camera)
        after = screen_to_world(np.array([[x + 2, y, 1 / mapped]]), camera)
        assert_close(tracking.translations[c], (after - before)[0], ROUNDING, "translation")
    assert not tracking.translations[2:5].any()


def test_blending_drops_untracked_controllers():
    weights = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]], np.float32)
    index = np.array([[0, 1], [1, 2], [2, 0]])
    translations = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    everyone = animate.blend_displacements(weights, index, translations, np.zeros(3, bool))
    assert everyone.tolist() == [[0.5, 0.5, 0], [0, 0.25, 0.75], [0, 0, 1]]
    without_1 = animate.blend_displacements(weights, index, translations, np.array([False, True, False]))
    assert without_1.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    # controller 2 untracked leaves vertex 2 with no weight at all: the whole frame stays still
    assert not animate.blend_displacements(weights, index, translations, np.array([True, False, True])).any()


def test_laplacian_smoothing():
    displacement = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 3.0]])
    weights_lap = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], np.float32)
    index_lap = np.array([[0, 1], [1, 0], [2, 1]])
    once = animate.laplacian_smooth(displacement, weights_lap, index_lap, times=1, lam=0.6)
    expected = 0.6 * np.array([[0.5, 0, 0], [0.5, 0, 0], [0, 0, 3.0]]) + 0.4 * displacement
    assert_close(once, expected, ROUNDING, "one pass")
    constant = np.ones((3, 3))
    assert_close(animate.laplacian_smooth(constant, weights_lap, index_lap), constant, ROUNDING, "constant")


def test_rotated_view():
    vertices = np.random.default_rng(0).normal(size=(5, 3))
    expected = vertices @ rotation_matrix(animate.ROTATED_VIEW_ANGLES) + [-0.1, 0, 0]
    assert_close(animate.rotated_view(vertices), expected, ROUNDING, "rotated view")


class StubDetector:
    """Landmarks keyed by the image's mean colour level: a square at a given aspect ratio."""

    def __init__(self, shapes: dict[int, float | None]):
        self.shapes = shapes

    def _points(self, image):
        aspect = self.shapes[int(round(image.mean()))]
        if aspect is None:
            return None
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]]) * [1.0, aspect]
        return np.tile(corners, (14, 1))[:68] * 50 + 10

    def detect(self, image, name=None):
        points = self._points(image)
        if points is None:
            raise NoFaceError(f"{name}: no face found")
        return points

    def detect_all(self, image):
        points = self._points(image)
        return [] if points is None else [Face(points, np.zeros(4), 1.0)]


def flat_rgbd(level: int) -> torch.Tensor:
    return torch.full((1, 4, 8, 8), level / 255 * 2 - 1)


def test_find_best_frame():
    detector = StubDetector({100: 1.0, 10: 2.0, 20: None, 30: 1.1, 40: 0.5})
    frames = [flat_rgbd(level) for level in (10, 20, 30, 40)]
    assert animate.find_best_frame(flat_rgbd(100), frames, detector) == 2  # nearest in shape, not size
    assert animate.find_best_frame(flat_rgbd(100), frames[1:2], detector) == 0  # no face anywhere: frame 0
    with pytest.raises(NoFaceError, match="--find_best: rendered avatar: no face"):
        animate.find_best_frame(flat_rgbd(20), frames, detector)


@pytest.fixture(scope="module")
def photo_avatar():
    source = render_source(photo_heightfield(sample_photo_rgb(), grid=48))
    controllers = find_controllers(source.colour_bgr, source.zbuf)
    corners = controller_corners(controllers.pixels, source.pix_to_face, source.mesh.faces)
    control = geodesic_weights(source.mesh.vertices, source.mesh.faces, corners, method="fast", show_progress=False)
    return source, controllers, control


def test_one_animated_frame(photo_avatar):
    source, controllers, control = photo_avatar
    torch.manual_seed(0)
    generator = Generator(size=256, in_channels=4, distilling=True).eval()
    source_rgbd = animate.norm_image(source.colour_bgr_float, source.zbuf)
    animator = animate.Animator(generator, source, source_rgbd, controllers, control)
    with pytest.raises(RuntimeError, match="set_start"):
        animator.animate(source_rgbd)
    animator.set_start(source_rgbd)
    result = animator.animate(source_rgbd)
    assert result.rgb.shape == (3, 256, 256) and result.depth_u16.dtype == np.uint16
    assert result.displacement.shape == source.mesh.vertices.shape and np.isfinite(result.displacement).all()
    assert result.tracking.untracked.shape == (len(controllers),)
    for view in (result.front, result.rotated):
        assert view.shape == (256, 256, 3) and view.min() == -1.0 and view.max() == 1.0
    still = animator.render_views(np.zeros_like(result.displacement))[0]
    assert np.abs(still - result.front).max() > 0 or not result.displacement.any()
