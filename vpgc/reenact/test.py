"""Reenact a subject from landmarks: `python -m vpgc.reenact.test --data_root DIR -m NAME --load_path CKPT
--encoder_path Enc.ckpt --implicit_path Imp.ckpt` (also `python -m vpgc.demo`).

The original's `test_grid.py`. Driving input, first match wins: `--heatmap_dir` (pre-drawn maps,
like the demo's heatmap/test), `--driving_ldmks` (68-point .txt files of any person; with
`--retarget` moved onto the subject's face, see `vpgc.retarget`), else `<data_root>/ldmks/test`
drawn in `--landmark_style`, or `<data_root>/heatmap/test` (the shipped demo data). The first 1000
files are used (`--max_frames`). `--precision bf16` (fp16 on a GPU) runs the networks under autocast
(`common.precision`). Output: `<output_path>/<name>/images/%04d.png` (`--ext jpg`: the
original's JPEGs) and the 60 fps video `<output_path>/<name>/<name>.mp4`, written only once complete.

Deviations: eval mode (`--dropout_at_inference` restores the original's stochastic dropout); every
frame is rendered (the original drops the trailing N % 4); checkpoints load strictly and a missing
file is an error (the original warned and ran with random weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import require_file
from common.distributed import resolve_device
from common.errors import InputError, cli_main
from common.precision import add_precision_argument, check_precision
from common.progress import get_logger
from vpgc import data
from vpgc.checkpoint import WHERE
from vpgc.config import load_config
from vpgc.reenact.train import add_common_arguments, check_supported, device_of
from vpgc.reenactment import Reenactor, draw_maps, driving_landmarks, write_results

log = get_logger("vpgc.reenact.test")

# test_grid.py flags without effect at inference (kept so that its command lines run unchanged).
IGNORED = {
    "--vis_freq": 100,
    "--print_freq": 10,
    "--save_epoch_freq": 3,
    "--max_epoch": 100,
    "--lr": 0.0005,
    "--beta1": 0.5,
    "--isTrain": "False",
    "--resume": "False",
}


def _landmark_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: folder of landmark .txt files not found")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(f"{folder}: holds no .txt landmark files")
    return files


def subject_landmarks(root: Path) -> np.ndarray:
    """The subject's own landmarks [N, 68, 2] (ldmks/train, else ldmks/test), for --retarget."""
    for split in ("train", "test"):
        if (root / "ldmks" / split).is_dir():
            return np.stack([data.read_landmarks(p) for p in data.list_landmarks(root, split)])
    raise InputError(f"{root}: --retarget needs the subject's landmarks in ldmks/train or ldmks/test")


def driving_maps(opt: argparse.Namespace, size: int) -> np.ndarray:
    """uint8 [N, size, size] driving maps from the source the flags choose (module docstring)."""
    limit = opt.max_frames or None
    if opt.heatmap_dir:
        maps = data.read_heatmaps(opt.heatmap_dir, limit)
        return maps if maps.shape[1:] == (size, size) else data.read_heatmaps(opt.heatmap_dir, limit, size)
    if opt.driving_ldmks:
        files = _landmark_files(Path(opt.driving_ldmks))[:limit]
        driver = np.stack([data.read_landmarks(p) for p in files])
        subject = subject_landmarks(Path(opt.data_root)) if opt.retarget else None
        return draw_maps(driving_landmarks(driver, subject), size, opt.landmark_style)
    if opt.retarget:
        raise InputError("--retarget needs --driving_ldmks (another person's landmarks)")
    maps = data.draw_split(opt.data_root, "test", opt.landmark_style, limit=limit)
    if maps.shape[1:] != (size, size):
        maps = data.draw_split(opt.data_root, "test", opt.landmark_style, resolution=size, limit=limit)
    return maps


def parse_args(argv=None, prog: str = "python -m vpgc.reenact.test") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--data_root", default="Dataset/Obama", help="subject folder")
    parser.add_argument("-o", "--output_path", default="./Results", help="results go to <output_path>/<name>")
    parser.add_argument(
        "--load_path", default="Pretrained/Grid_Codebook/Obama/N-Step-Checkpoint_19_120000.ckpt", help="stage 1"
    )
    parser.add_argument("--encoder_path", default="Pretrained/Reenactment/Obama/Enc_00161851.ckpt", help="Enc_*.ckpt")
    parser.add_argument("--implicit_path", default="Pretrained/Reenactment/Obama/Imp_00161851.ckpt", help="Imp_*.ckpt")
    parser.add_argument("--ext", default="png", choices=("png", "jpg"), help="frame files (the original: jpg)")
    parser.add_argument("--heatmap_dir", help="pre-drawn landmark maps (grayscale images) as the driving input")
    parser.add_argument("--driving_ldmks", help="folder of 68-point .txt landmarks (e.g. another person's)")
    parser.add_argument("--retarget", action="store_true", help="move --driving_ldmks onto the subject's face")
    parser.add_argument("--dropout_at_inference", action="store_true", help="the original's stochastic dropout")
    parser.add_argument("--seed", type=int, default=0, help="seed of --dropout_at_inference")
    parser.add_argument("--fps", type=float, default=60.0, help="video frame rate (the original: 60)")
    parser.add_argument("--max_frames", type=int, default=data.TEST_LIMIT, help="first driving frames (0: all)")
    add_precision_argument(parser)
    parser.add_argument("--continue_train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no_html", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--TTUR", action="store_true", help=argparse.SUPPRESS)
    for flag, default in IGNORED.items():
        parser.add_argument(flag, default=default, help=argparse.SUPPRESS)
    opt = parser.parse_args(argv)
    check_supported(opt)
    return opt


def run(opt: argparse.Namespace) -> int:
    """Check every input, render, write; returns the number of frames."""
    device = resolve_device(device_of(opt))
    check_precision(opt.precision, device)
    config = load_config(opt.model_base)
    size = config["model"]["params"]["ddconfig"]["resolution"]
    if opt.size != "normal" and int(opt.size) != size:
        raise InputError(f"--size {opt.size} differs from the stage-1 config's resolution {size} ({opt.model_base})")
    for path, what in ((opt.load_path, "stage-1"), (opt.encoder_path, "landmark-encoder"), (opt.implicit_path, "Imp")):
        require_file(path, f"{what} checkpoint", WHERE)
    maps = driving_maps(opt, size)
    reenactor = Reenactor.from_checkpoints(
        opt.load_path,
        opt.encoder_path,
        opt.implicit_path,
        config=opt.model_base,
        dropout_at_inference=opt.dropout_at_inference,
        device=device,
        landmark_ch=opt.landmark_ch,
        landmark_ch_mult=opt.landmark_ch_mult,
        precision=opt.precision,
    )
    torch.manual_seed(opt.seed)
    folder = Path(opt.output_path) / opt.model_name
    count = write_results(folder, opt.model_name, reenactor.iter_frames(maps), opt.ext, opt.fps, len(maps))
    log.info(f"wrote {count} frames to {folder / 'images'} and {folder / (opt.model_name + '.mp4')}")
    return count


@cli_main
def main(argv=None, prog: str = "python -m vpgc.reenact.test") -> int:
    run(parse_args(argv, prog))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
