"""The CPU renderer on analytic scenes: camera, pixel centres, z-buffer, silhouette, Lambert shading."""

from __future__ import annotations

import time

import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from vfa.mesh import Mesh
from vfa.render import (
    Camera,
    look_at_view_transform,
    pixel_centre_ndc,
    rasterize,
    render,
    render_source,
    screen_to_ndc,
    screen_to_world,
    world_to_screen,
)

EYE = (0.0, 0.0, 8.0)
NDC_FOCAL = 1000.0 / 128.0


def quad(x0, x1, y0, y1, z, colour=(1.0, 1.0, 1.0)) -> Mesh:
    vertices = [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]]
    return Mesh(vertices, [[0, 1, 2], [0, 2, 3]], np.tile(colour, (4, 1)))


def icosphere(level: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5**0.5) / 2
    points = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t)]
    points += [(0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    vertices = [np.array(p, float) / np.linalg.norm(p) for p in points]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2)]
    faces += [(10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5)]
    faces += [(2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    middle: dict[tuple[int, int], int] = {}

    def midpoint(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in middle:
            point = vertices[a] + vertices[b]
            vertices.append(point / np.linalg.norm(point))
            middle[key] = len(vertices) - 1
        return middle[key]

    for _ in range(level):
        finer = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            finer += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = finer
    return np.array(vertices) * radius, np.array(faces)


def test_look_at_from_the_z_axis_matches_pytorch3d():
    rotation, translation = look_at_view_transform(EYE)
    assert_close(rotation, np.diag([-1.0, 1.0, -1.0]), ROUNDING, "R")
    assert_close(translation, [0.0, 0.0, 8.0], ROUNDING, "T")


def test_look_at_is_a_rigid_camera_at_the_eye():
    camera = Camera.looking_at_origin((1.5, 1.0, 7.0))
    assert_close(camera.rotation.T @ camera.rotation, np.eye(3), ROUNDING, "orthonormal")
    assert np.linalg.det(camera.rotation) == pytest.approx(1.0)
    assert_close(camera.centre, [1.5, 1.0, 7.0], ROUNDING, "centre")
    # the origin lies straight ahead, on +Z_view, at the eye's distance
    assert_close(camera.world_to_view(np.zeros((1, 3)))[0], [0, 0, np.sqrt(1.5**2 + 1 + 49)], ROUNDING, "view")
    with pytest.raises(InputError, match="up axis"):
        look_at_view_transform((0.0, 5.0, 0.0))


def test_screen_space_camera_converts_to_ndc_like_pytorch3d_0_3():
    camera = Camera.looking_at_origin(EYE)
    assert camera.ndc_focal == NDC_FOCAL and camera.ndc_principal_point.tolist() == [0.0, 0.0]
    ndc = camera.world_to_ndc(np.array([[0.4, -0.2, 1.0]]))[0]
    # view point (-0.4, -0.2, 7): NDC +X is to the left, so world +x maps to negative NDC x
    assert_close(ndc, [NDC_FOCAL * -0.4 / 7, NDC_FOCAL * -0.2 / 7, 1 / 7], ROUNDING, "ndc")


def test_projection_lands_on_the_expected_pixel_with_x_right_and_y_up():
    # Column centre c: c + 0.5 = 128 + 125 x; row centre r: r + 0.5 = 128 - 125 y (plane z = 0, eye at 8).
    x, y = (165.5 - 128) / 125, (128 - 102.5) / 125
    tiny = Mesh([[x - 0.002, y - 0.002, 0], [x + 0.003, y - 0.001, 0], [x, y + 0.003, 0]], [[0, 1, 2]], np.ones((3, 3)))
    fragments = rasterize(tiny.vertices, tiny.faces, Camera.looking_at_origin(EYE))
    assert np.argwhere(fragments.pix_to_face == 0).tolist() == [[102, 165]]


@pytest.mark.parametrize("plane_z", [0.0, -2.5])
def test_plane_gives_its_depth_and_pinhole_silhouette(plane_z):
    x0, x1, y0, y1 = -0.4977, 0.5223, -0.5029, 0.5171
    camera = Camera.looking_at_origin(EYE)
    rendering = render(quad(x0, x1, y0, y1, plane_z, colour=(0.2, 0.5, 0.8)), camera)
    depth = EYE[2] - plane_z
    # world x / y seen through each pixel centre (view X = -x, view Y = y at depth `depth`)
    x_at_column = -pixel_centre_ndc(np.arange(256)) / NDC_FOCAL * depth
    y_at_row = pixel_centre_ndc(np.arange(256)) / NDC_FOCAL * depth
    expected = ((y_at_row > y0) & (y_at_row < y1))[:, None] & ((x_at_column > x0) & (x_at_column < x1))[None, :]
    covered = rendering.pix_to_face >= 0
    assert np.array_equal(covered, expected)
    assert_close(rendering.zbuf[covered], np.full(covered.sum(), depth), ROUNDING, "zbuf")
    assert (rendering.zbuf[~covered] == -1).all() and (rendering.image[~covered] == 0).all()
    # the light at (0, 0, 1e5) is straight ahead: Lambert's cos = 1, colour = albedo (0.5 + 0.5)
    assert_close(rendering.image[covered], np.tile([0.2, 0.5, 0.8], (covered.sum(), 1)), ROUNDING, "colour")


def test_tilted_face_depth_is_screen_affine_as_pytorch3d_0_3():
    corners = np.array([[-0.6, -0.5, 1.5], [0.7, -0.4, -1.0], [0.0, 0.6, 0.2]])
    camera = Camera.looking_at_origin(EYE)
    fragments = rasterize(corners, np.array([[0, 1, 2]]), camera)
    rows, cols = np.nonzero(fragments.pix_to_face == 0)
    assert len(rows) > 1000
    ndc = camera.world_to_ndc(corners)
    pixels = np.stack([pixel_centre_ndc(cols), pixel_centre_ndc(rows), np.ones(len(rows))])
    weights = np.linalg.solve(np.vstack([ndc[:, :2].T, np.ones(3)]), pixels)  # screen-space barycentrics
    assert_close(fragments.zbuf[rows, cols], (1 / ndc[:, 2]) @ weights, ROUNDING, "affine zbuf")
    assert_close(fragments.bary[rows, cols], weights.T, ROUNDING, "bary")


def test_nearest_face_wins_without_backface_culling():
    far = quad(-0.5, 0.5, -0.5, 0.5, -1.0)
    near = quad(-0.2, 0.3, -0.3, 0.2, 1.0)
    faces = np.concatenate([far.faces, near.faces[:, ::-1] + 4])  # the near quad faces away
    mesh = Mesh(np.concatenate([far.vertices, near.vertices]), faces, np.ones((8, 3)))
    fragments = rasterize(mesh.vertices, mesh.faces, Camera.looking_at_origin(EYE))
    centre = fragments.pix_to_face[118:138, 118:138]
    assert set(np.unique(centre)) <= {2, 3} and np.allclose(fragments.zbuf[118:138, 118:138], 7.0)
    assert set(np.unique(fragments.pix_to_face[80:90, 80:90])) <= {0, 1}


def test_sphere_silhouette_depth_and_lambert_shading():
    radius, albedo = 0.6, 200.0
    vertices, faces = icosphere(4, radius)
    camera = Camera.looking_at_origin(EYE)
    rendering = render(Mesh(vertices, faces, np.full((len(vertices), 3), albedo)), camera)
    covered = rendering.pix_to_face >= 0
    silhouette_radius = 1000 * radius / np.sqrt(EYE[2] ** 2 - radius**2)  # pixels
    assert abs(np.sqrt(covered.sum() / np.pi) - silhouette_radius) < 1.0
    rows, cols = np.nonzero(covered)
    assert abs(rows.mean() - 127.5) < 0.05 and abs(cols.mean() - 127.5) < 0.05
    # the facets lie inside the sphere by at most their sagitta (~4e-4 here)
    assert abs(rendering.zbuf[127, 127] - (EYE[2] - radius)) < 1e-3

    # Ray through pixel centres -> analytic hit point, normal and Lambert term. The mesh's own
    # (area-weighted, interpolated) normals are off the sphere's by up to ~0.3% in this term.
    pick = [(127, 127), (128, 150), (100, 170), (60, 128), (190, 100), (127, 55)]
    for row, col in pick:
        direction = np.array([-pixel_centre_ndc(col) / NDC_FOCAL, pixel_centre_ndc(row) / NDC_FOCAL, -1.0])
        direction /= np.linalg.norm(direction)
        eye = np.array(EYE)
        b = eye @ direction
        t = -b - np.sqrt(b * b - (eye @ eye - radius**2))
        point = eye + t * direction
        to_light = np.array([0, 0, 1e5]) - point
        cosine = max(point / radius @ to_light / np.linalg.norm(to_light), 0.0)
        expected = albedo * (0.5 + 0.5 * cosine)
        assert rendering.image[row, col] == pytest.approx(np.full(3, expected), rel=1e-2), (row, col, cosine)


def test_unprojection_inverts_projection():
    camera = Camera.looking_at_origin((0.7, -0.4, 7.5))
    points = np.random.default_rng(3).uniform(-0.8, 0.8, (50, 3))
    screen = world_to_screen(points, camera)
    assert_close(screen_to_world(screen, camera), points, 1e-9, "round trip")
    # the optical axis lands half-way between the middle pixels; 1 - 2p/255 maps 0 and 255 to +-1
    assert_close(world_to_screen(np.zeros((1, 3)), camera)[0, :2], [127.5, 127.5], ROUNDING, "axis")
    assert screen_to_ndc(0.0) == 1.0 and screen_to_ndc(255.0) == -1.0


def test_render_source_recentres_stretches_and_reports_depth():
    mesh = quad(2.0, 3.0, 1.0, 2.0, 5.0, colour=(200.0, 100.0, 50.0))
    source = render_source(mesh, EYE, translation=(0.0, 0.0, 0.0))
    assert_close(source.mesh.vertices.mean(axis=0), [0, 0, 0], ROUNDING, "centroid")
    covered = source.pix_to_face >= 0
    assert source.depth_min == pytest.approx(8.0) and source.depth_max == pytest.approx(8.0)
    assert source.colour_bgr.dtype == np.uint8 and (source.colour_bgr[~covered] == 0).all()
    # min-max over the image: background 0 -> 0, the reddest value 200 -> 255; channels flipped to BGR
    assert source.colour_bgr[covered][0].tolist() == [63, 127, 255]
    assert_close(source.colour_bgr_float[covered][0], [255 / 4, 255 / 2, 255], ROUNDING, "float")
    with pytest.raises(InputError, match="not visible"):
        render_source(mesh, EYE, translation=(0.0, 0.0, 20.0))


def test_a_face_sized_mesh_rasterises_quickly():
    n = 189  # 35,721 vertices and 70,688 faces, about the BFM09 front face
    x, y = np.meshgrid(np.linspace(-0.75, 0.75, n), np.linspace(-0.9, 0.9, n))
    vertices = np.stack([x, y, 0.5 * np.exp(-(x**2 + y**2) / 0.3)], axis=-1).reshape(-1, 3)
    ids = np.arange(n * n).reshape(n, n)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, 1:].ravel(), ids[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    start = time.perf_counter()
    fragments = rasterize(vertices, faces, Camera.looking_at_origin(EYE))
    assert time.perf_counter() - start < 5.0  # ~0.15 s on one core; the bound only catches a lost vectorisation
    covered = fragments.pix_to_face >= 0
    assert covered.sum() > 40000 and fragments.zbuf[covered].min() > 7.4
