"""Turn an RGB-D capture into VFA's training/driving data: `python -m vfa.preprocess --video_name PATH`.

Input, as the original `dataset/preprocess.py`:

* a folder with `rgb/<i>.jpg` and `depth/<i>.exr` (float metres), i = 0 … n−1 → output folder
  `<PATH>_output`;
* a Record3D export `NAME.mp4`: 8-bit frames with the depth in the left half (red channel,
  value / 256 metres) and the colour in the right half → output folder `NAME`.

Writes `<out>/color/<output_name>.mp4` (H.264 yuv420p, crf 3, 30 fps) and
`<out>/depth/<output_name>.nut` (16-bit FFV1, 0 = background), 256x256. The face box is found once,
in the first frame where mediapipe's FaceMesh (video mode) sees a face: the landmarks' bounding box,
made square by growing a taller-than-wide box 15 px downwards and widening it about its centre (a
wider box stays as it is). Per frame: depth that is NaN, ≤ 0 or ≥ 0.5 m is background (colour and
depth 0); the box is cropped and resized to 256x256 by nearest neighbour; the foreground depth is
clipped to its mean ± 2 std and stretched to 1 … 65535.

Deviations: a box reaching past the top or left image edge is clipped to the image (the original's
negative slice start wraps around); a frame whose foreground depth is constant gets 1 there (the
original divides by zero); no `tmp.mp4` depth preview is written to the current folder; nothing is
written when the input has no face or a bad frame (the videos appear only when complete).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.errors import InputError, NoFaceError, cli_main
from common.progress import progress
from common.video import VideoWriter, iter_frames, read_exr, video_info

SIZE = 256
FPS = 30
CRF = 3
FAR_LIMIT = 0.5  # metres: anything at or beyond is background
BOX_EXTENSION = 15  # pixels a taller-than-wide face box grows downwards before it is made square


def face_box(landmarks: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) from normalised landmarks [N, 2+] of a width x height frame: the bounding box,
    corners truncated to pixels; when w < h, h grows by 15, x moves left by (h − w) // 2, w = h."""
    points = np.asarray(landmarks, dtype=np.float64)
    x, y = int(points[:, 0].min() * width), int(points[:, 1].min() * height)
    w, h = int(points[:, 0].max() * width) - x, int(points[:, 1].max() * height) - y
    if w < h:
        h += BOX_EXTENSION
        x -= (h - w) // 2
        w = h
    return x, y, w, h


