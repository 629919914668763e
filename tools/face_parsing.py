"""Face-parsing maps for an image, a folder of images or a video.

`python -m tools.face_parsing --input PATH --output DIR --checkpoint FILE
 [--model celebamask_unet|bisenet] [--imsize N] [--lsr_merge] [--device cpu]`

For each image (or video frame, named NNNNN) it writes DIR/<name>_labels.png, the uint8
label map in CelebAMask-HQ order at the input's size, and DIR/<name>_color.png, its colour
preview. `--lsr_merge` writes LSR's oracle map instead: the network at 256 and at 512, merged
and stored at 224x224 (what LSR reads as `*_segmap_merged.png`), previewed in LSR's palette.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import InputError, cli_main
from common.image import write_image
from common.progress import progress


@cli_main
def main(argv=None) -> int:
    from common.parsing import MODELS, colorize, load_parser, lsr_oracle_segmentation

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", required=True, type=Path, help="image, folder of images or video")
    parser.add_argument("--output", required=True, type=Path, help="output folder (created)")
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="model.pth (CelebAMask-HQ U-Net) or 79999_iter.pth (BiSeNet)"
    )
    parser.add_argument("--model", default="celebamask_unet", choices=sorted(MODELS))
    parser.add_argument(
        "--imsize", type=int, default=None, help="network input side (default 512); not used with --lsr_merge"
    )
    parser.add_argument(
        "--lsr_merge", action="store_true", help="LSR's oracle map: runs at 256 and 512 merged, written at 224x224"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    if args.lsr_merge and args.imsize is not None:
        raise InputError("--imsize has no effect with --lsr_merge (it runs at 256 and 512)")

    from tools.extract_landmarks import iter_inputs  # same image / folder / video walk and names

    items, total = iter_inputs(args.input)  # checks the input before the network is built
    face_parser = load_parser(args.model, args.checkpoint, device=args.device, imsize=args.imsize)
    count = 0
    for name, image in progress(items, desc="face parsing", total=total):
        if args.lsr_merge:
            labels, palette = lsr_oracle_segmentation(face_parser, image).merged, "lsr"
        else:
            labels, palette = face_parser.parse(image), "celebamask"
        write_image(args.output / f"{name}_labels.png", labels)
        write_image(args.output / f"{name}_color.png", colorize(labels, palette))
        count += 1
    print(f"wrote {count} label maps to {args.output}")
    return 0


if __name__ == "__main__":
    main()
