"""Video and frame-sequence IO built on PyAV: frame-exact NumPy in and out, no subprocess.

Frames are HxWx3 uint8 RGB. Sources are video files (mp4, avi, mkv, mov, webm, gif, ...) or
folders of images (sorted by name). Reading streams frame by frame, so long videos never sit
in memory unless `read_video` is asked for them.

Depth (VFA) is 16-bit: FFV1 `gray16le` in .nut/.mkv round-trips bit-exactly; single float
frames go to OpenEXR as channel Y, which both OpenCV and OpenEXR read back. The 8-bit
side-by-side layout puts the depth (grey, 3 channels) left of the colour frame.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from common.errors import InputError
from common.image import list_images, read_image, write_image

DEFAULT_FPS = 25.0  # a folder of images carries no frame rate


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int | None  # None when the container does not say
    width: int
    height: int
    codec: str


def _open(path: Path):
    import av

    if not path.exists():
        raise InputError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: contains no video stream")
    return container


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count (if known), size and codec of a video file or image folder."""
    path = Path(path)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise InputError(f"{path}: folder holds no images")
        h, w = read_image(images[0]).shape[:2]
        return VideoInfo(DEFAULT_FPS, len(images), w, h, "images")
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            fps=float(rate) if rate else DEFAULT_FPS,
            frames=stream.frames or None,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
        )


def iter_frames(path: str | os.PathLike, every_k: int = 1, max_frames: int | None = None,
                pix_fmt: str = "rgb24") -> Iterator[np.ndarray]:
    """Yield frames one at a time: every `every_k`-th, at most `max_frames` of them.

    `pix_fmt` is the PyAV format frames are converted to (`rgb24` -> HxWx3 uint8,
    `gray16le` -> HxW uint16 for depth).
    """
    if every_k < 1:
        raise InputError(f"every_k must be >= 1, got {every_k}")
    path = Path(path)
    if path.is_dir():
        yield from _iter_folder(path, every_k, max_frames)
        return
    import av

    count = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % every_k:
                    continue
                if max_frames is not None and count >= max_frames:
                    return
                yield frame.to_ndarray(format=pix_fmt)
                count += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: video is corrupt after {count} frames ({_reason(exc)})") from None
    if count == 0:
        raise InputError(f"{path}: video holds no decodable frames")


def _iter_folder(folder: Path, every_k: int, max_frames: int | None) -> Iterator[np.ndarray]:
    images = list_images(folder)[::every_k]
    if not images:
        raise InputError(f"{folder}: folder holds no images")
    for image in images[:max_frames]:
        yield read_image(image)


def read_video(path: str | os.PathLike, **kwargs) -> np.ndarray:
    """All frames as one (T,H,W,3) uint8 array; for short clips (see `iter_frames`)."""
    return np.stack(list(iter_frames(path, **kwargs)))


