"""Animate source image(s) with a driving video: `python -m fsrt.demo --checkpoint ... --config ...`.

The sources are encoded once into the set-latent z; every driving frame then only costs its
keypoints, its expression vector and one decoder pass over the pixels, several frames at a time.
Each output frame is [driving frame | prediction] side by side, as the original writes it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from common.errors import InputError, cli_main
from common.image import IMAGE_SUFFIXES, read_image, tensor_to_image, to_uint8
from common.progress import get_logger, progress
from common.video import VideoWriter, iter_frames, video_info, write_frames
from fsrt.checkpoint import DEFAULT_KP_DETECTOR, load_pretrained

SIZE = 256  # the released models are trained at 256x256 only
log = get_logger("fsrt.demo")


# ------------------------------------------------------------------------------------ frames
def prepare(frame: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 HxWx3 -> float32 size x size x 3 (default SIZE) in [0, 1] by skimage's resize, as the
    original (no crop, aspect ratio not kept: faces must be cropped beforehand)."""
    from skimage.transform import resize

    size = size or SIZE
    return resize(frame, (size, size))[..., :3].astype(np.float32)


def to_tensor(frames: Iterable[np.ndarray]) -> torch.Tensor:
    """Prepared HxWx3 float frames -> [N, 3, H, W]."""
    return torch.from_numpy(np.stack(list(frames))).permute(0, 3, 1, 2).contiguous()


def read_sources(paths: list[str], source_idx: list[int] | None) -> np.ndarray:
    """[S, SIZE, SIZE, 3] prepared sources: each image is one source, a video gives its frames;
    `source_idx` picks among them (default: every image given, or frame 0 of a video)."""
    pool: list[np.ndarray] = []
    for path in paths:
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:
            pool.append(read_image(path))
        else:
            pool.extend(iter_frames(path))
    only_images = all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)
    indices = source_idx if source_idx is not None else (range(len(pool)) if only_images else [0])
    for index in indices:
        if not -len(pool) <= index < len(pool):
            raise InputError(f"{', '.join(paths)}: --source_idx {index} out of range ({len(pool)} frames)")
    return np.stack([prepare(pool[index]) for index in indices])


