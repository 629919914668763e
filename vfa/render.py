"""pytorch3d-0.3-compatible mesh rendering on the CPU (NumPy), without pytorch3d.

The original renders the avatar with pytorch3d 0.3: `look_at_view_transform(eye)`, a screen-space
`PerspectiveCameras(focal_length=1000, principal_point=(128, 128), image_size=(256, 256))`,
`RasterizationSettings(image_size=256, blur_radius=0, faces_per_pixel=1)` and a `SoftPhongShader`
with a `PointLights` at (0, 0, 1e5) (ambient 0.5, diffuse 0.5, specular 0) over a black
background. This module reproduces that chain; the conventions, read from pytorch3d v0.3.0's
source, are:

Camera. `R, T = look_at_view_transform(eye)` (at the origin, up +Y) map world points as row
vectors, X_view = X_world R + T; the camera looks down +Z_view. Screen-space parameters are
turned into NDC ones: f_ndc = f / (W/2) = 7.8125 and p_ndc = -(p - W/2) / (W/2) = 0, and a view
point projects to NDC (f_ndc X/Z + p_ndc, f_ndc Y/Z + p_ndc, 1/Z). NDC +X points LEFT and +Y UP
in the image. (pytorch3d >= 0.6 needs `in_ndc=False` for the same camera.)

Pixels. The rasteriser puts the centre of column c at x_ndc = 1 - (2c + 1)/W and of row r at
y_ndc = 1 - (2r + 1)/H, i.e. pixel coordinate c + 0.5 = W/2 (1 - x_ndc). pytorch3d's
`transform_points_screen`, which the original uses to un-project, maps instead
p = (W - 1)/2 (1 - x_ndc), i.e. `screen_to_ndc(p) = 1 - 2p/255`. Both are kept here, each where
the original uses it; they agree at the image centre and drift apart by |p - 127.5|/255 px (at
most half a pixel at the border).

Rasterisation (`rasterize`), as pytorch3d's kernel with blur_radius 0 and one face per pixel:
a face is skipped if a vertex has view depth < 1e-8 or its doubled NDC area is within 1e-8 of 0;
no back-face culling; a pixel centre is inside when all three screen-space barycentrics are > 0
(a centre exactly on an edge belongs to neither face, as in pytorch3d); barycentrics are NOT
perspective-corrected (pytorch3d 0.3's default), so `zbuf` is the screen-affine interpolation of
the vertices' view depths (exact on a fronto-parallel plane, slightly larger than the true depth
inside a tilted face) and colours and normals are interpolated with the same weights. The
smallest z wins; on equal z the lower face index (pytorch3d's CPU and naive kernels; its binned
GPU kernel breaks such ties in no fixed order). Empty pixels: `pix_to_face` -1, `zbuf` -1.

Shading (`shade_phong`): vertex normals as pytorch3d's `Meshes` computes them (area-weighted sum
of face normals, normalised with eps 1e-6) from the vertices being rendered; per pixel the
interpolated normal and position give Lambert's cos toward the light, colour = texel (0.5 +
0.5 max(cos, 0)); specular is 0. SoftPhongShader then blends with `softmax_rgb_blend`
(sigma = gamma = 1e-4, znear 1, zfar 100). With one face per pixel and blur_radius 0 only faces
that contain the pixel centre are kept, whose probability sigmoid(d^2/sigma) is >= 0.5, and the
blend reduces to colour * p / (p + delta) with delta = max(exp((1e-10 - z_inv)/gamma), 1e-10),
z_inv = (100 - z)/99: a factor 1 - O(1e-10) for any depth below ~99.9, so rendering is a hard
assignment. That factor is applied here exactly, which also reproduces the fade to black of
surfaces near and beyond z = 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.errors import InputError
from vfa.mesh import Mesh, recentred

IMAGE_SIZE = 256
FOCAL_LENGTH = 1000.0  # pixels, screen space
PRINCIPAL_POINT = (128.0, 128.0)  # pixels, screen space
SOURCE_EYE = (0.0, 0.0, 8.0)
LIGHT_LOCATION = (0.0, 0.0, 1e5)
AMBIENT = 0.5
DIFFUSE = 0.5
# pytorch3d constants: kernel epsilon, normalisation eps, BlendParams sigma/gamma, blend eps,
# and the znear/zfar SoftPhongShader falls back to for cameras without them.
KERNEL_EPSILON = 1e-8
NORMALIZE_EPSILON = 1e-6
BLEND_SIGMA = BLEND_GAMMA = 1e-4
BLEND_EPSILON = 1e-10
ZNEAR, ZFAR = 1.0, 100.0
# Candidate (face, pixel) pairs tested at once: bounds memory for meshes with large faces.
PAIRS_PER_CHUNK = 1 << 21


def look_at_view_transform(eye, at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """pytorch3d's (R, T) for a camera at `eye` looking at `at`: R's columns are the camera's
    x, y, z axes in world coordinates (z toward `at`, x = up x z), T = -eye R."""
    eye, at, up = (np.asarray(v, dtype=np.float64).reshape(3) for v in (eye, at, up))
    z_axis = _unit(at - eye)
    x_axis = _unit(np.cross(up, z_axis))
    if np.linalg.norm(z_axis) == 0 or np.allclose(x_axis, 0.0, atol=5e-3):
        raise InputError(f"camera eye {eye.tolist()} must differ from {at.tolist()} and not lie along the up axis")
    y_axis = _unit(np.cross(z_axis, x_axis))
    rotation = np.stack([x_axis, y_axis, z_axis], axis=1)
    return rotation, -eye @ rotation


@dataclass(frozen=True, eq=False)
class Camera:
    """pytorch3d 0.3 `PerspectiveCameras` with screen-space focal length and principal point."""

    rotation: np.ndarray  # R [3,3], row-vector convention
    translation: np.ndarray  # T [3]
    focal_length: float = FOCAL_LENGTH
    principal_point: tuple[float, float] = PRINCIPAL_POINT
    image_size: int = IMAGE_SIZE

    @classmethod
    def looking_at_origin(cls, eye=SOURCE_EYE) -> Camera:
        rotation, translation = look_at_view_transform(eye)
        return cls(rotation, translation)

    @property
    def ndc_focal(self) -> float:
        return self.focal_length / (self.image_size / 2.0)

    @property
    def ndc_principal_point(self) -> np.ndarray:
        half = self.image_size / 2.0
        return -(np.asarray(self.principal_point, dtype=np.float64) - half) / half

    @property
    def centre(self) -> np.ndarray:
        """The camera position in world coordinates."""
        return -self.translation @ self.rotation.T

    def world_to_view(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ self.rotation + self.translation

    def world_to_ndc_matrix(self) -> np.ndarray:
        """The 4x4 world -> clip matrix for row vectors ([x y z 1] M, then divide by the last
        coordinate): pytorch3d's `get_full_projection_transform().get_matrix()`."""
        view = np.eye(4)
        view[:3, :3] = self.rotation
        view[3, :3] = self.translation
        projection = np.zeros((4, 4))
        projection[0, 0] = projection[1, 1] = self.ndc_focal
        projection[2, 0:2] = self.ndc_principal_point
        projection[3, 2] = projection[2, 3] = 1.0
        return view @ projection

    def world_to_ndc(self, points: np.ndarray) -> np.ndarray:
        """NDC (x, y, 1/depth) of world points [N,3]."""
        view = self.world_to_view(points)
        depth = view[:, 2:3]
        return np.concatenate([self.ndc_focal * view[:, :2] / depth + self.ndc_principal_point, 1.0 / depth], axis=1)


