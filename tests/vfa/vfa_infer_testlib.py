"""Small avatars and RGBD driving clips for the VFA inference tests (no BFM09 model file needed).

The avatar is a heightfield of the sample's face photo (`tools.make_sample_data`'s source.png, a
real face): a grid of vertices spanning the view of the source camera, coloured by the photo,
pushed toward the camera by a smooth bump (slightly non-square: with a square grid every quad
diagonal lies on the image's anti-diagonal, through pixel centres, which the rasteriser then
leaves empty as pytorch3d does). Rendered from eye (0, 0, 8) it shows the photo
(slightly distorted), on which mediapipe FaceMesh finds a face as on a rendered BFM avatar.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from common.video import write_depth_video, write_video
from vfa.mesh import Mesh

SAMPLE_FRAMES = 4


@functools.lru_cache(maxsize=1)
def sample_folder() -> Path:
    """The repository sample (4 driving frames), built once per test session in a temp folder."""
    import atexit
    import shutil
    import tempfile

    from tools.make_sample_data import Motion, make_sample

    folder = Path(tempfile.mkdtemp(prefix="vfa_infer_sample_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    make_sample(folder, size=256, motion=Motion(frames=SAMPLE_FRAMES))
    return folder


def photo_heightfield(photo_rgb: np.ndarray, grid: int = 96, bump: float = 0.3, half_width: float = 1.013) -> Mesh:
    """A grid x grid vertex mesh: vertex (row r, column c) samples the photo there, sits at
    x = -w..w left to right, y = w..-w top to bottom (the source camera's image axes), and
    z = bump·exp(-(x² + y²)/0.5) toward the camera. Colours on the 0-255 scale."""
    height, width = photo_rgb.shape[:2]
    t = np.linspace(0.0, 1.0, grid)
    rows, columns = np.meshgrid(t * (height - 1), t * (width - 1), indexing="ij")
    colours = photo_rgb[np.rint(rows).astype(int), np.rint(columns).astype(int)].reshape(-1, 3)
    x = (columns / (width - 1) * 2 - 1) * half_width
    y = (1 - rows / (height - 1) * 2) * half_width * 0.991  # no mesh diagonal through pixel centres
    z = bump * np.exp(-(x**2 + y**2) / 0.5)
    ids = np.arange(grid * grid).reshape(grid, grid)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return Mesh(np.stack([x.ravel(), y.ravel(), z.ravel()], 1), faces, colours.astype(np.float32))


def sample_photo_rgb() -> np.ndarray:
    image = cv2.imread(str(sample_folder() / "source.png"), cv2.IMREAD_COLOR)
    return image[..., ::-1].copy()


def bump_depth(size: int = 256, shift: float = 0.0) -> np.ndarray:
    """uint16 depth in the preprocessed layout: a face-like bump on a disc, background 0,
    foreground in 1..65535 (near = small)."""
    y, x = (np.mgrid[0:size, 0:size] - size / 2 + 0.5) / (size / 2)
    x = x - shift
    radius2 = x**2 + y**2
    depth = 1.0 - np.exp(-radius2 / 0.4)
    foreground = radius2 < 0.8
    scaled = (depth - depth[foreground].min()) / np.ptp(depth[foreground]) * 65534 + 1
    return np.where(foreground, scaled, 0).astype(np.uint16)


def driving_frames(count: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB uint8 frames of the sample's driving clip and matching synthetic uint16 depths."""
    folder = sample_folder() / "driving"
    colours = [cv2.imread(str(path))[..., ::-1].copy() for path in sorted(folder.glob("*.png"))[:count]]
    depths = [bump_depth(shift=0.02 * i) for i in range(len(colours))]
    for colour, depth in zip(colours, depths):
        colour[depth == 0] = 0  # preprocessing blacks out the background
    return colours, depths


def write_driving_mp4(root: Path, count: int = 3, name: str = "clip") -> Path:
    """root/color/<name>.mp4 + root/depth/<name>.nut; returns the mp4 path."""
    colours, depths = driving_frames(count)
    path = write_video(root / "color" / f"{name}.mp4", colours, fps=30)
    write_depth_video(root / "depth" / f"{name}.nut", depths, fps=30)
    return path


def write_driving_folder(root: Path, count: int = 3) -> Path:
    """root/color/<i>.png (BGR files) + root/depth/<i>.png (16-bit)."""
    colours, depths = driving_frames(count)
    (root / "color").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    for index, (colour, depth) in enumerate(zip(colours, depths)):
        cv2.imwrite(str(root / "color" / f"{index}.png"), colour[..., ::-1])
        cv2.imwrite(str(root / "depth" / f"{index}.png"), depth)
    return root
