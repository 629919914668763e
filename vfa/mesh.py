"""Triangle meshes with per-vertex colours: the avatar VFA renders and deforms.

An avatar is either a BFM09 face (see `vfa.bfm`) or an `.obj` file. The original loads `.obj`
files with pytorch3d 0.3 (`load_objs_as_meshes(load_textures=True)`); `read_obj` follows it
with two documented differences:

* Vertex colours written as `v x y z r g b` are used. pytorch3d 0.3 reads only the first three
  numbers of a `v` line, so the original renders such a mesh white; `vertex_colours=False`
  restores that.
* A texture map is reduced to vertex colours: the texture is sampled at every face corner's UV
  exactly as pytorch3d's `TexturesUV` samples it per pixel (bilinear, `align_corners=True`, v
  pointing up, edge clamping) and the corners of each vertex are averaged. pytorch3d instead
  interpolates the UVs across each face and samples the map at every pixel, so texture detail
  finer than the mesh, and the jump across a UV seam, are blurred here. On a face mesh whose
  triangles cover about a pixel each the two agree closely; on a coarse mesh with a detailed
  texture they do not.
* A material library or texture map that the file names but that cannot be read is an
  `InputError`; pytorch3d only warns and renders white.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.errors import InputError


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh: `vertices` [V,3] float32 world units, `faces` [F,3] int64 0-based vertex
    ids, `colours` [V,3] float32 RGB on the scale of the source (0-255 for BFM09 avatars, 0-1 for
    `.obj` files; the renderer keeps that scale)."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "vertices", np.asarray(self.vertices, dtype=np.float32))
        object.__setattr__(self, "faces", np.asarray(self.faces, dtype=np.int64))
        object.__setattr__(self, "colours", np.asarray(self.colours, dtype=np.float32))
        count = len(self.vertices)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise InputError(f"mesh vertices must have shape [V,3], got {list(self.vertices.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise InputError(f"mesh faces must have shape [F,3], got {list(self.faces.shape)}")
        if self.colours.shape != (count, 3):
            raise InputError(f"mesh colours must have shape [{count},3], got {list(self.colours.shape)}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= count):
            raise InputError(f"mesh faces index vertices outside 0..{count - 1}")

    def with_vertices(self, vertices: np.ndarray) -> Mesh:
        """The same topology and colours on new vertex positions."""
        return Mesh(vertices, self.faces, self.colours)


def recentred(mesh: Mesh, translation=(0.0, 0.0, 0.0)) -> Mesh:
    """Move the vertex centroid to the origin, then by `translation` (infer.py's `--translation`)."""
    vertices = mesh.vertices.astype(np.float64)
    offset = np.asarray(translation, dtype=np.float64) - vertices.mean(axis=0)
    return mesh.with_vertices(vertices + offset)


def read_obj(path, vertex_colours: bool = True) -> Mesh:
    """Read a Wavefront `.obj`; polygons are split into fans (v0, vi, vi+1) as pytorch3d does.

    Colours, in order of preference: the first texture map (`map_Kd`) of the materials the file
    uses, sampled at the vertices (see the module docstring); `v x y z r g b` colours; white.
    """
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the .obj file ({exc.strerror})") from None
    vertices, colours, uvs, corners, corner_uvs = [], [], [], [], []
    materials, library = [], None
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            if tokens[0] == "v":
                vertices.append([float(t) for t in tokens[1:4]])
                colours.append([float(t) for t in tokens[4:7]] if len(tokens) >= 7 else None)
            elif tokens[0] == "vt":
                uvs.append([float(t) for t in tokens[1:3]])
            elif tokens[0] == "f":
                ids = [_obj_index(t.split("/")[0], len(vertices)) for t in tokens[1:]]
                uv_ids = [_obj_index(t.split("/")[1], len(uvs)) if _has_uv(t) else -1 for t in tokens[1:]]
                for i in range(1, len(ids) - 1):
                    corners.append((ids[0], ids[i], ids[i + 1]))
                    corner_uvs.append((uv_ids[0], uv_ids[i], uv_ids[i + 1]))
            elif tokens[0] == "mtllib":
                library = path.parent / line.strip()[len("mtllib") :].strip()
            elif tokens[0] == "usemtl" and tokens[1] not in materials:
                materials.append(tokens[1])
        except (ValueError, IndexError):
            raise InputError(f"{path}:{number}: cannot parse {line.strip()!r}") from None
    if not vertices or not corners:
        raise InputError(f"{path}: the .obj file has no vertices or no faces")
    if any(len(v) != 3 for v in vertices):
        raise InputError(f"{path}: a vertex line has fewer than 3 coordinates")
    faces = np.asarray(corners, dtype=np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"{path}: a face refers to a vertex that does not exist")

    corner_uvs = np.asarray(corner_uvs, dtype=np.int64)
    if corner_uvs.max() >= len(uvs) or corner_uvs.min() < -1:
        raise InputError(f"{path}: a face refers to a texture coordinate that does not exist")
    texture = _first_texture(library, materials) if library is not None and materials else None
    rgb = None
    if texture is not None and (corner_uvs >= 0).any():
        rgb = _vertex_colours_from_texture(texture, np.asarray(uvs, np.float64), corner_uvs, faces, len(vertices))
    if rgb is None:
        if vertex_colours and all(c is not None for c in colours):
            rgb = np.asarray(colours, dtype=np.float64)
        else:
            rgb = np.ones((len(vertices), 3))
    return Mesh(np.asarray(vertices), faces, rgb)


def write_obj(path, mesh: Mesh) -> None:
    """Write `v x y z r g b` lines (colours as stored: divide BFM's 0-255 colours by 255 first for
    other tools) and 1-based `f` lines."""
    rows = [
        f"v {x:.6f} {y:.6f} {z:.6f} {r:.6f} {g:.6f} {b:.6f}"
        for (x, y, z), (r, g, b) in zip(mesh.vertices, mesh.colours)
    ]
    rows += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
    Path(path).write_text("\n".join(rows) + "\n")


def _has_uv(token: str) -> bool:
    parts = token.split("/")
    return len(parts) > 1 and parts[1] != ""


def _obj_index(token: str, count: int) -> int:
    """1-based index, or negative relative to the items read so far, to a 0-based index."""
    index = int(token)
    return index - 1 if index > 0 else count + index


def _first_texture(library: Path, materials: list[str]) -> np.ndarray | None:
    """The RGB texture in 0-1 of the first used material with a `map_Kd`, as pytorch3d 0.3 picks it."""
    try:
        lines = library.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"{library}: cannot read the material library ({exc.strerror})") from None
    maps, current = {}, None
    for line in lines:
        tokens = line.split()
        if tokens and tokens[0] == "newmtl" and len(tokens) > 1:
            current = tokens[1]
        elif tokens and tokens[0] == "map_Kd" and current is not None:
            maps[current] = line.strip()[len("map_Kd") :].strip()
    for name in materials:
        if name in maps:
            image_path = library.parent / maps[name]
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"{image_path}: cannot read the texture map of material {name!r}")
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
    return None


def _vertex_colours_from_texture(texture, uvs, corner_uvs, faces, vertex_count: int) -> np.ndarray:
    """Average, per vertex, the texture sampled at the UVs of its face corners; white where a
    vertex has no textured corner."""
    used = corner_uvs.reshape(-1) >= 0
    samples = _sample_bilinear(texture, uvs[corner_uvs.reshape(-1)[used]])
    vertex_ids = faces.reshape(-1)[used]
    count = np.bincount(vertex_ids, minlength=vertex_count).astype(np.float64)
    sums = np.stack([np.bincount(vertex_ids, samples[:, k], minlength=len(count)) for k in range(3)], axis=1)
    colours = np.ones_like(sums)
    covered = count > 0
    colours[covered] = sums[covered] / count[covered, None]
    return colours


def _sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """`grid_sample(align_corners=True, padding_mode='border')` of a v-up texture at `uv` [P,2]."""
    height, width = image.shape[:2]
    x = np.clip(uv[:, 0], 0.0, 1.0) * (width - 1)
    y = (1.0 - np.clip(uv[:, 1], 0.0, 1.0)) * (height - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), width - 1)
    y0 = np.minimum(np.floor(y).astype(np.int64), height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    wx, wy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    return top * (1 - wy) + bottom * wy
