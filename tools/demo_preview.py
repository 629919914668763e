"""Preview of the sample's landmarks and parsing: what each method will be driven by.

`python -m tools.demo_preview --sample DIR --out DIR` writes `preview.mp4` and `preview.png`
(the first frame): per driving frame, the frame, its landmarks on top, the landmark drawings in
the FSTH, LSR and VPGC styles, and the label map in colour.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.errors import InputError, cli_main
from common.image import list_images, read_image, write_image
from common.progress import progress

STYLES = ("fsth", "lsr", "vpgc68")


def preview_row(frame: np.ndarray, landmarks: np.ndarray, labels_color: np.ndarray) -> np.ndarray:
    """One preview strip: frame | overlay | drawings per style | parsing colour."""
    from common.drawing import draw_landmarks, overlay_landmarks

    size = frame.shape[0]
    tiles = [frame, overlay_landmarks(frame, landmarks)]
    for style in STYLES:
        drawing = draw_landmarks(landmarks, size, style)
        tiles.append(np.repeat(drawing[..., None], 3, axis=2) if drawing.ndim == 2 else drawing)
    tiles.append(labels_color)
    return np.concatenate(tiles, axis=1)


def make_preview(sample: Path, out: Path) -> Path:
    from common.video import VideoWriter

    frames = list_images(sample / "driving")
    if not frames:
        raise InputError(f"{sample}: no driving frames; run `python -m tools.make_sample_data --out {sample}`")
    out.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out / "preview.mp4") as video:
        for index, path in enumerate(progress(frames, desc="preview")):
            landmarks = np.load(sample / "landmarks" / "driving" / f"{path.stem}.npy")
            color = read_image(sample / "parsing" / "driving" / f"{path.stem}_color.png")
            row = preview_row(read_image(path), landmarks, color)
            video.write(row)
            if index == 0:
                write_image(out / "preview.png", row)
    return out / "preview.mp4"


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", required=True, type=Path, help="folder written by tools.make_sample_data")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    print(f"wrote {make_preview(args.sample, args.out)}")
    return 0


if __name__ == "__main__":
    main()
