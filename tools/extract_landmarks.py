"""Extract 68-point face landmarks from an image, a video or a folder of images.

Writes, in the output folder:
  <name>.npy           (68, 2) float32 (x, y) in input pixels; <name> is the image's file stem,
                       or for a video the frame index (00000, 00005, ... with --every_k 5)
  preview/<name>.png   the frame with its landmarks drawn on it, one per frame with a face
                       (cheap next to detection; --no_preview skips them)
  no_face.txt          the names of the frames where no face was found, one a line (empty if none)
Frames without a face do not stop the run; they are listed at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from common.errors import NoFaceError, cli_main
from common.image import write_image
from common.landmarks import named_frames as iter_inputs  # also the input walk of tools.face_parsing
from common.progress import progress

SHOWN_MISSING = 10  # names printed at the end; no_face.txt has them all


def extract(
    frames: Iterable[tuple[str, np.ndarray]], output: Path, detector, preview: bool = True, total: int | None = None
) -> tuple[int, list[str]]:
    """Write one `.npy` (and preview) per (name, frame) with a face; returns (count written, names without a face)."""
    from common.drawing import overlay_landmarks
    from common.landmarks import save_landmarks

    output.mkdir(parents=True, exist_ok=True)
    written, missing = 0, []
    try:
        for name, frame in progress(frames, desc="landmarks", total=total, unit="frame"):
            try:
                landmarks = detector.detect(frame, name=name)
            except NoFaceError:
                missing.append(name)
                continue
            save_landmarks(output / f"{name}.npy", landmarks)
            if preview:
                write_image(output / "preview" / f"{name}.png", overlay_landmarks(frame, landmarks))
            written += 1
    finally:  # a corrupt frame ends the run with an error; the misses found so far are still listed
        (output / "no_face.txt").write_text("".join(f"{name}\n" for name in missing))
    return written, missing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, type=Path, help="an image, a video, or a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--backend",
        choices=("dlib", "face_alignment"),
        default="dlib",
        help="dlib (offline, default) or face_alignment (FAN; needs its weight files locally)",
    )
    parser.add_argument("--every_k", type=int, default=1, help="keep every k-th video frame or image (default 1)")
    parser.add_argument(
        "--fan_weights",
        type=Path,
        default=None,
        help="folder holding 2DFAN4-11f355bf06.pth.tar (and s3fd-619a316812.pth with "
        "--face_detector sfd); default: <torch hub dir>/checkpoints",
    )
    parser.add_argument(
        "--face_detector",
        choices=("sfd", "dlib"),
        default="sfd",
        help="face detector of the face_alignment backend (default sfd)",
    )
    parser.add_argument("--flip_input", action="store_true", help="face_alignment: also run FAN on the mirror image")
    parser.add_argument("--device", default="cpu", help="face_alignment device: cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--no_preview", action="store_true", help="do not write preview images")
    return parser


@cli_main
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from common.landmarks import LandmarkDetector

    frames, total = iter_inputs(args.input, args.every_k)  # a bad input fails before the models load
    detector = LandmarkDetector(
        args.backend,
        device=args.device,
        flip_input=args.flip_input,
        face_detector=args.face_detector,
        weights_dir=args.fan_weights,
    )
    written, missing = extract(frames, args.output, detector, not args.no_preview, total)
    print(f"wrote {written} landmark file(s) to {args.output}")
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING]) + (", ..." if len(missing) > SHOWN_MISSING else "")
        print(f"no face in {len(missing)} frame(s) (listed in {args.output / 'no_face.txt'}): {shown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