def crop_resize(color: np.ndarray, depth: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Background removed, the box cropped (clipped to the image) and resized to 256x256 by nearest
    neighbour: (HxWx3 uint8 colour, HxW float32 depth)."""
    import cv2

    background = ~(depth > 0) | (depth >= FAR_LIMIT)  # NaN included
    color = np.where(background[..., None], 0, color).astype(np.uint8)
    depth = np.where(background, 0, depth).astype(np.float32)
    x, y, w, h = box
    top, left = max(y, 0), max(x, 0)
    color, depth = color[top : y + h, left : x + w], depth[top : y + h, left : x + w]
    if color.size == 0:
        raise InputError(f"the face box {box} lies outside the {depth.shape[1]}x{depth.shape[0]} frames")
    size = (SIZE, SIZE)
    color = cv2.resize(color.astype(np.float32), size, interpolation=cv2.INTER_NEAREST).astype(np.uint8)
    return color, cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)


def normalize_depth(depth: np.ndarray) -> np.ndarray:
    """Foreground (> 0) clipped to mean ± 2 std, then min–max to [1, 65535], as uint16 (0 = background)."""
    depth = np.array(depth, dtype=np.float32)
    content = depth > 0
    if content.any():
        values = depth[content]
        mean, std = np.mean(values), np.std(values)
        values = np.clip(values, mean - std * 2, mean + std * 2)
        low, high = np.min(values), np.max(values)
        depth[content] = (values - low) / (high - low) * 65534 + 1 if high > low else 1
    return depth.astype(np.uint16)


def _checked(color: np.ndarray, depth: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    if color.shape[:2] != depth.shape[:2]:
        raise InputError(
            f"{what}: colour {color.shape[1]}x{color.shape[0]} and depth {depth.shape[1]}x{depth.shape[0]} "
            "differ in size"
        )
    return color, depth


def record3d_frames(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(RGB colour, depth in metres) of a Record3D depth|colour video: left half's red / 256, right half."""
    for index, frame in enumerate(iter_frames(path)):
        half = frame.shape[1] // 2
        depth = frame[:, :half, 0].astype(np.float32) / 256.0
        yield _checked(frame[:, half:], depth, f"{path} frame {index}")


def folder_frames(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(RGB colour, depth in metres) from `rgb/<i>.jpg` and `depth/<i>.exr`, i = 0 … n−1."""
    import cv2

    for index in range(len(os.listdir(path / "rgb"))):
        color_path = path / "rgb" / f"{index}.jpg"
        color = cv2.imread(str(color_path), cv2.IMREAD_COLOR)
        if color is None:
            raise InputError(f"{color_path}: missing or not a readable image (frames are rgb/0.jpg, 1.jpg, ...)")
        depth = read_exr(path / "depth" / f"{index}.exr")
        yield _checked(cv2.cvtColor(color, cv2.COLOR_BGR2RGB), depth, f"{path} frame {index}")


class Capture:
    """One input: where its frames come from, how many there are and the output folder."""

    def __init__(self, video_name: str | os.PathLike):
        path = Path(video_name)
        if path.is_dir():
            if not (path / "rgb").is_dir() or not (path / "depth").is_dir():
                raise InputError(f"{path}: a capture folder needs rgb/<i>.jpg and depth/<i>.exr")
            self.frames, self.count = lambda: folder_frames(path), len(os.listdir(path / "rgb"))
            self.out_dir = path.with_name(path.name + "_output")
        elif path.suffix == ".mp4":
            self.count = video_info(path).frames
            self.frames = lambda: record3d_frames(path)
            self.out_dir = path.with_suffix("")
        else:
            raise InputError(f"{path}: expected a folder (rgb/, depth/) or a Record3D .mp4")
        self.path = path


class VideoFaceMesh:
    """mediapipe FaceMesh in video mode (tracking between calls), refined 478 landmarks, one face,
    detection and tracking confidence 0.5: the original preprocessing's settings."""

    def __init__(self):
        from vfa.facemesh import face_mesh_solution

        self._graph = face_mesh_solution().FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """[478, 3] normalised landmarks (x, y in [0, 1]) of the face in an RGB uint8 frame, or None."""
        result = self._graph.process(np.ascontiguousarray(image))
        if not result.multi_face_landmarks:
            return None
        return np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float32)

    def close(self) -> None:
        self._graph.close()


def find_face_box(capture: Capture, face_mesh) -> tuple[int, int, int, int]:
    """The face box of the first frame where `face_mesh.landmarks` finds a face (frames in order)."""
    for color, _ in capture.frames():
        landmarks = face_mesh.landmarks(color)
        if landmarks is not None:
            return face_box(landmarks, color.shape[1], color.shape[0])
    raise NoFaceError(f"{capture.path}: FaceMesh found no face in any frame")


def preprocess(video_name: str | os.PathLike, output_name: str = "output", face_mesh=None) -> tuple[Path, Path]:
    """Write the colour mp4 and depth .nut of one capture; returns their paths. `face_mesh` has
    `landmarks(rgb uint8) -> [N, 2+] normalised (x, y) or None` (default: `VideoFaceMesh`)."""
    capture = Capture(video_name)
    owned = face_mesh is None
    face_mesh = VideoFaceMesh() if owned else face_mesh
    try:
        box = find_face_box(capture, face_mesh)
    finally:
        if owned and hasattr(face_mesh, "close"):
            face_mesh.close()
    color_path = capture.out_dir / "color" / f"{output_name}.mp4"
    depth_path = capture.out_dir / "depth" / f"{output_name}.nut"
    with contextlib.ExitStack() as stack:
        color_out = stack.enter_context(VideoWriter(color_path, fps=FPS, crf=CRF))
        depth_out = stack.enter_context(VideoWriter(depth_path, fps=FPS, codec="ffv1", pix_fmt="gray16le"))
        for color, depth in progress(capture.frames(), desc="vfa.preprocess", total=capture.count):
            color, depth = crop_resize(color, depth, box)
            color_out.write(color)
            depth_out.write(normalize_depth(depth))
    return color_path, depth_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video_name", required=True, help="capture folder (rgb/, depth/) or Record3D .mp4")
    parser.add_argument("--output_name", default="output", help="file name of the two output videos")
    args = parser.parse_args(argv)
    color, depth = preprocess(args.video_name, args.output_name)
    print(f"wrote {color} and {depth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main)())
