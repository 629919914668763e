"""Animate a 3D avatar from RGBD driving frames: VFA's mesh retargeting (fact sheet 4.2-4.5).

Per driving frame the generator (relative motion from a start frame) predicts an RGBD image; only
the student's backward flow and the teacher's depth are used to move the mesh:

1. the flow (grid_sample coordinates, ·256 to pixels) is turned into a forward map by bilinear
   splatting: each target pixel registers itself, with bilinear weights, at the four integer
   pixels around the source position it samples; a controller moves to the weighted mean of the
   target pixels registered at its pixel;
2. the predicted depth, min-max scaled to uint16 and then mapped onto the source's depth range,
   gives the new depth; a controller is untracked if nothing lands on it, it lands exactly on the
   first or last row or column, or its depth jumps by more than mean + 2·std of all jumps;
3. tracked controllers are un-projected before and after (`vfa.render.screen_to_world`) and
   their 3D translations blended onto the vertices with the controlling weights (untracked ones
   get weight 0, rows renormalised; a row left with no weight zeroes the whole frame);
4. the displacement is smoothed `lap_times` times, d <- λ·(stencil mean of d) + (1 - λ)·d, and
   the moved mesh is rendered from the front and from a fixed rotated view.

Deviations, each where the original would fail or read garbage: a controller whose forward map
has no usable weight (sum 0), that lands outside the image or on background depth is untracked
(the original raises or yields NaN vertices); the "no weight left" rule gives a zero
displacement that is then smoothed (the original crashes there when lap_times > 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from common.errors import InputError, NoFaceError
from common.precision import autocast, check_precision
from vfa.bfm import rotation_matrix
from vfa.controllers import Controllers
from vfa.mesh import Mesh
from vfa.render import Camera, SourceRender, render, screen_to_world
from vfa.weights import ControlWeights

LAP_TIMES = 5
LAP_LAMBDA = 0.6
# The rotated view: woman.npy's own fitted Euler angles and a shift to the left.
ROTATED_VIEW_ANGLES = (0.19897363, -0.32896024, -0.03197825)
ROTATED_VIEW_SHIFT = (-0.1, 0.0, 0.0)
DEPTH_LEVELS = 65535


# ------------------------------------------------------------------------------- normalisation
def norm_image(colour_bgr: np.ndarray, depth: np.ndarray, name: str = "frame") -> torch.Tensor:
    """The original's `norm_image`: [1,4,H,W] float32 in [-1,1]. Colour is taken as BGR and turned
    to RGB, /255·2-1; depth: background (<= 0) and the nearest foreground point -> -1, the farthest
    -> 1 (min-max over the foreground)."""
    colour = np.asarray(colour_bgr, dtype=np.float32)[..., ::-1] / 255.0 * 2.0 - 1.0
    depth = np.array(depth, dtype=np.float32)
    foreground = depth > 0
    if not foreground.any():
        raise InputError(f"{name}: the depth map has no foreground (all values <= 0)")
    depth[~foreground] = 0.0
    low, high = depth[foreground].min(), depth[foreground].max()
    span = high - low if high > low else np.float32(1.0)
    depth[foreground] = (depth[foreground] - low) / span
    rgbd = np.concatenate([colour, (depth * 2.0 - 1.0)[..., None]], axis=2)
    return torch.from_numpy(np.ascontiguousarray(rgbd.transpose(2, 0, 1))).unsqueeze(0)


def depth_to_uint16(depth_channel: np.ndarray) -> np.ndarray:
    """The network's depth channel clipped to [-1,1] and min-max stretched to 0..65535 (truncated)."""
    depth = np.clip(np.asarray(depth_channel, dtype=np.float32), -1.0, 1.0)
    low, high = depth.min(), depth.max()
    if high <= low:
        return np.zeros(depth.shape, np.uint16)
    return ((depth - low) / (high - low) * DEPTH_LEVELS).astype(np.uint16)


# ------------------------------------------------------------------------------------ tracking
@dataclass(frozen=True, eq=False)
class Tracking:
    """translations [C,3] world units (0 for untracked), untracked [C] bool, targets [C,3] the new
    screen positions (x, y, 1/depth; 0 for untracked)."""

    translations: np.ndarray
    untracked: np.ndarray
    targets: np.ndarray


