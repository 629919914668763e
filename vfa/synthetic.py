"""Synthetic RGBD inputs for VFA built from the shared sample (`tools.make_sample_data`), which has
photos and landmarks but neither depth nor a BFM09 model; `vfa.sample_demo` and `vfa.demo_model`
use them. The depth is made up, not a sensor's:

* face depth from 68 landmarks: the face is the ellipse fitted to the jaw line and its mirror
  image above the ear-to-ear line (the forehead); inside it the surface rises toward the viewer
  as a dome (0.25 x the face width at the centre) plus a narrow bump along the nose
  (0.2 x the face width); nothing outside the ellipse;
* an avatar: a photo cropped to its mediapipe face box as `vfa.preprocess` crops, as a textured
  heightfield: a grid of vertices over the face ellipse, each placed on the source camera's ray
  through its pixel at that depth and coloured by the photo there, so the avatar rendered from the
  front shows the photo and mediapipe FaceMesh finds the face (the controllers) on it as on a
  rendered BFM09 avatar;
* a driving clip: frames with their depth built the same way from their landmarks (metres: the
  face 0.15 m wide at 0.35 m), run through `vfa.preprocess` as an RGB + EXR capture:
  color/output.mp4 + 16-bit FFV1 depth/output.nut, the original's driving layout;
* training videos: copies of such a clip in the MMFace4D layout `vfa.train` reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from common.image import read_image
from common.sample import require
from common.video import iter_frames, read_depth_video, write_depth_video, write_exr, write_video
from vfa import infer, preprocess
from vfa.facemesh import face_mesh_landmarks
from vfa.mesh import Mesh
from vfa.render import IMAGE_SIZE, SOURCE_EYE, Camera, screen_to_world

SIZE = IMAGE_SIZE  # VFA's only resolution
FOREHEAD = 0.85  # the forehead's height as a fraction of the ear-line-to-chin height
DOME = 0.25  # face centre's height over the ellipse rim, x the face width
# The nose bump's height (x the face width) and its Gaussian widths (x the nose's length and width).
# A narrow nose keeps the nearest region small: VFA maps the nearest point to -1, as the background,
# and where the predicted depth overshoots it a controller there reads "background", is untracked,
# and a vertex left with no tracked controller stops the whole frame's mesh motion.
NOSE, NOSE_SPREAD = 0.2, (0.3, 0.3)
FACE_WIDTH_M, FACE_DISTANCE_M = 0.15, 0.35  # the synthetic capture (preprocess drops depth >= 0.5 m)
AVATAR_GRID = 192  # vertices across the avatar's view (about 22k fall inside the face)
CAPTURE_NAME = "output"  # vfa.preprocess's --output_name


# ------------------------------------------------------------------------------- synthetic depth
def face_ellipse(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre [2], half axes [2], angle in radians) of the ellipse fitted to the jaw line (iBUG
    0-16) and its mirror image above the ear-to-ear line (0-16) scaled by FOREHEAD."""
    jaw = np.asarray(landmarks, dtype=np.float64)[:17]
    left, right = jaw[0], jaw[16]
    normal = np.array([right[1] - left[1], left[0] - right[0]])
    normal /= np.linalg.norm(normal)
    if np.dot(jaw[8] - left, normal) < 0:
        normal = -normal  # toward the chin
    forehead = jaw - (1 + FOREHEAD) * ((jaw - left) @ normal)[:, None] * normal
    (cx, cy), (width, height), angle = cv2.fitEllipse(np.concatenate([jaw, forehead]).astype(np.float32))
    return np.array([cx, cy]), np.array([width, height]) / 2, np.deg2rad(angle)


def face_height(landmarks: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside the face ellipse, height toward the viewer in pixels) at image points (x, y)
    (continuous coordinates, pixel centres at .5): the dome plus the nose bump."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    centre, half, angle = face_ellipse(landmarks)
    dx, dy = x - centre[0], y - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / half[0]
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / half[1]
    radius2 = u**2 + v**2
    width = 2 * half.min()
    dome = DOME * width * np.sqrt(np.clip(1 - radius2, 0, 1))
    top, tip = landmarks[27], landmarks[30]
    length = np.linalg.norm(tip - top)
    along = (tip - top) / length
    middle = (landmarks[28] + tip) / 2
    nose_width = np.linalg.norm(landmarks[35] - landmarks[31])
    a = (x - middle[0]) * along[0] + (y - middle[1]) * along[1]
    b = -(x - middle[0]) * along[1] + (y - middle[1]) * along[0]
    spread = NOSE_SPREAD[0] * length, NOSE_SPREAD[1] * nose_width
    nose = NOSE * width * np.exp(-0.5 * ((a / spread[0]) ** 2 + (b / spread[1]) ** 2))
    inside = radius2 < 1
    return inside, np.where(inside, dome + nose, 0.0)