def pixel_centre_ndc(index, size: int = IMAGE_SIZE):
    """NDC coordinate of pixel centre `index` (column for x, row for y) in the rasteriser."""
    return 1.0 - (2.0 * np.asarray(index, dtype=np.float64) + 1.0) / size


def screen_to_ndc(position, size: int = IMAGE_SIZE):
    """The original's un-projection screen -> NDC mapping, 1 - 2 p / (size - 1) (255 for 256)."""
    return 1.0 - 2.0 * np.asarray(position, dtype=np.float64) / (size - 1)


def ndc_to_screen(ndc, size: int = IMAGE_SIZE):
    """Inverse of `screen_to_ndc`: pytorch3d 0.3's `transform_points_screen` x/y mapping."""
    return (size - 1) / 2.0 * (1.0 - np.asarray(ndc, dtype=np.float64))


def world_to_screen(points: np.ndarray, camera: Camera) -> np.ndarray:
    """pytorch3d 0.3 `transform_points_screen`: [N,3] world -> (x_px, y_px, 1/depth)."""
    ndc = camera.world_to_ndc(points)
    size = camera.image_size
    return np.stack([ndc_to_screen(ndc[:, 0], size), ndc_to_screen(ndc[:, 1], size), ndc[:, 2]], axis=1)


