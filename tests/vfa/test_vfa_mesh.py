"""Avatar meshes: .obj round trip, default white, polygons, texture maps, re-centring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numerics import ROUNDING, assert_close

from common.errors import InputError
from vfa.mesh import Mesh, read_obj, recentred, write_obj


def test_obj_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    mesh = Mesh(rng.normal(size=(6, 3)), [[0, 1, 2], [2, 3, 4], [4, 5, 0]], rng.uniform(size=(6, 3)))
    write_obj(tmp_path / "avatar.obj", mesh)
    loaded = read_obj(tmp_path / "avatar.obj")
    assert_close(loaded.vertices, mesh.vertices, 1e-5, "vertices")  # written with 6 decimals
    assert loaded.faces.tolist() == mesh.faces.tolist()
    assert_close(loaded.colours, mesh.colours, 1e-5, "colours")


def test_no_colours_means_white_and_polygons_are_fans(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(
        "# a quad and a triangle with negative indices\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\nf -4 -2 -1\n"
    )
    mesh = read_obj(path)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    assert (mesh.colours == 1.0).all() and mesh.colours.dtype == np.float32


def test_vertex_colours_can_be_ignored_like_pytorch3d(tmp_path):
    path = tmp_path / "coloured.obj"
    path.write_text("v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nf 1 2 3\n")
    assert read_obj(path).colours.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert (read_obj(path, vertex_colours=False).colours == 1.0).all()


def test_texture_map_is_sampled_at_the_vertices(tmp_path):
    texture_rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)  # 2x2
    cv2.imwrite(str(tmp_path / "skin.png"), texture_rgb[..., ::-1])
    (tmp_path / "avatar.mtl").write_text("newmtl unused\nnewmtl skin\nmap_Kd skin.png\n")
    (tmp_path / "avatar.obj").write_text(
        "mtllib avatar.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 0 1\nvt 0.5 0.5\nusemtl skin\nf 1/1 2/2 3/3\nf 2/2 4/4 3/3\n"
    )
    colours = read_obj(tmp_path / "avatar.obj").colours
    # v = 0 is the bottom row of the image (align_corners=True: uv corners hit pixel centres)
    assert_close(colours[:3], [[0, 0, 1], [1, 1, 1], [1, 0, 0]], ROUNDING, "corners")
    assert_close(colours[3], [0.5, 0.5, 0.5], ROUNDING, "bilinear centre")


def test_recentred_moves_the_centroid_to_the_translation():
    mesh = Mesh([[1, 2, 3], [3, 2, 1], [2, 5, 2]], [[0, 1, 2]], np.ones((3, 3)))
    moved = recentred(mesh, (0.1, 0.0, -0.2))
    assert_close(moved.vertices.mean(axis=0), [0.1, 0.0, -0.2], ROUNDING, "centroid")
    assert_close(
        moved.vertices - mesh.vertices, np.tile(moved.vertices[0] - mesh.vertices[0], (3, 1)), ROUNDING, "rigid"
    )


def test_bad_obj_files_give_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_obj(tmp_path / "absent.obj")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 zero 0\n")
    with pytest.raises(InputError, match="bad.obj:2"):
        read_obj(tmp_path / "bad.obj")
    (tmp_path / "dangling.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n")
    with pytest.raises(InputError, match="vertex that does not exist"):
        read_obj(tmp_path / "dangling.obj")
    (tmp_path / "notex.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nusemtl a\nf 1/1 2/1 3/1\n")
    (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd missing.png\n")
    with pytest.raises(InputError, match="missing.png"):
        read_obj(tmp_path / "notex.obj")
