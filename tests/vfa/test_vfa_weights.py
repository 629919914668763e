"""Controlling weights (fact sheet 4.4): the faithful per-vertex heat solves against a plain
restatement with potpourri3d, the fast path's difference, and the cache files.

Measured once (not in this suite: 15 minutes) on a 189 x 189 heightfield, 35,721 vertices and
70,688 faces like a BFM09 avatar, 180 controllers, k = 10, one thread on a shared 2-core machine:
faithful 877 s, fast 11.4 s (77x). Controller weights: the same 10 controllers for 93% of the
vertices, largest weight difference 0.076, mean L1 distance between weight rows 0.016. After
blending a smooth controller motion and 5 smoothing passes the vertex displacements differ by
1.3% of their mean size on average and 4.8% of the largest at most.
"""

from __future__ import annotations

import numpy as np
import potpourri3d
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from vfa import weights as vw
from vfa.animate import blend_displacements, laplacian_smooth


def heightfield(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    z = 0.45 * np.exp(-(x**2 / 0.5 + y**2 / 0.8))
    vertices = np.stack([x.ravel(), y.ravel() * 1.07, z.ravel()], 1)
    ids = np.arange(n * n).reshape(n, n)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    return vertices, np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])


def some_corners(faces: np.ndarray, count: int = 30, seed: int = 0) -> np.ndarray:
    return faces[np.random.default_rng(seed).choice(len(faces), count, replace=False)]


def test_inverse_square_weights():
    distances = np.array([[0.0, 0.1, 1.0]])
    raw = 1 / (distances**2 + 1e-3)
    assert_close(vw.inverse_square_weights(distances), raw / raw.sum(), ROUNDING, "weights")
    ids, weights = vw.nearest(np.array([[5.0, 0.2, 3.0, 0.1, 9.0]]), 2)
    assert sorted(ids[0]) == [1, 3]
    assert weights.sum() == pytest.approx(1.0)


def test_faithful_matches_one_heat_solve_per_vertex():
    vertices, faces = heightfield(16)
    corners = some_corners(faces, 20)
    k = 6
    got = vw.geodesic_weights(vertices, faces, corners, k=k, show_progress=False)
    solver = potpourri3d.MeshHeatMethodDistanceSolver(vertices, faces)
    for vertex in range(0, len(vertices), 7):
        distance = solver.compute_distance(vertex)
        to_controllers = np.array([distance[c].min() for c in corners])
        ids = np.argpartition(to_controllers, k)[:k]
        raw = 1 / (to_controllers[ids] ** 2 + 1e-3)
        assert list(got.index[vertex]) == list(ids)
        assert_close(got.weights[vertex], (raw / raw.sum()).astype(np.float32), ROUNDING, "weights")
        lap = np.argpartition(distance, k)[:k]
        raw = 1 / (distance[lap] ** 2 + 1e-3)
        assert list(got.index_lap[vertex]) == list(lap)
        assert_close(got.weights_lap[vertex], (raw / raw.sum()).astype(np.float32), ROUNDING, "weights_lap")
    assert got.weights.dtype == got.weights_lap.dtype == np.float32
    assert got.index.dtype == got.index_lap.dtype == np.int64


def test_fast_path_is_close_to_the_faithful_one():
    """Both give a smooth controller motion nearly the same vertex displacement. On this coarse
    900-vertex grid the mean difference is 8% of the mean displacement (5% from the controller
    weights, 3% from the stencil), on a 3,600-vertex one 4%: the heat method's asymmetry shrinks
    with the edge length."""
    vertices, faces = heightfield(30)
    corners = some_corners(faces, 40, seed=1)
    faithful = vw.geodesic_weights(vertices, faces, corners, show_progress=False)
    fast = vw.geodesic_weights(vertices, faces, corners, method="fast", show_progress=False)
    same_sets = np.mean([set(a) == set(b) for a, b in zip(faithful.index, fast.index)])
    assert same_sets > 0.8
    centres = vertices[corners].mean(axis=1)
    motion = np.stack([0.05 * np.sin(3 * centres[:, 0] + i) * np.cos(2 * centres[:, 1]) for i in range(3)], 1)
    none = np.zeros(len(corners), bool)
    moved = [
        laplacian_smooth(blend_displacements(w.weights, w.index, motion, none), w.weights_lap, w.index_lap)
        for w in (faithful, fast)
    ]
    difference = np.linalg.norm(moved[0] - moved[1], axis=1)
    assert difference.mean() < 0.1 * np.linalg.norm(moved[0], axis=1).mean()
    assert difference.max() < 0.15 * np.linalg.norm(moved[0], axis=1).max()


def test_fast_stencil_is_the_nearest_surface_vertices():
    vertices, faces = heightfield(12)
    ids, weights = vw._surface_stencil(vertices, faces, 5)
    assert (ids[:, :5] == ids).all() and weights.shape == (len(vertices), 5)
    assert all(vertex in row for vertex, row in enumerate(ids))  # itself, at distance 0
    distance = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    for vertex in (0, 30, 77):  # on this regular grid the 5 nearest are within 3 rings
        assert np.sort(distance[vertex, ids[vertex]]) == pytest.approx(np.sort(distance[vertex])[:5])


def test_controller_corners_and_bad_requests():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    pix_to_face = -np.ones((4, 4), np.int64)
    pix_to_face[1, 2], pix_to_face[3, 0] = 1, 0
    assert vw.controller_corners(np.array([[2, 1], [0, 3]]), pix_to_face, faces).tolist() == [[2, 1, 3], [0, 1, 2]]
    with pytest.raises(InputError, match="controller 1 at pixel \\[1, 1\\] is not on the rendered avatar"):
        vw.controller_corners(np.array([[2, 1], [1, 1]]), pix_to_face, faces)
    vertices, mesh_faces = heightfield(8)
    with pytest.raises(InputError, match="only 5 controllers were found, need more than --weights_k 10"):
        vw.geodesic_weights(vertices, mesh_faces, some_corners(mesh_faces, 5), show_progress=False)
    with pytest.raises(InputError, match="unknown weights method"):
        vw.geodesic_weights(vertices, mesh_faces, some_corners(mesh_faces, 20), method="exact")


def test_cache_round_trip_and_stale_files(tmp_path):
    vertices, faces = heightfield(10)
    control = vw.geodesic_weights(vertices, faces, some_corners(faces, 15), k=4, method="fast", show_progress=False)
    assert vw.load_weights(tmp_path, "woman", len(vertices), 15) is None
    vw.save_weights(tmp_path, "woman", control)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "woman_index.npy",
        "woman_index_lap.npy",
        "woman_weights.npy",
        "woman_weights_lap.npy",
    ]
    loaded = vw.load_weights(tmp_path, "woman", len(vertices), 15)
    for part in vw.CACHE_PARTS:
        assert np.array_equal(getattr(loaded, part), getattr(control, part))
    with pytest.raises(InputError, match="do not fit this avatar.*--calc_weights"):
        vw.load_weights(tmp_path, "woman", len(vertices) + 1, 15)
    with pytest.raises(InputError, match="do not fit this avatar"):
        vw.load_weights(tmp_path, "woman", len(vertices), 3)  # index refers to controllers >= 3