def screen_to_world(points: np.ndarray, camera: Camera) -> np.ndarray:
    """The original's `screen_to_world`: (x_px, y_px, 1/depth) [N,3] -> world [N,3], through
    NDC (`screen_to_ndc`), the clip vector (x·depth, y·depth, 1, depth) and the inverse of the
    full world -> NDC matrix."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    depth = 1.0 / points[:, 2:3]
    clip = np.concatenate([screen_to_ndc(points[:, :2], camera.image_size) * depth, np.ones_like(depth), depth], axis=1)
    world = clip @ np.linalg.inv(camera.world_to_ndc_matrix())
    return world[:, :3] / world[:, 3:]


@dataclass(frozen=True, eq=False)
class Fragments:
    """Per-pixel rasterisation result (image rows top to bottom, columns left to right)."""

    pix_to_face: np.ndarray  # [H,W] int64, -1 where empty
    zbuf: np.ndarray  # [H,W] float32 view-space depth, -1 where empty
    bary: np.ndarray  # [H,W,3] float32 screen-space barycentrics, -1 where empty
    dists: np.ndarray  # [H,W] float32 squared NDC distance to the face's border, negative inside


def rasterize(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> Fragments:
    """Hard z-buffer rasterisation of world-space triangles, one face per pixel (see module doc)."""
    size = camera.image_size
    view = camera.world_to_view(vertices)
    faces = np.asarray(faces, dtype=np.int64)
    depth = view[:, 2]
    safe_depth = np.where(depth >= KERNEL_EPSILON, depth, 1.0)
    ndc = camera.ndc_focal * view[:, :2] / safe_depth[:, None] + camera.ndc_principal_point
    corners, corner_z = ndc[faces], depth[faces]  # [F,3,2], [F,3]
    area = _edge(corners[:, 2], corners[:, 0], corners[:, 1])
    usable = (corner_z.min(axis=1) >= KERNEL_EPSILON) & (np.abs(area) > KERNEL_EPSILON)

    # Pixel-index bounding boxes; x_ndc decreases with the column, y_ndc with the row.
    low, high = corners.min(axis=1), corners.max(axis=1)
    col_lo = np.ceil((size * (1 - high[:, 0]) - 1) / 2 - 1e-6).clip(0, size).astype(np.int64)
    col_hi = np.floor((size * (1 - low[:, 0]) - 1) / 2 + 1e-6).clip(-1, size - 1).astype(np.int64)
    row_lo = np.ceil((size * (1 - high[:, 1]) - 1) / 2 - 1e-6).clip(0, size).astype(np.int64)
    row_hi = np.floor((size * (1 - low[:, 1]) - 1) / 2 + 1e-6).clip(-1, size - 1).astype(np.int64)
    width = np.maximum(col_hi - col_lo + 1, 0)
    count = width * np.maximum(row_hi - row_lo + 1, 0) * usable
    candidates = np.flatnonzero(count)

    best_z = np.full(size * size, np.inf)
    best_face = np.full(size * size, -1, dtype=np.int64)
    best_bary = np.zeros((size * size, 3))
    for chunk in _chunks(count[candidates]):
        ids = candidates[chunk]
        per_face = count[ids]
        face = np.repeat(ids, per_face)
        local = np.arange(per_face.sum()) - np.repeat(np.cumsum(per_face) - per_face, per_face)
        row = row_lo[face] + local // width[face]
        col = col_lo[face] + local % width[face]
        point = np.stack([pixel_centre_ndc(col, size), pixel_centre_ndc(row, size)], axis=1)
        v0, v1, v2 = corners[face, 0], corners[face, 1], corners[face, 2]
        denominator = area[face] + KERNEL_EPSILON
        bary = np.stack([_edge(point, v1, v2), _edge(point, v2, v0), _edge(point, v0, v1)], axis=1)
        bary /= denominator[:, None]
        z = (bary * corner_z[face]).sum(axis=1)
        hit = (bary > 0).all(axis=1) & (z >= 0)
        pixel, z, face, bary = row[hit] * size + col[hit], z[hit], face[hit], bary[hit]
        # Stable sort by (pixel, z): among equal z the earlier (lower) face index stays first.
        order = np.lexsort((z, pixel))
        pixel, z, face, bary = pixel[order], z[order], face[order], bary[order]
        first = np.ones(len(pixel), dtype=bool)
        first[1:] = pixel[1:] != pixel[:-1]
        pixel, z, face, bary = pixel[first], z[first], face[first], bary[first]
        closer = z < best_z[pixel]
        pixel = pixel[closer]
        best_z[pixel], best_face[pixel], best_bary[pixel] = z[closer], face[closer], bary[closer]

    covered = best_face >= 0
    zbuf = np.where(covered, best_z, -1.0)
    bary = np.where(covered[:, None], best_bary, -1.0)
    dists = np.full(size * size, -1.0)
    covered_ids = np.flatnonzero(covered)
    centres = np.stack(
        [pixel_centre_ndc(covered_ids % size, size), pixel_centre_ndc(covered_ids // size, size)], axis=1
    )
    dists[covered] = -_squared_distance_to_triangle(centres, corners[best_face[covered]])
    shape = (size, size)
    return Fragments(
        pix_to_face=best_face.reshape(shape),
        zbuf=zbuf.reshape(shape).astype(np.float32),
        bary=bary.reshape(shape + (3,)).astype(np.float32),
        dists=dists.reshape(shape).astype(np.float32),
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """pytorch3d `Meshes.verts_normals_packed`: area-weighted face normals summed per vertex."""
    vertices = np.asarray(vertices, dtype=np.float64)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)
    ids = np.asarray(faces).reshape(-1)
    summed = np.stack(
        [np.bincount(ids, np.repeat(face_normals[:, k], 3), minlength=len(vertices)) for k in range(3)], axis=1
    )
    return _normalize(summed)


def shade_phong(fragments: Fragments, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """SoftPhongShader's RGB [H,W,3] (float32, scale of `colours`, black background)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    hit = fragments.pix_to_face >= 0
    corner_ids = faces[fragments.pix_to_face[hit]]  # [P,3]
    weights = fragments.bary[hit].astype(np.float64)[:, :, None]

    def interpolate(attribute: np.ndarray) -> np.ndarray:
        return (np.asarray(attribute, dtype=np.float64)[corner_ids] * weights).sum(axis=1)

    normals = _normalize(interpolate(vertex_normals(vertices, faces)))
    to_light = _normalize(np.asarray(LIGHT_LOCATION) - interpolate(vertices))
    cosine = np.maximum((normals * to_light).sum(axis=1), 0.0)
    colour = interpolate(colours) * (AMBIENT + DIFFUSE * cosine)[:, None]

    # softmax_rgb_blend with one face per pixel over a black background.
    probability = 1.0 / (1.0 + np.exp(fragments.dists[hit].astype(np.float64) / BLEND_SIGMA))
    z_inv = (ZFAR - fragments.zbuf[hit].astype(np.float64)) / (ZFAR - ZNEAR)
    z_inv_max = np.maximum(z_inv, BLEND_EPSILON)
    weight = probability * np.exp((z_inv - z_inv_max) / BLEND_GAMMA)
    delta = np.maximum(np.exp((BLEND_EPSILON - z_inv_max) / BLEND_GAMMA), BLEND_EPSILON)
    image = np.zeros(fragments.pix_to_face.shape + (3,))
    image[hit] = colour * (weight / (weight + delta))[:, None]
    return image.astype(np.float32)


