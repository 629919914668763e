"""Stage-1 reconstructions of a subject's test frames: `python -m vpgc.codebook.test --load_path CKPT --data_root DIR`.

The original's `Grid_Codebook_Modeling/test.py`: the test images (the first 1000 of
`images/test`) go through the autoencoder (hard grid lookup) 4 consecutive frames at a time and are
written as `<output_path>/<model_name>/images/%04d.jpg` (uint8 truncation of clip((x + 1) / 2 * 255))
plus a 60 fps H.264 video `<output_path>/<model_name>/<model_name>.mp4`. Unlike the original, the
trailing N % 4 frames are reconstructed too (a padded last group), the video is encoded from the
frames themselves (not from the JPEG files), and the output appears only once complete.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import require_file
from common.config import read_yaml
from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.progress import get_logger
from vpgc.checkpoint import WHERE, load_stage1
from vpgc.config import load_config
from vpgc.data import GROUP, TEST_LIMIT, list_frames, read_image_pm1
from vpgc.model import VQGridModel
from vpgc.reenactment import to_uint8, write_results

log = get_logger("vpgc.codebook.test")


@torch.inference_mode()
def reconstruct(model: VQGridModel, frames: list[Path], device) -> Iterator[np.ndarray]:
    """HxWx3 uint8 reconstructions of image files, in groups of 4 (the last one padded and trimmed)."""
    for start in range(0, len(frames), GROUP):
        chosen = frames[start : start + GROUP]
        padded = chosen + [chosen[-1]] * (GROUP - len(chosen))
        batch = torch.stack([read_image_pm1(path) for path in padded]).to(device)
        reconstructions, _, _ = model(batch)
        yield from to_uint8(reconstructions)[: len(chosen)]


def data_root_of(opt: argparse.Namespace) -> Path:
    """--data_root, else `subject.data_root` of the --database talking_config file."""
    if opt.data_root:
        return Path(opt.data_root)
    database = Path(opt.database)
    if database.is_file():
        subject = read_yaml(database).get("subject") or {}
        if "data_root" in subject:
            return Path(subject["data_root"])
    raise InputError("no test data: pass --data_root DATA/Subject (or a --database file with subject.data_root)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vpgc.codebook.test", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--load_path", default="../Pretrained/taming/Obama/N-Step-Checkpoint_21_270000.ckpt", help="stage-1 checkpoint"
    )
    parser.add_argument("--modelbase", default="configs/obama_sliding_4.yaml", help="stage-1 config (or bundled name)")
    parser.add_argument(
        "--database", default="configs/talking_config/lrw_test.yaml", help="talking_config with data_root"
    )
    parser.add_argument("--data_root", help="subject folder with images/test (overrides --database)")
    parser.add_argument("--batch_size", type=int, default=1, help="samples per step (must be 1)")
    parser.add_argument("--batch_internal", type=int, default=GROUP, help="frames per sample (must be 4)")
    parser.add_argument("--output_path", default="Results", help="results go to <output_path>/<model_name>")
    parser.add_argument("--model_name", default="Obama", help="result folder and video name")
    parser.add_argument("--ext", default="jpg", choices=("jpg", "png"), help="frame files (the original: jpg)")
    parser.add_argument("--fps", type=float, default=60.0, help="video frame rate (the original: 60)")
    parser.add_argument("--max_frames", type=int, default=TEST_LIMIT, help="first frames of images/test (0: all)")
    parser.add_argument("--gpu", default=None, help="the original's GPU flag: 'N' is --device cuda:N, -1 the CPU")
    add_device_argument(parser)
    opt = parser.parse_args(argv)
    if opt.batch_size != 1 or opt.batch_internal != GROUP:
        raise InputError(f"--batch_size must be 1 and --batch_internal {GROUP} (the grid quantiser's groups)")
    return opt


@cli_main
def main(argv=None) -> int:
    opt = parse_args(argv)
    gpu = None if opt.gpu is None else ("cpu" if opt.gpu.strip() == "-1" else f"cuda:{int(opt.gpu.split(',')[0])}")
    device = resolve_device(opt.device or gpu)
    require_file(opt.load_path, "stage-1 checkpoint", WHERE)
    frames = list_frames(data_root_of(opt), "test", opt.max_frames or None)
    model = VQGridModel.from_config(load_config(opt.modelbase), with_loss=False)
    load_stage1(opt.load_path, model)
    model.to(device).eval()
    folder = Path(opt.output_path) / opt.model_name
    count = write_results(folder, opt.model_name, reconstruct(model, frames, device), opt.ext, opt.fps, len(frames))
    log.info(f"wrote {count} frames to {folder / 'images'} and {folder / (opt.model_name + '.mp4')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
