"""Video and frame-sequence IO on PyAV: frame-exact NumPy in and out, in process, no subprocess.

Frames are HxWx3 uint8 RGB. Sources are video files (mp4, avi, mkv, mov, webm, gif, ...) or
folders of images read in sorted name order. `iter_frames` streams one frame at a time, so a
long video is never held in memory; `read_video` stacks a short clip. A folder has no frame
rate: `video_info` reports `default_fps` (25) for it.

Depth (VFA) is 16-bit: FFV1 `gray16le` in .nut/.mkv round-trips bit-exactly, and single float
frames go to OpenEXR as channel Y, which OpenCV and the OpenEXR library both read back. The
8-bit side-by-side layout of VFA's RGB-D videos puts the depth (grey) left of the colour frame.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.image import list_images, read_image, write_image
from common.progress import progress

DEFAULT_FPS = 25.0

# Array layout -> PyAV input pixel format of `VideoWriter.write`.
_INPUT_FORMATS = {("uint8", 3): "rgb24", ("uint8", 2): "gray", ("uint16", 2): "gray16le"}


@dataclass(frozen=True)
class VideoInfo:
    """What a reader will get: `width`/`height` are the displayed (rotated) size."""

    fps: float
    frames: int | None  # None when the container does not store a count (mkv, webm, nut)
    width: int
    height: int
    codec: str
    pix_fmt: str  # the decoder's pixel format, e.g. yuv420p, gray16le; "rgb24" for a folder
    rotation: int = 0  # degrees counter-clockwise frames are turned on reading (phone videos)


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


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


def _decode(container, path: Path) -> Iterator:
    """PyAV frames of the first video stream; a decoding failure becomes an InputError."""
    import av

    count = 0
    try:
        for frame in container.decode(container.streams.video[0]):
            count += 1
            yield frame
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: video is corrupt after {count} frames ({_reason(exc)})") from None
    if count == 0:
        raise InputError(f"{path}: video holds no decodable frames")


def _to_array(frame, pix_fmt: str) -> np.ndarray:
    """Frame as NumPy, turned upright as ffmpeg's own autorotation would show it."""
    array = frame.to_ndarray(format=pix_fmt)
    turns = round(frame.rotation / 90) % 4
    # Contiguous, because torch.from_numpy rejects the negative strides of a rot90 view.
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _folder_images(folder: Path) -> list[Path]:
    images = list_images(folder)
    if not images:
        raise InputError(f"{folder}: folder holds no images")
    return images


def video_info(path: str | os.PathLike, default_fps: float = DEFAULT_FPS) -> VideoInfo:
    """Frame rate, frame count (if stored), size, codec and rotation of a video or image folder.

    `default_fps` is reported for a folder of images and for a stream that stores no rate.
    """
    path = Path(path)
    if path.is_dir():
        images = _folder_images(path)
        height, width = read_image(images[0]).shape[:2]
        return VideoInfo(default_fps, len(images), width, height, "images", "rgb24")
    with _open(path) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        # Rotation is frame side data in PyAV, so the first frame is decoded to learn it.
        rotation = int(next(_decode(container, path)).rotation)
        width, height = context.width, context.height
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            fps=float(rate) if rate else default_fps,
            frames=stream.frames or None,
            width=width,
            height=height,
            codec=context.name,
            pix_fmt=context.format.name if context.format else "unknown",
            rotation=rotation,
        )


def iter_frames(
    path: str | os.PathLike, every_k: int = 1, max_frames: int | None = None, pix_fmt: str = "rgb24"
) -> Iterator[np.ndarray]:
    """Stream frames: every `every_k`-th one (0, k, 2k, ...), at most `max_frames` of them.

    The file is opened, and a missing or unreadable one reported, on this call rather than at
    the first frame. `pix_fmt` is the PyAV format frames are converted to: `rgb24` gives HxWx3
    uint8, `gray16le` gives HxW uint16 (depth). Image folders are read as `rgb24` only.
    """
    if every_k < 1 or (max_frames is not None and max_frames < 0):
        raise InputError(f"need every_k >= 1 and max_frames >= 0, got {every_k} and {max_frames}")
    path = Path(path)
    if path.is_dir():
        if pix_fmt != "rgb24":
            raise InputError(f"{path}: a folder of images is read as rgb24, not {pix_fmt}")
        return map(read_image, _folder_images(path)[::every_k][:max_frames])
    return _video_frames(_open(path), path, every_k, max_frames, pix_fmt)


def _video_frames(container, path: Path, every_k: int, max_frames: int | None, pix_fmt: str) -> Iterator[np.ndarray]:
    with container:
        picked = itertools.islice(_decode(container, path), 0, None, every_k)
        # islice stops before decoding past the last wanted frame.
        for frame in itertools.islice(picked, max_frames):
            yield _to_array(frame, pix_fmt)


def read_video(
    path: str | os.PathLike, every_k: int = 1, max_frames: int | None = None, desc: str | None = None
) -> np.ndarray:
    """A short clip as one (T,H,W,3) uint8 array; `desc` shows a progress bar on a terminal."""
    frames = iter_frames(path, every_k, max_frames)
    if desc:
        frames = progress(frames, desc=desc)
    return np.stack(list(frames))