def _forward_entries(flow_px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear splats of a backward flow: (keys (kx, ky) [E,2], weights [E] float32, origins
    (column, row) [E,2]), in the original's order (column-major pixels, four corners each)."""
    height, width = flow_px.shape[:2]
    samples = np.ascontiguousarray(flow_px.transpose(1, 0, 2)).reshape(-1, 2)  # column-major
    x, y = samples[:, 0], samples[:, 1]
    x0, y0 = np.trunc(x), np.trunc(y)  # int() truncates toward zero
    one = np.float32(1.0)
    left, right = (x0 + one) - x, x - x0
    up, down = (y0 + one) - y, y - y0
    keys_x = np.stack([x0, x0 + 1, x0, x0 + 1], axis=1).astype(np.int64)
    keys_y = np.stack([y0, y0, y0 + 1, y0 + 1], axis=1).astype(np.int64)
    weights = np.stack([left * up, right * up, left * down, right * down], axis=1).astype(np.float32)
    origins = np.stack([np.repeat(np.arange(width), height), np.tile(np.arange(height), width)], axis=1)
    keys = np.stack([keys_x.reshape(-1), keys_y.reshape(-1)], axis=1)
    return keys, weights.reshape(-1), np.repeat(origins, 4, axis=0)


def forward_positions(flow_px: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """[C,2] float64 forward position of each pixel (column, row) under a backward flow [H,W,2]
    given in pixels; NaN where no target pixel registered there (or their weights sum to 0)."""
    height, width = flow_px.shape[:2]
    keys, weights, origins = _forward_entries(np.asarray(flow_px, dtype=np.float32))
    inside = (keys[:, 0] >= 0) & (keys[:, 0] < width) & (keys[:, 1] >= 0) & (keys[:, 1] < height)
    flat = keys[inside, 1] * width + keys[inside, 0]
    weights, origins = weights[inside], origins[inside]
    order = np.argsort(flat, kind="stable")  # entries of one key keep their registration order
    flat, weights, origins = flat[order], weights[order], origins[order]
    wanted = np.asarray(pixels, dtype=np.int64)
    wanted_flat = wanted[:, 1] * width + wanted[:, 0]
    starts, stops = np.searchsorted(flat, wanted_flat, "left"), np.searchsorted(flat, wanted_flat, "right")
    positions = np.full((len(wanted), 2), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for c, (start, stop) in enumerate(zip(starts, stops)):
            if stop > start:
                share = weights[start:stop] / weights[start:stop].sum()
                positions[c] = (origins[start:stop] * share[:, None]).sum(axis=0)
    return positions


def track_controllers(
    flow: np.ndarray,
    depth_u16: np.ndarray,
    controllers: Controllers,
    camera: Camera,
    depth_min: float,
    depth_max: float,
) -> Tracking:
    """The original's `source_to_driving`: move the controllers with the student's flow
    ([H,W,2] grid_sample coordinates) and the predicted depth (uint16), see the module docstring."""
    flow = np.asarray(flow, dtype=np.float32).reshape(depth_u16.shape + (2,))
    height, width = depth_u16.shape
    flow_px = (flow + np.float32(1.0)) / np.float32(2.0) * np.float32(width)
    depth = depth_u16.astype(np.float32) / max(int(depth_u16.max()), 1)
    foreground = depth > 0
    depth[foreground] = depth[foreground] * np.float32(depth_max - depth_min) + np.float32(depth_min)

    pixels = controllers.pixels
    moved = forward_positions(flow_px, pixels)
    count = len(pixels)
    landed = np.isfinite(moved).all(axis=1)
    border = landed & (
        (moved[:, 0] == 0) | (moved[:, 0] == width - 1) | (moved[:, 1] == 0) | (moved[:, 1] == height - 1)
    )
    target = np.zeros((count, 2), np.int64)
    target[landed] = np.trunc(moved[landed]).astype(np.int64)
    inside = landed & (target[:, 0] >= 0) & (target[:, 0] < width) & (target[:, 1] >= 0) & (target[:, 1] < height)
    candidates = inside & ~border
    new_depth = np.zeros(count, np.float32)
    new_depth[inside] = depth[target[inside, 1], target[inside, 0]]
    jump = np.abs(new_depth - depth[pixels[:, 1], pixels[:, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no candidate: the threshold is NaN, as the original's
        threshold = jump[candidates].mean() + jump[candidates].std() * np.float32(2.0)
    tracked = candidates & ~(jump > threshold) & (new_depth > 0)

    targets = np.zeros((count, 3))
    translations = np.zeros((count, 3))
    if tracked.any():
        targets[tracked, :2] = moved[tracked]
        targets[tracked, 2] = np.float32(1.0) / new_depth[tracked]
        translations[tracked] = screen_to_world(targets[tracked], camera) - screen_to_world(
            controllers.points[tracked], camera
        )
    return Tracking(translations=translations, untracked=~tracked, targets=targets)


# ------------------------------------------------------------------------------ mesh deformation
def blend_displacements(
    weights: np.ndarray, index: np.ndarray, translations: np.ndarray, untracked: np.ndarray
) -> np.ndarray:
    """[V,3] vertex displacements: the controlling weights applied to the controller translations,
    untracked controllers dropped and rows renormalised; all zero if that leaves a row without
    weight (NaN or inf anywhere), as the original."""
    weights = np.array(weights, dtype=np.float32)
    untracked = np.asarray(untracked, dtype=bool)
    if untracked.any():
        weights[untracked[index]] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = weights / weights.sum(axis=1, keepdims=True)
        if not np.isfinite(weights).all():
            return np.zeros((len(weights), 3))
    return np.einsum("vk,vkc->vc", weights.astype(np.float64), np.asarray(translations, np.float64)[index])


def laplacian_smooth(
    displacement: np.ndarray, weights_lap: np.ndarray, index_lap: np.ndarray, times: int = LAP_TIMES, lam=LAP_LAMBDA
) -> np.ndarray:
    """`times` passes of d <- λ·Σ_k w_k d[index_k] + (1 - λ)·d."""
    weights_lap = np.asarray(weights_lap, dtype=np.float64)
    for _ in range(times):
        displacement = lam * np.einsum("vk,vkc->vc", weights_lap, displacement[index_lap]) + (1 - lam) * displacement
    return displacement


def rotated_view(vertices: np.ndarray) -> np.ndarray:
    """The original's second view: vertices rotated by ROTATED_VIEW_ANGLES (row vectors, v·R) and
    shifted by ROTATED_VIEW_SHIFT."""
    return np.asarray(vertices, np.float64) @ rotation_matrix(ROTATED_VIEW_ANGLES) + np.asarray(ROTATED_VIEW_SHIFT)


def render_panel(mesh: Mesh, camera: Camera) -> np.ndarray:
    """[H,W,3] float32 RGB render clamped to 0..255 and min-max stretched to [-1,1] (this frame)."""
    image = np.clip(render(mesh, camera).image, 0.0, 255.0)
    low, high = image.min(), image.max()
    if high <= low:
        return np.full(image.shape, -1.0, np.float32)
    return ((image - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


# --------------------------------------------------------------------------------- start frame
def normalised_keypoints(points: np.ndarray) -> np.ndarray:
    """Landmarks centred and divided by sqrt of their convex-hull area (find_best's measure)."""
    from scipy.spatial import ConvexHull

    points = np.asarray(points, dtype=np.float64)[:, :2]
    centred = points - points.mean(axis=0, keepdims=True)
    return centred / np.sqrt(ConvexHull(centred).volume)


def rgbd_to_rgb_uint8(rgbd: torch.Tensor) -> np.ndarray:
    """The colour channels of a [1,4,H,W] or [4,H,W] network input as HxWx3 uint8 ((x+1)/2·255)."""
    colour = rgbd.reshape(-1, *rgbd.shape[-2:])[:3].permute(1, 2, 0).cpu().numpy()
    return np.clip((colour + 1.0) / 2.0 * 255.0, 0, 255).round().astype(np.uint8)


def find_best_frame(source_rgbd: torch.Tensor, frames: list[torch.Tensor], detector) -> int:
    """The driving frame whose 68 landmarks, normalised, are nearest (sum of squares) to the
    source's; frames without a face are skipped, none at all gives frame 0. `detector` is a
    `common.landmarks.LandmarkDetector`; images are the network inputs' colour channels."""
    try:
        source = normalised_keypoints(detector.detect(rgbd_to_rgb_uint8(source_rgbd), name="rendered avatar"))
    except NoFaceError as exc:
        raise NoFaceError(f"--find_best: {exc}") from None
    best, best_distance = 0, np.inf
    for number, frame in enumerate(frames):
        faces = detector.detect_all(rgbd_to_rgb_uint8(frame))
        if not faces:
            continue
        distance = ((source - normalised_keypoints(faces[0].landmarks)) ** 2).sum()
        if distance < best_distance:
            best, best_distance = number, distance
    return best


# ----------------------------------------------------------------------------------- animation
@dataclass(frozen=True, eq=False)
class FrameResult:
    """One animated frame: the network's RGB [3,H,W] (unclamped), its depth as uint16 [H,W], the
    controllers' tracking, the vertex displacement [V,3] and the two renders [H,W,3] in [-1,1]."""

    rgb: torch.Tensor
    depth_u16: np.ndarray
    tracking: Tracking
    displacement: np.ndarray
    front: np.ndarray
    rotated: np.ndarray


class Animator:
    """The per-frame loop of infer.py on one prepared avatar.

    `generator` is VFA's inference Generator (with the student); `source` the rendered avatar
    (`vfa.render.render_source`), `source_rgbd` its network input (`norm_image`), `controllers`
    and `control` the controllers and their weights. Call `set_start(frame)` once, then
    `animate(frame)` per driving frame ([1,4,H,W] network inputs).

    `precision` ("fp32", "bf16", "fp16" on a GPU; `common.precision`) applies to the generator's
    forward passes only: its outputs are taken back to float32 before tracking, and the tracking,
    un-projection, mesh deformation and rendering always run in float32/float64.
    """

    def __init__(
        self,
        generator,
        source: SourceRender,
        source_rgbd: torch.Tensor,
        controllers: Controllers,
        control: ControlWeights,
        lap_times: int = LAP_TIMES,
        lap_lambda: float = LAP_LAMBDA,
        precision: str = "fp32",
    ):
        self.generator = generator
        self.device = next(generator.parameters()).device
        self.source = source
        self.source_rgbd = source_rgbd.to(self.device)
        self.controllers = controllers
        self.control = control
        self.lap_times, self.lap_lambda = lap_times, lap_lambda
        self.h_start = None
        self.precision = precision
        check_precision(precision, self.device)

    @torch.no_grad()
    def set_start(self, frame: torch.Tensor) -> None:
        """h_start = enc.enc_motion(frame): the driving pose the motion is taken relative to."""
        with autocast(self.precision, self.device):
            self.h_start = self.generator.enc.enc_motion(frame.to(self.device)).float()

    @torch.no_grad()
    def animate(self, frame: torch.Tensor, render_views: bool = True) -> FrameResult:
        if self.h_start is None:
            raise RuntimeError("Animator.set_start must be called before animate")
        with autocast(self.precision, self.device):
            recon, extra = self.generator(self.source_rgbd, frame.to(self.device), h_start=self.h_start, testing=True)
        recon = recon.float()
        depth_u16 = depth_to_uint16(recon[0, 3].cpu().numpy())
        flow = extra["rgb_motion_flow"][0].float().cpu().numpy()
        tracking = track_controllers(
            flow, depth_u16, self.controllers, self.source.camera, self.source.depth_min, self.source.depth_max
        )
        displacement = blend_displacements(
            self.control.weights, self.control.index, tracking.translations, tracking.untracked
        )
        displacement = laplacian_smooth(
            displacement, self.control.weights_lap, self.control.index_lap, self.lap_times, self.lap_lambda
        )
        front = rotated = None
        if render_views:
            front, rotated = self.render_views(displacement)
        return FrameResult(recon[0, :3].cpu(), depth_u16, tracking, displacement, front, rotated)

    def render_views(self, displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The moved avatar from the source camera and from the rotated view, each in [-1,1]."""
        mesh = self.source.mesh
        moved = mesh.vertices.astype(np.float64) + displacement
        front = render_panel(mesh.with_vertices(moved), self.source.camera)
        rotated = render_panel(mesh.with_vertices(rotated_view(moved)), self.source.camera)
        return front, rotated