def batches(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------------------------ motion
def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of [N, 2] points; 0 where they span no area. Detectors may return
    coincident or collinear points, on which Qhull fails instead."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(points).volume)  # in 2-D the hull's "volume" is its area
    except QhullError:  # no 2-D simplex: all points coincide or lie on one line (to Qhull's precision)
        return 0.0


def transfer_motion(kp_driving: torch.Tensor, kp_source: torch.Tensor, kp_anchor: torch.Tensor,
                    relative: bool = False, adapt_scale: bool = False) -> torch.Tensor:
    """Keypoints the decoder gets for driving keypoints [T, K, 2].

    Absolute: the driving keypoints. Relative: the first source's keypoints [K, 2] moved by the
    driving motion since the anchor frame's keypoints [K, 2], scaled with `adapt_scale` by the
    ratio of the keypoint hulls' sizes, sqrt(area(source) / area(anchor)).
    """
    if not relative:
        return kp_driving
    scale = 1.0
    if adapt_scale:
        source, anchor = hull_area(kp_source.cpu().numpy()), hull_area(kp_anchor.cpu().numpy())
        for area, which in ((source, "source image"), (anchor, "anchor driving frame")):
            if area == 0:
                raise InputError(f"--adapt_scale: the keypoints of the {which} span no area (they coincide "
                                 "or lie on a line); run without --adapt_scale")
        scale = float(np.sqrt(source / anchor))
    return kp_source + (kp_driving - kp_anchor) * scale


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray | None:
    """68 landmarks centred and divided by sqrt(hull area): comparable across face sizes. None
    where the points span no area (coincident or collinear detections)."""
    centred = landmarks - landmarks.mean(axis=0, keepdims=True)
    area = hull_area(centred)
    return centred / np.sqrt(area) if area > 0 else None


def best_frame(source: np.ndarray, frames: Iterable[np.ndarray], detector) -> int:
    """Index of the driving frame whose normalised landmarks are closest to the source's.
    Images are prepared float frames; a frame without a face is a NoFaceError naming it. A
    driving frame whose landmarks span no area is never the best; the source's must span one."""
    reference = normalized_landmarks(detector.detect(to_uint8(source), name="source image"))
    if reference is None:
        raise InputError("source image: the detected landmarks span no area; cannot pick a best frame")
    distances = []
    for i, frame in enumerate(frames):
        landmarks = normalized_landmarks(detector.detect(to_uint8(frame), name=f"driving frame {i}"))
        distances.append(np.inf if landmarks is None else np.square(reference - landmarks).sum())
    if not np.isfinite(distances).any():
        raise InputError("no driving frame has landmarks that span an area; cannot pick a best frame")
    return int(np.argmin(distances))


# -------------------------------------------------------------------------------------- model
@torch.inference_mode()
def encode_sources(model, detector, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources [S, 3, H, W] -> (z [1, T, 768], source keypoints [S, K, 2])."""
    kp, expression = model.keypoints_and_expression(detector, sources)
    return model.encode(sources[None], kp[None], expression[None]), kp


@torch.inference_mode()
def drive_codes(model, detector, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Driving frames [B, 3, H, W] -> (keypoints [B, K, 2], expression vectors [B, E])."""
    return model.keypoints_and_expression(detector, frames)


@torch.inference_mode()
def render(model, z: torch.Tensor, kp: torch.Tensor, expression: torch.Tensor, height: int, width: int,
           max_num_pixels: int) -> torch.Tensor:
    """Predictions [B, 3, H, W] clamped to [0, 1] for B frames at once; at most `max_num_pixels`
    query pixels of all B frames together are decoded at a time, which bounds the memory."""
    chunk = max(1, max_num_pixels // len(kp))
    frames = model.render(z.expand(len(kp), -1, -1), kp, expression, height, width, chunk_size=chunk)
    return frames.clamp(0, 1)


def animate(model, detector, sources: torch.Tensor, driving: torch.Tensor, relative: bool = False,
            adapt_scale: bool = False, anchor: int = 0, batch_size: int = 4,
            max_num_pixels: int = 8192) -> torch.Tensor:
    """Predictions [T, 3, H, W] for in-memory sources [S, 3, H, W] and driving frames [T, 3, H, W];
    the relative motion is measured from driving frame `anchor` (the best frame)."""
    z, kp_source = encode_sources(model, detector, sources)
    kp, expression = drive_codes(model, detector, driving)
    kp = transfer_motion(kp, kp_source[0], kp[anchor], relative, adapt_scale)
    height, width = sources.shape[-2:]
    return torch.cat([render(model, z, kp[i:i + batch_size], expression[i:i + batch_size], height, width,
                             max_num_pixels) for i in range(0, len(kp), batch_size)])


# ------------------------------------------------------------------------------------- command
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsrt.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config (or a bundled name: vox256, vox256_2Source)")
    parser.add_argument("--checkpoint", required=True, help="FSRT checkpoint (vox256.pt, vox256_2Source.pt)")
    parser.add_argument("--kp_checkpoint", default=str(DEFAULT_KP_DETECTOR), help="keypoint detector checkpoint")
    parser.add_argument("--source_image", required=True, nargs="+",
                        help="source image(s), or one video whose frames --source_idx picks")
    parser.add_argument("--source_idx", type=int, nargs="+", default=None,
                        help="indices of the sources among the given images / video frames (negative from the end)")
    parser.add_argument("--driving_video", default="driving.mp4", help="driving video or folder of frames")
    parser.add_argument("--result_video", default="result.mp4", help="output video: [driving | result] per frame")
    parser.add_argument("--result_frames", default=None, help="also write the results alone, lossless, as DIR/00000.png ...")
    parser.add_argument("--relative", action="store_true", help="relative motion transfer (default absolute)")
    parser.add_argument("--adapt_scale", action="store_true", help="scale relative motion by the keypoint hulls' sizes")
    parser.add_argument("--find_best_frame", action="store_true",
                        help="measure relative motion from the driving frame most like the source (landmarks)")
    parser.add_argument("--best_frame", type=int, default=None, help="measure relative motion from this frame")
    parser.add_argument("--landmark_backend", default="dlib", choices=("dlib", "face_alignment"),
                        help="landmarks of --find_best_frame (face_alignment needs local weights, --fan_weights)")
    parser.add_argument("--fan_weights", default=None, help="folder of the face_alignment weight files")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is available")
    parser.add_argument("--audio", action="store_true", help="copy the driving video's audio into the result")
    parser.add_argument("--max_num_pixels", type=int, default=8192,
                        help="query pixels decoded at once (all frames of a batch together); lower it to save memory")
    parser.add_argument("--batch_size", type=int, default=4, help="driving frames per decoder call")
    opt = parser.parse_args(argv)
    if opt.max_num_pixels < 1 or opt.batch_size < 1:
        parser.error("--max_num_pixels and --batch_size must be positive")
    return opt


@cli_main
def main(argv=None) -> int:
    opt = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not opt.cpu else "cpu"
    fps = video_info(opt.driving_video).fps  # fails early, before anything is computed or written
    sources = read_sources(opt.source_image, opt.source_idx)
    detector, model = load_pretrained(opt.config, opt.checkpoint, opt.kp_checkpoint, device)

    anchor = opt.best_frame or 0
    if opt.find_best_frame and opt.best_frame is None:
        from common.landmarks import LandmarkDetector

        landmarks = LandmarkDetector(opt.landmark_backend, device=device, flip_input=True, weights_dir=opt.fan_weights)
        anchor = best_frame(sources[0], map(prepare, iter_frames(opt.driving_video)), landmarks)
        log.info("best frame: %d", anchor)

    # Pass 1: keypoints and expressions of every driving frame (small), so that relative motion
    # can be measured from any anchor frame without holding the video in memory.
    z, kp_source = encode_sources(model, detector, to_tensor(sources).to(device))
    codes = [drive_codes(model, detector, to_tensor(batch).to(device))
             for batch in batches(map(prepare, iter_frames(opt.driving_video)), opt.batch_size)]
    kp, expression = (torch.cat(parts) for parts in zip(*codes))
    if not -len(kp) <= anchor < len(kp):
        raise InputError(f"{opt.driving_video}: --best_frame {anchor} out of range ({len(kp)} frames)")
    kp = transfer_motion(kp, kp_source[0], kp[anchor], opt.relative, opt.adapt_scale)

    # Pass 2: render and write; the video only replaces --result_video once complete.
    frames = batches(map(prepare, iter_frames(opt.driving_video)), opt.batch_size)
    with VideoWriter(opt.result_video, fps=fps) as writer:
        start = 0
        for batch in progress(frames, desc="rendering", total=-(-len(kp) // opt.batch_size)):
            stop = start + len(batch)
            results = tensor_to_image(render(model, z, kp[start:stop], expression[start:stop], SIZE, SIZE,
                                             opt.max_num_pixels))
            for driving, result in zip(batch, results):
                writer.write(np.concatenate([to_uint8(driving), result], axis=1))
            if opt.result_frames:
                write_frames(opt.result_frames, results, start=start)
            start = stop
    if opt.audio:
        mux_audio(opt.result_video, opt.driving_video)
    log.info("wrote %s (%d frames at %.3g fps)", opt.result_video, start, fps)
    return 0


def mux_audio(result: str, driving: str) -> None:
    """Copy the driving video's first audio stream into `result` (video stream copied, not re-encoded)."""
    import os

    import av

    result = Path(result)
    tmp = result.with_name(f".{result.stem}.audio{result.suffix}")
    with av.open(driving) as audio_in:
        if not audio_in.streams.audio:
            raise InputError(f"{driving}: --audio given but the driving video has no audio stream")
        with av.open(str(result)) as video_in, av.open(str(tmp), "w") as out:
            video_out = out.add_stream_from_template(video_in.streams.video[0])
            audio_out = out.add_stream_from_template(audio_in.streams.audio[0])
            for stream, target in ((video_in.streams.video[0], video_out), (audio_in.streams.audio[0], audio_out)):
                for packet in stream.container.demux(stream):
                    if packet.dts is not None:  # the demuxer's final flush packet
                        packet.stream = target
                        out.mux(packet)
    os.replace(tmp, result)


if __name__ == "__main__":
    raise SystemExit(main())