class VideoWriter:
    """Write frames one at a time; the video appears under `path` only on a clean close.

    Frames go to a hidden `.<stem>.partial<suffix>` file beside `path`, renamed over `path` on
    `close()`. An exception inside the `with` block deletes it, so a crash never leaves a
    truncated video under the final name and an older file there survives untouched.

    Default: H.264 (libx264, yuv420p) at `crf` (lower is better; 15 gives about 38 dB PSNR on
    face footage, where yuv420p's halved colour resolution alone caps it near 40). yuv420p
    needs even sizes, so an odd height or width gets one replicated edge row (bottom) or
    column (right); `padded` says so and readers get the padded size. Frames are HxWx3 uint8
    RGB, HxW uint8 grey, or HxW uint16 (with `codec='ffv1', pix_fmt='gray16le'`, see
    `write_depth_video`). `options` are extra encoder options.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        codec: str = "libx264",
        crf: int = 15,
        pix_fmt: str = "yuv420p",
        options: dict | None = None,
    ):
        if fps <= 0:
            raise InputError(f"{path}: fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.options = {"crf": str(crf)} if codec == "libx264" else {}
        self.options.update(options or {})
        self.padded = False
        self.frames_written = 0
        self._even = "420" in pix_fmt or pix_fmt == "nv12"  # chroma subsampled in both axes
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(discard=exc_type is not None)

    def _start(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except ValueError:
            suffix = self.path.suffix
            raise InputError(f"{self.path}: no video format is known for suffix '{suffix}'") from None
        # 1001 keeps NTSC rates such as 30000/1001 exact.
        self._stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = self.pix_fmt
        self._stream.options = self.options

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, str]:
        frame = np.asarray(frame)
        in_fmt = _INPUT_FORMATS.get((frame.dtype.name, frame.ndim))
        if in_fmt is None or (frame.ndim == 3 and frame.shape[2] != 3):
            raise InputError(
                f"{self.path}: frames must be HxWx3 uint8, HxW uint8 or HxW uint16, got {frame.dtype} {frame.shape}"
            )
        height, width = frame.shape[:2]
        if self._even and (height % 2 or width % 2):
            self.padded = True
            pad = ((0, height % 2), (0, width % 2)) + ((0, 0),) * (frame.ndim - 2)
            frame = np.pad(frame, pad, mode="edge")
        return np.ascontiguousarray(frame), in_fmt

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame; every frame must have the size of the first."""
        import av

        frame, in_fmt = self._prepare(frame)
        if self._container is None:
            self._start(*frame.shape[:2])
        if frame.shape[:2] != (self._stream.height, self._stream.width):
            raise InputError(
                f"{self.path}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
                f"the video's {self._stream.width}x{self._stream.height}"
            )
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format=in_fmt)):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self, discard: bool = False) -> None:
        """Flush and move the video to `path`, or delete it when `discard`. No frames: no file."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            try:
                if not discard:
                    for packet in self._stream.encode():  # flush the encoder's delayed frames
                        container.mux(packet)
            finally:
                container.close()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        if discard:
            self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self.path)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = DEFAULT_FPS,
    crf: int = 15,
    desc: str | None = None,
    **kwargs,
) -> Path:
    """Stream an iterable of frames into a video (H.264 mp4 by default); see `VideoWriter`.

    `kwargs` go to `VideoWriter` (codec, pix_fmt, options); `desc` shows a progress bar.
    """
    if desc:
        frames = progress(frames, desc=desc)
    with VideoWriter(path, fps=fps, crf=crf, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    if writer.frames_written == 0:
        raise InputError(f"{path}: no frames to write")
    return writer.path


def mux_audio(result: str | os.PathLike, audio_source: str | os.PathLike) -> None:
    """Copy the first audio stream of `audio_source` into the video `result`, in place (the video
    stream is copied, not re-encoded)."""
    import av

    result = Path(result)
    tmp = result.with_name(f".{result.stem}.audio{result.suffix}")
    with av.open(str(audio_source)) as audio_in:
        if not audio_in.streams.audio:
            raise InputError(f"{audio_source}: no audio stream to copy")
        with av.open(str(result)) as video_in, av.open(str(tmp), "w") as out:
            video_out = out.add_stream_from_template(video_in.streams.video[0])
            audio_out = out.add_stream_from_template(audio_in.streams.audio[0])
            for stream, target in ((video_in.streams.video[0], video_out), (audio_in.streams.audio[0], audio_out)):
                for packet in stream.container.demux(stream):
                    if packet.dts is not None:  # the demuxer's final flush packet
                        packet.stream = target
                        out.mux(packet)
    os.replace(tmp, result)


def write_frames(folder: str | os.PathLike, frames: Iterable[np.ndarray], start: int = 0) -> list[Path]:
    """Lossless PNG sequence `folder/00000.png`, `00001.png`, ... numbered from `start`."""
    folder = Path(folder)
    return [write_image(folder / f"{i:05d}.png", frame) for i, frame in enumerate(frames, start)]


def write_depth_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS) -> Path:
    """16-bit depth frames (HxW uint16) as lossless FFV1 gray16le in a .nut or .mkv file."""
    path = Path(path)
    if path.suffix.lower() not in (".nut", ".mkv"):
        raise InputError(f"{path}: 16-bit depth video needs a .nut or .mkv file")
    checked = (_as_depth(frame, path) for frame in frames)
    return write_video(path, checked, fps=fps, codec="ffv1", pix_fmt="gray16le")


def _as_depth(frame: np.ndarray, path: Path) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint16 or frame.ndim != 2:
        raise InputError(f"{path}: depth frames must be HxW uint16, got {frame.dtype} {frame.shape}")
    return frame


def read_depth_video(path: str | os.PathLike) -> np.ndarray:
    """(T,H,W) uint16 frames of a 16-bit grey video, exactly as written."""
    info = video_info(path)
    # Converting an 8-bit video to gray16 would "work" and silently give wrong depth.
    if info.pix_fmt not in ("gray16le", "gray16be"):
        raise InputError(f"{path}: not a 16-bit depth video (pixel format {info.pix_fmt})")
    return np.stack(list(iter_frames(path, pix_fmt="gray16le")))


@contextlib.contextmanager
def _opencv_exr(path: Path):
    """cv2 with its EXR codec enabled; OpenCV errors become clear ones."""
    # OpenCV reads the switch once, at its first EXR call in the process (not at import);
    # an explicit value set by the user wins.
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    try:
        yield cv2
    except cv2.error as exc:
        if "OpenEXR codec is disabled" in str(exc):
            raise RuntimeError(
                "OpenCV's EXR codec is disabled in this process: it was used before "
                "OPENCV_IO_ENABLE_OPENEXR=1 was set (or the variable is not 1). Start Python with "
                "OPENCV_IO_ENABLE_OPENEXR=1 in the environment"
            ) from None
        raise InputError(f"{path}: OpenCV could not handle this EXR file ({_reason(exc)})") from None


def write_exr(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """One HxW depth frame as single-channel (Y) float32 OpenEXR, lossless. Written atomically."""
    path = Path(path)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"{path}: an EXR depth frame must be HxW, got shape {depth.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.exr")
    try:
        with _opencv_exr(path) as cv2:
            written = cv2.imwrite(str(tmp), depth, [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT])
        if not written:
            raise InputError(f"{path}: could not write the EXR file")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_exr(path: str | os.PathLike) -> np.ndarray:
    """An HxW float32 depth frame from an OpenEXR file.

    Read as VFA's preprocessing does (`cv2.IMREAD_ANYDEPTH`): a one-channel (Y, R, G or B) file
    comes back exactly; a colour file is converted to grey.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: EXR file not found")
    with _opencv_exr(path) as cv2:
        depth = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH)
    if depth is None:
        raise InputError(f"{path}: not a readable EXR file")
    return depth.astype(np.float32, copy=False)