@dataclass(frozen=True, eq=False)
class Rendering:
    image: np.ndarray  # [H,W,3] float32 RGB on the scale of the vertex colours, black background
    zbuf: np.ndarray  # [H,W] float32 view-space depth, -1 where empty
    pix_to_face: np.ndarray  # [H,W] int64, -1 where empty


def render(mesh: Mesh, camera: Camera) -> Rendering:
    """Rasterise and Phong-shade `mesh` as the original's pytorch3d MeshRenderer does."""
    fragments = rasterize(mesh.vertices, mesh.faces, camera)
    image = shade_phong(fragments, mesh.vertices, mesh.faces, mesh.colours)
    return Rendering(image=image, zbuf=fragments.zbuf, pix_to_face=fragments.pix_to_face)


@dataclass(frozen=True, eq=False)
class SourceRender:
    """The source avatar as infer.py prepares it (section 4.2 of the fact sheet)."""

    colour_bgr: np.ndarray  # [H,W,3] uint8: clamped to 0..255, min-max stretched, truncated (mediapipe input)
    zbuf: np.ndarray  # [H,W] float32, -1 where empty
    depth_min: float  # smallest positive zbuf
    depth_max: float  # largest zbuf
    pix_to_face: np.ndarray  # [H,W] int64
    mesh: Mesh = field(repr=False)  # the re-centred mesh that was rendered
    camera: Camera = field(repr=False)
    colour_bgr_float: np.ndarray = field(repr=False)  # the stretched colour before truncation (network input)