class VideoWriter:
    """Incremental video writer; the file appears under its final name only on a clean close.

    H.264 (libx264, yuv420p) by default; `codec='ffv1'` with `pix_fmt='gray16le'` stores
    16-bit depth losslessly. yuv420p needs even sizes, so odd frames are padded by one edge
    pixel (replicated) and the padding is documented, not hidden: `padded` tells.
    """

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, codec: str = "libx264",
                 crf: int = 15, pix_fmt: str = "yuv420p", options: dict | None = None):
        self.path = Path(path)
        self.fps = fps
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.options = {"crf": str(crf)} if codec == "libx264" else {}
        self.options.update(options or {})
        self.padded = False
        self.frames_written = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._container = None
        self._stream = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(discard=exc_type is not None)

    def _start(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        if self.pix_fmt == "yuv420p":
            height, width = height + height % 2, width + width % 2
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = self.pix_fmt
        self._stream.options = self.options

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.asarray(frame)
        if self._container is None:
            self._start(*frame.shape[:2])
        if self.pix_fmt == "yuv420p" and (frame.shape[0] % 2 or frame.shape[1] % 2):
            self.padded = True
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        if (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise InputError(f"{self.path}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
                             f"the video's {self._stream.width}x{self._stream.height}")
        in_fmt = "gray16le" if frame.dtype == np.uint16 else ("gray" if frame.ndim == 2 else "rgb24")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=in_fmt)):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self, discard: bool = False) -> None:
        if self._container is None:
            return
        try:
            if not discard:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
        if discard:
            self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self.path)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS,
                **kwargs) -> Path:
    """Write an iterable of frames (streamed) as a video; see `VideoWriter` for the options."""
    with VideoWriter(path, fps=fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    if writer.frames_written == 0:
        raise InputError(f"{path}: no frames to write")
    return Path(path)


def write_frames(folder: str | os.PathLike, frames: Iterable[np.ndarray], start: int = 0) -> list[Path]:
    """Lossless PNG sequence `folder/00000.png`, `00001.png`, ... (numbering from `start`)."""
    folder = Path(folder)
    return [write_image(folder / f"{i:05d}.png", frame) for i, frame in enumerate(frames, start)]


def write_depth_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS) -> Path:
    """16-bit depth frames (HxW uint16) as FFV1 gray16le; use a .nut or .mkv path."""
    path = Path(path)
    if path.suffix.lower() not in (".nut", ".mkv"):
        raise InputError(f"{path}: 16-bit depth video needs a .nut or .mkv file")
    checked = (_as_uint16(f, path) for f in frames)
    return write_video(path, checked, fps=fps, codec="ffv1", pix_fmt="gray16le")


def _as_uint16(frame: np.ndarray, path: Path) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint16 or frame.ndim != 2:
        raise InputError(f"{path}: depth frames must be HxW uint16, got {frame.dtype} {frame.shape}")
    return frame


def read_depth_video(path: str | os.PathLike) -> np.ndarray:
    """(T,H,W) uint16 frames of a gray16le video, exactly as written."""
    return np.stack(list(iter_frames(path, pix_fmt="gray16le")))


def _cv2_with_exr():
    import sys

    if "cv2" in sys.modules and os.environ.get("OPENCV_IO_ENABLE_OPENEXR") != "1":
        raise RuntimeError("OpenCV was imported before OPENCV_IO_ENABLE_OPENEXR=1 was set; "
                           "set it in the environment before starting Python to use .exr files")
    os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"  # read by OpenCV at import time
    import cv2

    return cv2


def write_exr(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """One HxW float32 depth frame as a single-channel (Y) OpenEXR file, lossless."""
    cv2 = _cv2_with_exr()
    path = Path(path)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"{path}: an EXR depth frame must be HxW, got shape {depth.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), depth, [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT]):
        raise InputError(f"{path}: could not write the EXR file")
    return path


def read_exr(path: str | os.PathLike) -> np.ndarray:
    """An HxW float32 depth frame from an OpenEXR file."""
    cv2 = _cv2_with_exr()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: EXR file not found")
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise InputError(f"{path}: not a readable EXR file")
    return depth if depth.ndim == 2 else depth[..., 0]


def depth_to_gray8(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Depth scaled linearly from [lo, hi] (default: its own min/max) to 8-bit grey, 3 channels."""
    depth = np.asarray(depth, dtype=np.float64)
    lo = float(depth.min()) if lo is None else lo
    hi = float(depth.max()) if hi is None else hi
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    grey = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def side_by_side(depth: np.ndarray, colour: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """The 8-bit depth|colour frame: depth as grey on the left, the colour frame on the right."""
    grey = depth if depth.dtype == np.uint8 and depth.ndim == 3 else depth_to_gray8(depth, lo, hi)
    if grey.shape != colour.shape:
        raise InputError(f"depth {grey.shape[:2]} and colour {colour.shape[:2]} sizes differ")
    return np.concatenate([grey, colour], axis=1)


def split_side_by_side(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `side_by_side`: (HxW uint8 depth, HxWx3 colour)."""
    if frame.shape[1] % 2:
        raise InputError(f"a depth|colour frame has an even width, got {frame.shape[1]}")
    half = frame.shape[1] // 2
    return frame[:, :half, 0].copy(), frame[:, half:].copy()
