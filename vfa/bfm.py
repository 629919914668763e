"""BFM09 face avatars from 257 fitted coefficients and `BFM09_model_info.mat`.

The model file is the one 3DMM-Fitting-Pytorch's `convert_bfm09_data.py` builds (the VFA README
links a copy); it is not redistributable and nothing here downloads it. Only the fields below
are read: the original's model also loads `keypoints` and `skinmask`, which rendering never uses.

Coefficient layout (`split_coefficients`): identity 0:80, expression 80:144, texture 144:224,
Euler angles 224:227 (x, y, z in radians), SH lighting 227:254 (3 colour channels x 9),
translation 254:257.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError
from vfa.mesh import Mesh

COEFFICIENT_COUNT = 257
ID_DIMS, EXP_DIMS, TEX_DIMS = 80, 64, 80
# infer.py places the face here before re-centring it, which makes this translation irrelevant.
AVATAR_TRANSLATION = (0.0, 0.0, 2.0)
# Added to the first (constant) SH coefficient of every colour channel.
SH_AMBIENT_OFFSET = 0.8


@dataclass(frozen=True, eq=False)
class BFM09Model:
    """The arrays of `BFM09_model_info.mat` that VFA uses; `faces` and `point_buf` are 0-based
    (in `point_buf`, -1 pads vertices that belong to fewer than its width of faces)."""

    meanshape: np.ndarray  # [3N]
    id_base: np.ndarray  # [3N, 80]
    exp_base: np.ndarray  # [3N, 64]
    meantex: np.ndarray  # [3N]
    tex_base: np.ndarray  # [3N, 80]
    faces: np.ndarray  # [F, 3]
    point_buf: np.ndarray  # [N, K]

    @property
    def vertex_count(self) -> int:
        return len(self.meanshape) // 3


def load_bfm_model(path) -> BFM09Model:
    """Read and check `BFM09_model_info.mat` (scipy.io.loadmat)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: BFM09 model file not found; build BFM09_model_info.mat with 3DMM-Fitting-Pytorch's "
            "convert_bfm09_data.py (or use the copy the VFA README links) and pass its path"
        )
    try:
        fields = loadmat(str(path))
    except Exception as exc:  # scipy raises several unrelated types for a damaged file
        raise InputError(f"{path}: cannot read the BFM09 model ({type(exc).__name__}: {exc})") from None
    return bfm_model_from_fields(fields, str(path))


def bfm_model_from_fields(fields: dict, source: str = "BFM09 model") -> BFM09Model:
    """Build the model from loadmat's dictionary, naming the first missing or misshapen field."""

    def field(name: str) -> np.ndarray:
        if name not in fields:
            raise InputError(f"{source}: field '{name}' is missing")
        return np.asarray(fields[name])

    meanshape = field("meanshape").astype(np.float64).reshape(-1)
    if meanshape.size == 0 or meanshape.size % 3:
        raise InputError(f"{source}: field 'meanshape' must hold 3N values, got {meanshape.size}")
    rows = meanshape.size
    count = rows // 3

    def base(name: str, columns: int) -> np.ndarray:
        array = field(name).astype(np.float64)
        if array.shape != (rows, columns):
            raise InputError(f"{source}: field '{name}' has shape {list(array.shape)}, expected [{rows}, {columns}]")
        return array

    meantex = field("meantex").astype(np.float64).reshape(-1)
    if meantex.size != rows:
        raise InputError(f"{source}: field 'meantex' holds {meantex.size} values, expected {rows}")
    faces = field("tri").astype(np.int64) - 1
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= count:
        raise InputError(f"{source}: field 'tri' must be [F, 3] 1-based vertex ids in 1..{count}")
    point_buf = field("point_buf").astype(np.int64) - 1
    if point_buf.ndim != 2 or len(point_buf) != count or point_buf.min() < -1 or point_buf.max() >= len(faces):
        raise InputError(f"{source}: field 'point_buf' must be [{count}, K] 1-based face ids (0 = none)")
    return BFM09Model(
        meanshape=meanshape,
        id_base=base("idBase", ID_DIMS),
        exp_base=base("exBase", EXP_DIMS),
        meantex=meantex,
        tex_base=base("texBase", TEX_DIMS),
        faces=faces,
        point_buf=point_buf,
    )


def read_coefficients(path) -> np.ndarray:
    """A fitted `.npy` coefficient vector (257 values, shape [257] or [1, 257]) as float64."""
    path = Path(path)
    try:
        coefficients = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read BFM09 coefficients ({exc})") from None
    if coefficients.size != COEFFICIENT_COUNT or coefficients.ndim > 2:
        raise InputError(
            f"{path}: BFM09 coefficients must hold {COEFFICIENT_COUNT} values, got shape {list(coefficients.shape)}"
        )
    return coefficients.astype(np.float64).reshape(-1)


