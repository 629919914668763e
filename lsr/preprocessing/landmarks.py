"""Landmark drawings of raw clips in LSR's processed-subject layout.

`python -m lsr.preprocessing.landmarks --data_dir DIR --output_dir OUT [--k 10]
 [--mode videos|images] [--backend face_alignment|dlib] [--device cpu] [--weights_dir DIR]`

`DIR` holds `<person>/<video>/<clip>`: a video file (`--mode videos`) or a folder of frames
(`--mode images`). For every clip it writes `OUT/<person>/<video>/<clip stem>/NNNNN_rgb.png`
(the frame, unchanged) and `NNNNN_contour.png` (the 68 landmarks of the first detected face drawn
in LSR's style at the frame's size, `common.drawing.draw_landmarks(..., 'lsr')`).

- videos: with n frames in the clip, frames `i` with `i % (n // k + 1) == 0` are taken and named
  by `i`; a clip giving other than exactly k frames is skipped (as the original).
- images: every image of the folder, in sorted order, renamed by position 00000, 00001, ...
- a frame without a face is dropped and the clip is padded back to its length by repeating the
  first successful (frame, drawing) pairs, so names and contents may no longer line up, as in the
  original; an empty marker `OUT/sanity_fails/<person>_<video>_<clip stem>` records it (the
  original wrote it to `./sanity_fails/` of the working directory). A clip with no face at all
  gets the marker and no output.

Resumable: a clip is written into a hidden partial folder renamed on completion, and clips whose
folder exists are skipped. Bad arguments give a one-line error; a clip that cannot be read is
reported on one line and skipped. The default backend is FAN (face-alignment, as the original);
it imports torch, lazily and only when chosen. `--backend dlib` imports no torch.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from common.errors import InputError, NoFaceError, cli_main
from common.image import IMAGE_SUFFIXES, list_images, write_image
from common.progress import progress

MODES = ("videos", "images")
SANITY_DIR = "sanity_fails"


def video_frame_indices(n_frames: int, k: int) -> list[int]:
    """Frame indices the original keeps from a clip of `n_frames` frames."""
    step = n_frames // k + 1
    return [i for i in range(n_frames) if i % step == 0]


def pick_video_frames(path: Path, k: int) -> tuple[list[np.ndarray], list[int]]:
    """The kept frames of a video and their indices in it."""
    from common.video import iter_frames, video_info

    n_frames = video_info(path).frames
    if n_frames is None:  # container stores no count: decode once to learn it
        n_frames = sum(1 for _ in iter_frames(path))
    indices = video_frame_indices(n_frames, k)
    if not indices:
        return [], []
    step = n_frames // k + 1
    frames = list(iter_frames(path, every_k=step, max_frames=len(indices)))
    return frames, indices[: len(frames)]


def pick_folder_frames(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """Every image of a frame folder in sorted order, numbered by position."""
    from common.image import read_image

    images = list_images(path)
    if not images:
        raise InputError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [read_image(image) for image in images], list(range(len(images)))


def draw_clip(frames: list[np.ndarray], detector) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
    """(frame, drawing) pairs padded to len(frames) by repeating the first ones; and whether any
    frame had no face. Empty if no frame had one."""
    from common.drawing import draw_landmarks

    pairs, failed = [], False
    for frame in frames:
        try:
            landmarks = detector.detect(frame)
        except NoFaceError:
            failed = True
            continue
        pairs.append((frame, draw_landmarks(landmarks, frame.shape[:2], "lsr")))
    if pairs:
        pairs += [pairs[i] for i in range(len(frames) - len(pairs))]
    return pairs, failed


def list_clips(data_dir: Path, mode: str) -> list[tuple[str, str, Path]]:
    """(person, video, clip path) of `data_dir/<person>/<video>/<clip>`, sorted."""
    clips = []
    for person in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for video in sorted(v for v in person.iterdir() if v.is_dir()):
            for clip in sorted(video.iterdir()):
                if clip.name.startswith("."):
                    continue
                if (mode == "images") == clip.is_dir():
                    clips.append((person.name, video.name, clip))
    return clips


def clip_stem(clip: Path) -> str:
    return clip.name.split(".")[0]


def process_clip(person: str, video: str, clip: Path, args, detector) -> str:
    """Write one clip; returns 'written', 'exists', 'skipped' or 'no_face'."""
    stem = clip_stem(clip)
    target = args.output_dir / person / video / stem
    if target.is_dir():
        return "exists"
    if args.mode == "videos":
        frames, indices = pick_video_frames(clip, args.k)
    else:
        frames, indices = pick_folder_frames(clip)
    pairs, failed = draw_clip(frames, detector)
    if failed:
        marker = args.output_dir / SANITY_DIR / f"{person}_{video}_{stem}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    if not pairs:
        return "no_face"
    if args.mode == "videos" and len(pairs) != args.k:
        return "skipped"
    partial = target.with_name(f".{stem}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for index, (frame, drawing) in zip(indices, pairs):
        write_image(partial / f"{index:05d}_contour.png", drawing)
        write_image(partial / f"{index:05d}_rgb.png", frame)
    partial.rename(target)
    return "written"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir", required=True, type=Path, help="root holding <person>/<video>/<clip> (video file or frame folder)"
    )
    parser.add_argument("--output_dir", required=True, type=Path, help="processed-subject root")
    parser.add_argument("--k", type=int, default=10, help="frames taken per video (videos mode)")
    parser.add_argument("--mode", default="videos", help="videos | images")
    parser.add_argument(
        "--backend",
        default="face_alignment",
        choices=("face_alignment", "dlib"),
        help="landmark detector; face_alignment (FAN, the original's) needs torch",
    )
    parser.add_argument("--device", default="cpu", help="torch device of the FAN backend")
    parser.add_argument(
        "--weights_dir", default=None, help="folder of the FAN weight files (default: the torch hub cache)"
    )
    return parser


@cli_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}, got {args.mode!r}")
    if args.k < 1:
        raise InputError(f"--k must be >= 1, got {args.k}")
    if not args.data_dir.is_dir():
        raise InputError(f"{args.data_dir}: data directory not found")
    clips = list_clips(args.data_dir, args.mode)
    if not clips:
        what = "video files" if args.mode == "videos" else "frame folders"
        raise InputError(f"{args.data_dir}: no <person>/<video>/<clip> {what} found")
    from common.landmarks import LandmarkDetector  # FAN imports torch only when chosen

    detector = LandmarkDetector(
        backend=args.backend, device=args.device, flip_input=False, weights_dir=args.weights_dir, main_face="first"
    )
    counts = dict.fromkeys(("written", "exists", "skipped", "no_face", "unreadable"), 0)
    for person, video, clip in progress(clips, desc="landmarks"):
        try:
            outcome = process_clip(person, video, clip, args, detector)
        except InputError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            outcome = "unreadable"
        counts[outcome] += 1
    print("clips: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    main()
