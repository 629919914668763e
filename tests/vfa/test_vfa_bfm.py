"""BFM09 avatar from coefficients on a 4-vertex model written with scipy.io.savemat: shape,
normals and SH colours computed by hand, and one-line errors for bad model files."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import ROUNDING, assert_close
from scipy.io import savemat

from common.errors import InputError
from vfa.bfm import load_bfm_mesh, load_bfm_model, read_coefficients, rotation_matrix, split_coefficients

SQRT_PI = np.sqrt(np.pi)
# Vertices of the mean shape: a unit square in z = 0; identity component 0 lifts vertex 3.
MEAN = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)


def model_fields(**overrides) -> dict:
    rng = np.random.default_rng(0)
    id_base = np.zeros((12, 80))
    id_base[3 * 3 + 2, 0] = 0.5  # z of vertex 3
    fields = {
        "meanshape": MEAN.reshape(1, 12),
        "idBase": id_base,
        "exBase": rng.normal(size=(12, 64)),  # must be ignored: the avatar has no expression
        "meantex": np.tile([100.0, 150.0, 200.0], 4).reshape(1, 12),
        "texBase": np.eye(12, 80) * 10.0,
        "tri": np.array([[1, 2, 3], [2, 4, 3]]),
        "point_buf": np.array(
            [[1, 0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0]]
        ),
        "keypoints": np.arange(1, 5).reshape(1, 4),
        "skinmask": np.ones((1, 4)),
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def write_model(tmp_path, **overrides):
    path = tmp_path / "BFM09_model_info.mat"
    savemat(path, model_fields(**overrides))
    return path


def coefficients(gamma=None) -> np.ndarray:
    c = np.zeros(257)
    c[0] = 2.0  # identity: vertex 3 rises to z = 1
    c[80:144] = 3.0  # expression, zeroed by load_bfm_mesh
    c[144] = 1.0  # texture: +10 on the red albedo of vertex 0
    c[224:227] = [0.3, -0.2, 0.1]  # rotation, zeroed by load_bfm_mesh
    c[254:257] = [5.0, 5.0, 5.0]  # translation, replaced by (0, 0, 2)
    if gamma is not None:
        c[227:254] = gamma
    return c


def test_shape_is_mean_plus_identity_minus_mean_centroid_at_z_2(tmp_path):
    mesh = load_bfm_mesh(coefficients(), load_bfm_model(write_model(tmp_path)))
    lifted = MEAN.copy()
    lifted[3, 2] = 1.0
    assert_close(mesh.vertices, lifted - MEAN.mean(axis=0) + [0, 0, 2], ROUNDING, "vertices")
    assert mesh.faces.tolist() == [[0, 1, 2], [1, 3, 2]]


def test_normals_and_sh_colour_by_hand(tmp_path):
    # Face normals (v0 - v1) x (v1 - v2): face 0 -> (0, 0, 1); face 1 (1, 3, 2) -> (-1, -1, 1).
    # Vertex normals: v0 (0,0,1); v1, v2 (-1,-1,2)/sqrt6; v3 (-1,-1,1)/sqrt3.
    nz = np.array([1.0, 2 / np.sqrt(6), 2 / np.sqrt(6), 1 / np.sqrt(3)])
    gamma = np.zeros((3, 9))
    gamma[0, 2] = 0.25  # red: + a1 c1 nz * 0.25, with a1 c1 = sqrt(pi)
    gamma[2, 0] = 0.1  # blue: constant term 0.8 + 0.1
    mesh = load_bfm_mesh(coefficients(gamma.reshape(-1)), load_bfm_model(write_model(tmp_path)))
    constant = SQRT_PI / 2  # a0 c0 = pi / sqrt(4 pi)
    albedo = np.tile([100.0, 150.0, 200.0], (4, 1))
    albedo[0, 0] += 10.0
    light = np.stack(
        [0.8 * constant + SQRT_PI * 0.25 * nz, np.full(4, 0.8 * constant), np.full(4, 0.9 * constant)], axis=1
    )
    assert_close(mesh.colours, albedo * light, ROUNDING, "colours")


def test_expression_rotation_and_translation_are_ignored(tmp_path):
    model = load_bfm_model(write_model(tmp_path))
    plain = coefficients()
    plain[80:144], plain[224:227], plain[254:257] = 0.0, 0.0, 0.0
    reference, mesh = load_bfm_mesh(plain, model), load_bfm_mesh(coefficients(), model)
    assert_close(mesh.vertices, reference.vertices, ROUNDING, "vertices")
    assert_close(mesh.colours, reference.colours, ROUNDING, "colours")


def test_coefficient_layout_and_rotation_convention():
    parts = split_coefficients(np.arange(257.0))
    assert [len(parts[k]) for k in ("id", "exp", "tex", "angles", "gamma", "translation")] == [80, 64, 80, 3, 27, 3]
    assert parts["angles"].tolist() == [224, 225, 226] and parts["translation"][0] == 254
    # row vectors: v @ R; z by +90 degrees turns x into y
    assert_close(np.array([1.0, 0, 0]) @ rotation_matrix([0, 0, np.pi / 2]), [0, 1, 0], ROUNDING, "rz")
    assert_close(np.array([0, 1.0, 0]) @ rotation_matrix([np.pi / 2, 0, 0]), [0, 0, 1], ROUNDING, "rx")


@pytest.mark.parametrize("field", ["meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "point_buf"])
def test_missing_field_is_named(tmp_path, field):
    path = write_model(tmp_path, **{field: None})
    with pytest.raises(InputError, match=f"field '{field}' is missing"):
        load_bfm_model(path)


def test_bad_model_files_give_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="'idBase' has shape \\[12, 79\\], expected \\[12, 80\\]"):
        load_bfm_model(write_model(tmp_path, idBase=np.zeros((12, 79))))
    with pytest.raises(InputError, match="'tri'"):
        load_bfm_model(write_model(tmp_path, tri=np.array([[1, 2, 5]])))
    with pytest.raises(InputError, match="not found"):
        load_bfm_model(tmp_path / "absent.mat")
    (tmp_path / "broken.mat").write_bytes(b"not a mat file")
    with pytest.raises(InputError, match="cannot read"):
        load_bfm_model(tmp_path / "broken.mat")


def test_coefficient_files(tmp_path):
    np.save(tmp_path / "woman.npy", np.arange(257.0)[None])
    assert read_coefficients(tmp_path / "woman.npy").shape == (257,)
    np.save(tmp_path / "short.npy", np.zeros(256))
    with pytest.raises(InputError, match="257 values"):
        read_coefficients(tmp_path / "short.npy")