def split_coefficients(coefficients: np.ndarray) -> dict[str, np.ndarray]:
    """Name the parts of the 257-vector."""
    c = np.asarray(coefficients, dtype=np.float64).reshape(-1)
    if c.size != COEFFICIENT_COUNT:
        raise InputError(f"BFM09 coefficients must hold {COEFFICIENT_COUNT} values, got {c.size}")
    return {
        "id": c[0:80],
        "exp": c[80:144],
        "tex": c[144:224],
        "angles": c[224:227],
        "gamma": c[227:254],
        "translation": c[254:257],
    }


def face_shape(model: BFM09Model, id_coeff: np.ndarray, exp_coeff: np.ndarray) -> np.ndarray:
    """Vertices [N,3]: mean + identity + expression offsets, minus the centroid of the mean shape."""
    flat = model.meanshape + model.id_base @ id_coeff + model.exp_base @ exp_coeff
    return flat.reshape(-1, 3) - model.meanshape.reshape(-1, 3).mean(axis=0)


def albedo(model: BFM09Model, tex_coeff: np.ndarray) -> np.ndarray:
    """Per-vertex albedo [N,3] on the 0-255 scale."""
    return (model.meantex + model.tex_base @ tex_coeff).reshape(-1, 3)


def rotation_matrix(angles) -> np.ndarray:
    """The matrix that rotates row vectors (v @ R) by Euler angles (x, y, z): R = (Rz Ry Rx)^T."""
    x, y, z = (float(a) for a in np.asarray(angles, dtype=np.float64).reshape(3))
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, point_buf: np.ndarray) -> np.ndarray:
    """BFM's vertex normals: the sum of the unnormalised normals (v0 - v1) x (v1 - v2) of the faces
    listed in `point_buf` (-1 = none), scaled to unit length (a vertex with no face keeps 0)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v0 - v1, v1 - v2)
    padded = np.concatenate([face_normals, np.zeros((1, 3))])  # index -1 reads this zero row
    summed = padded[point_buf].sum(axis=1)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.divide(summed, length, out=np.zeros_like(summed), where=length > 0)


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 second-order spherical-harmonics irradiance terms per normal, [N,9]."""
    nx, ny, nz = normals[:, 0], normals[:, 1], normals[:, 2]
    a0, a1, a2 = np.pi, 2 * np.pi / np.sqrt(3.0), 2 * np.pi / np.sqrt(8.0)
    c0, c1, c2 = 1 / np.sqrt(4 * np.pi), np.sqrt(3.0) / np.sqrt(4 * np.pi), 3 * np.sqrt(5.0) / np.sqrt(12 * np.pi)
    d0 = 0.5 / np.sqrt(3.0)
    return np.stack(
        [
            np.full_like(nx, a0 * c0),
            -a1 * c1 * ny,
            a1 * c1 * nz,
            -a1 * c1 * nx,
            a2 * c2 * nx * ny,
            -a2 * c2 * ny * nz,
            a2 * c2 * d0 * (3 * nz**2 - 1),
            -a2 * c2 * nx * nz,
            a2 * c2 * 0.5 * (nx**2 - ny**2),
        ],
        axis=1,
    )


def sh_shading(albedo_rgb: np.ndarray, normals: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Albedo [N,3] times SH irradiance; `gamma` holds 9 coefficients per colour channel (R, G, B)."""
    coefficients = np.asarray(gamma, dtype=np.float64).reshape(3, 9).copy()
    coefficients[:, 0] += SH_AMBIENT_OFFSET
    return albedo_rgb * (sh_basis(normals) @ coefficients.T)


def load_bfm_mesh(coefficients: np.ndarray, model: BFM09Model) -> Mesh:
    """The avatar mesh infer.py builds: expression and rotation zeroed, translation (0, 0, 2),
    vertex colours = albedo x SH lighting (0-255 scale, unclamped)."""
    parts = split_coefficients(coefficients)
    rotation = rotation_matrix(np.zeros(3))
    vertices = face_shape(model, parts["id"], np.zeros(EXP_DIMS))
    normals = vertex_normals(vertices, model.faces, model.point_buf) @ rotation
    colours = sh_shading(albedo(model, parts["tex"]), normals, parts["gamma"])
    return Mesh(vertices @ rotation + np.asarray(AVATAR_TRANSLATION), model.faces, colours)
