"""LSR's oracle segmentation of a processed-subject tree (torch side; `lsr` never imports torch).

`python -m tools.lsr_segmentation --data_dir DIR --checkpoint model.pth [--device cpu] [--keep_plain]`

Finds every `*_rgb.png` under DIR (`<person>/<video>/<part>/NNNNN_rgb.png`, as written by
`python -m lsr.preprocessing.landmarks`, with or without a `<split>/` level above) and writes
beside it `NNNNN_segmap_merged.png`: the CelebAMask-HQ U-Net run at 256 and at 512, merged as
LSR does and stored 224x224 uint8 grayscale (`common.parsing.lsr_oracle_segmentation`).
`--keep_plain` also keeps the per-resolution maps as `NNNNN_segmap_256.png` and
`NNNNN_segmap_512.png` at 224 (the original deletes them after merging). Frames whose merged
map exists are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import InputError, cli_main
from common.image import read_image, write_image
from common.progress import progress

RGB_SUFFIX = "_rgb.png"


def rgb_frames(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data directory not found")
    frames = sorted(data_dir.rglob(f"*{RGB_SUFFIX}"))
    if not frames:
        raise InputError(f"{data_dir}: no *{RGB_SUFFIX} frames found under it")
    return frames


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, type=Path, help="processed-subject root")
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="CelebAMask-HQ U-Net weights (models/parsenet/model.pth)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--size", type=int, default=224, help="side of the written maps")
    parser.add_argument(
        "--keep_plain", action="store_true", help="also write the 256 and 512 maps (NNNNN_segmap_256/512.png)"
    )
    args = parser.parse_args(argv)
    frames = rgb_frames(args.data_dir)  # input checked before the network is built
    from common.parsing import load_parser, lsr_oracle_segmentation

    face_parser = load_parser("celebamask_unet", args.checkpoint, device=args.device)
    written = 0
    for path in progress(frames, desc="oracle segmentation"):
        stem = path.name[: -len(RGB_SUFFIX)]
        merged_path = path.with_name(f"{stem}_segmap_merged.png")
        if merged_path.exists() and not args.keep_plain:
            continue
        maps = lsr_oracle_segmentation(face_parser, read_image(path), size=args.size)
        if args.keep_plain:
            write_image(path.with_name(f"{stem}_segmap_256.png"), maps.segmap_256)
            write_image(path.with_name(f"{stem}_segmap_512.png"), maps.segmap_512)
        write_image(merged_path, maps.merged)  # last: its presence marks the frame done
        written += 1
    print(f"wrote {written} merged maps under {args.data_dir} ({len(frames) - written} already there)")
    return 0


if __name__ == "__main__":
    main()