def depth_metres(landmarks: np.ndarray, size: int) -> np.ndarray:
    """[size, size] float32 depth of a synthetic capture: the face FACE_WIDTH_M wide at
    FACE_DISTANCE_M, 0 (no reading) outside the face ellipse."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    inside, height = face_height(landmarks, x, y)
    metres_per_pixel = FACE_WIDTH_M / (2 * face_ellipse(landmarks)[1].min())
    return np.where(inside, FACE_DISTANCE_M - height * metres_per_pixel, 0.0).astype(np.float32)


# -------------------------------------------------------------------------------------- avatar
def face_crop(photo: np.ndarray, landmarks: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo cropped to its mediapipe face box as `vfa.preprocess` crops (black beyond the
    image), resized to SIZE, and its landmarks moved along."""
    height, width = photo.shape[:2]
    x, y, w, h = preprocess.face_box(face_mesh_landmarks(photo, name=name), width, height)
    scale = np.array([SIZE / w, SIZE / h])
    affine = np.array([[scale[0], 0, -x * scale[0]], [0, scale[1], -y * scale[1]]])
    crop = cv2.warpAffine(photo, affine, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop, (np.asarray(landmarks, dtype=np.float64) - [x, y]) * scale


def heightfield_avatar(photo: np.ndarray, landmarks: np.ndarray, grid: int = AVATAR_GRID) -> Mesh:
    """The face of a SIZE x SIZE photo as a heightfield mesh (module docstring); colours 0-1."""
    t = (np.arange(grid) + 0.5) * SIZE / grid
    x, y = np.meshgrid(t, t)
    inside, height = face_height(landmarks, x, y)
    camera = Camera.looking_at_origin(SOURCE_EYE)
    world_per_pixel = SOURCE_EYE[2] / camera.focal_length  # at the origin's depth
    depth = SOURCE_EYE[2] - height * world_per_pixel
    # vfa.render's screen positions count from pixel centres
    screen = np.stack([x.ravel() - 0.5, y.ravel() - 0.5, 1.0 / depth.ravel()], axis=1)
    keep = inside.ravel()
    ids = np.full(grid * grid, -1)
    ids[keep] = np.arange(keep.sum())
    ids = ids.reshape(grid, grid)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    faces = np.concatenate([np.stack(corners, -1).reshape(-1, 3) for corners in ((a, c, b), (b, c, d))])
    faces = faces[(faces >= 0).all(axis=1)]
    remap = (x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32)
    colours = cv2.remap(photo.astype(np.float32), *remap, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    vertices = screen_to_world(screen[keep], camera)
    return Mesh(vertices, faces, colours.reshape(-1, 3)[keep] / 255.0)


# ------------------------------------------------------------------------------------- driving
def sample_images(paths: list[Path], sample: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames at SIZE x SIZE and their 68 landmarks [N, 68, 2] in those pixels."""
    images, points = [], []
    for path, marks in paths:
        image = read_image(path)
        images.append(read_image(path, SIZE) if image.shape[:2] != (SIZE, SIZE) else image)
        points.append(np.load(require(marks, sample))[:68] * (SIZE / image.shape[1]))
    return images, np.asarray(points, dtype=np.float64)


def write_driving_rgbd(frames: list[np.ndarray], landmarks: np.ndarray, work: Path, out: Path) -> Path:
    """`vfa.preprocess` of a synthetic RGB + EXR capture of `frames`; moves its result to `out`
    (color/output.mp4, depth/output.nut) and returns the mp4."""
    capture = work / "capture"
    (capture / "rgb").mkdir(parents=True)
    for index, (frame, points) in enumerate(zip(frames, landmarks)):
        cv2.imwrite(str(capture / "rgb" / f"{index}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
        write_exr(capture / "depth" / f"{index}.exr", depth_metres(points, SIZE))
    colour_path, _ = preprocess.preprocess(capture, CAPTURE_NAME)
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(colour_path.parent.parent), out)
    return out / "color" / f"{CAPTURE_NAME}.mp4"


def write_clip_copies(root: Path, person: str, colour_path: Path, copies: int) -> Path:
    """root/MMFace4D/<person>/ with `copies` copies of a preprocessed clip, copy k starting at frame
    k·n/copies (vfa.dataset takes one sample per video: source = its frame 0, driving = one of its
    frames; it trains on the first 80 % of a person's videos); returns root."""
    colours = list(iter_frames(colour_path))
    depths = read_depth_video(infer.depth_video_path(str(colour_path)))
    folder = root / "MMFace4D" / person
    for copy in range(copies):
        order = np.roll(np.arange(len(colours)), -copy * len(colours) // copies)
        write_video(folder / "color" / f"{copy}.mp4", (colours[i] for i in order), fps=preprocess.FPS, crf=3)
        write_depth_video(folder / "depth" / f"{copy}.nut", (depths[i] for i in order), fps=preprocess.FPS)
    return root