def depth_to_gray8(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Depth as 8-bit grey in 3 channels: [lo, hi] split evenly into 256 levels.

    `lo`/`hi` default to the frame's finite min/max; NaN (no depth) becomes 0. With
    `lo=0, hi=65536` a uint16 frame gives `depth // 256`, the preview VFA's preprocessing writes.
    """
    depth = np.asarray(depth, dtype=np.float64)
    finite = depth[np.isfinite(depth)]
    if lo is None:
        lo = float(finite.min()) if finite.size else 0.0
    if hi is None:
        hi = float(finite.max()) if finite.size else lo
    scaled = np.nan_to_num((depth - lo) / (hi - lo), nan=0.0) if hi > lo else np.zeros_like(depth)
    grey = np.clip(np.floor(scaled * 256), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def side_by_side(depth: np.ndarray, colour: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """The 8-bit RGB-D frame VFA's data uses (Record3D export), H x 2W x 3: depth as grey on
    the left, colour on the right.

    uint8 `depth` (HxW or HxWx3) is taken as grey already; anything else goes through
    `depth_to_gray8(depth, lo, hi)`.
    """
    depth, colour = np.asarray(depth), np.asarray(colour)
    if depth.dtype == np.uint8:
        grey = depth if depth.ndim == 3 else np.repeat(depth[..., None], 3, axis=2)
    else:
        grey = depth_to_gray8(depth, lo, hi)
    if colour.dtype != np.uint8 or colour.ndim != 3 or grey.shape != colour.shape:
        raise InputError(
            f"depth {depth.shape} and colour {colour.dtype} {colour.shape} must be HxW and HxWx3 uint8 of one size"
        )
    return np.concatenate([grey, colour], axis=1)


def split_side_by_side(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `side_by_side`: (HxW uint8 depth = red channel of the left half, HxWx3 colour).

    VFA's preprocessing reads the same halves and takes the depth as this value / 256.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[1] % 2:
        raise InputError(f"a depth|colour frame is H x 2W x 3, got shape {frame.shape}")
    half = frame.shape[1] // 2
    return frame[:, :half, 0].copy(), frame[:, half:].copy()