def render_source(mesh: Mesh, eye=SOURCE_EYE, translation=(0.0, 0.0, 0.0)) -> SourceRender:
    """Re-centre the avatar (+ `translation`), render it from `eye` and stretch its colours."""
    mesh = recentred(mesh, translation)
    camera = Camera.looking_at_origin(eye)
    rendering = render(mesh, camera)
    foreground = rendering.zbuf > 0
    if not foreground.any():
        raise InputError(f"the avatar is not visible from eye {list(eye)} with translation {list(translation)}")
    colour = np.clip(rendering.image.astype(np.float64), 0.0, 255.0)
    low, high = colour.min(), colour.max()
    scale = 255.0 / (high - low) if high > low else 0.0
    stretched = ((colour - low) * scale)[..., ::-1].astype(np.float32)
    return SourceRender(
        colour_bgr=stretched.astype(np.uint8),
        zbuf=rendering.zbuf,
        depth_min=float(rendering.zbuf[foreground].min()),
        depth_max=float(rendering.zbuf.max()),
        pix_to_face=rendering.pix_to_face,
        mesh=mesh,
        camera=camera,
        colour_bgr_float=np.ascontiguousarray(stretched),
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    """torch.nn.functional.normalize(eps=1e-5) of one vector, as look_at_rotation uses it."""
    return vector / max(np.linalg.norm(vector), 1e-5)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(length, NORMALIZE_EPSILON)


def _edge(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pytorch3d's edge function: (p - a) x (b - a), positive on one side of a -> b."""
    return (point[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1]) - (point[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0])


def _squared_distance_to_triangle(point: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Smallest squared distance from points [P,2] to the three edges of triangles [P,3,2]."""
    best = np.full(len(point), np.inf)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        start, segment = corners[:, a], corners[:, b] - corners[:, a]
        length2 = (segment**2).sum(axis=1)
        t = np.clip(((point - start) * segment).sum(axis=1) / np.maximum(length2, KERNEL_EPSILON), 0.0, 1.0)
        t[length2 <= KERNEL_EPSILON] = 1.0  # pytorch3d measures to the end point of a tiny edge
        best = np.minimum(best, ((start + t[:, None] * segment - point) ** 2).sum(axis=1))
    return best


def _chunks(counts: np.ndarray):
    """Consecutive index slices of `counts` whose sums stay near PAIRS_PER_CHUNK."""
    total = np.cumsum(counts)
    start = 0
    while start < len(counts):
        offset = total[start - 1] if start else 0
        stop = max(int(np.searchsorted(total, offset + PAIRS_PER_CHUNK, side="right")), start + 1)
        yield slice(start, stop)
        start = stop
