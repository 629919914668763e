"""Drive a 3D avatar with an RGBD video: `python -m vfa.infer --checkpoint VFA.pt --source_path AVATAR
--driving_path DRIVING`.

The original's `infer.py` flags and outputs (fact sheet 4.1-4.6), on the CPU or a GPU (`--device`).

Inputs. The avatar is BFM09 coefficients (`.npy`, needs `--bfm_model`) or an `.obj` mesh. The
driving clip is a preprocessed 256x256 RGBD clip: an `.mp4` whose path contains `color`, with its
16-bit depth where every `color` is replaced by `depth` and `.mp4` by `.nut` (FFV1 gray16le), or
a folder with `color/<i>.png` and 16-bit `depth/<i>.png`.

Outputs, in `<save_folder>/<C>/<avatar>_<D>_<offset>/` where C and D are the second
`/`-separated parts of the `--checkpoint` and `--driving_path` strings (the original's rule;
their file stems when a path has fewer parts): `color.png` and 16-bit `depth.png` of the
rendered avatar, `controllers.png` (the original's `test_bfm_color_bones.png`, written to the
working directory there) and `inference.mp4`, 512x1024 at 30 fps: top row [black | avatar x3],
bottom row [driving RGB | network RGB | animated mesh | animated mesh, rotated], each row
clamped to [-1,1] and min-max scaled over the whole clip (the original scales each row as a
whole, not each panel). With `--target_frame J`: `J_depth_img.png` (16-bit), `source_img.png`,
`J_driving_img.png`, `J_recon_img.png`, `J_recon_img_angles.png`, `J_recon_img_rgb.png`.
Everything is written into a hidden folder beside the result and moved in at the end, so a
failed run leaves nothing. The weights cache goes to `--weights_dir` (`./weights`).

Kept quirks and deviations (more in `vfa.animate`, `vfa.controllers`, `vfa.weights`):

* An mp4 driving clip reaches the network in BGR order (decoded RGB, then swapped as if BGR);
  PNG folders and the avatar arrive in RGB. `--fix_channel_order` feeds mp4 frames in RGB.
* `--eye` and `--translation` take three numbers (the original declared them `type=list`, so
  only the defaults worked).
* The start frame of a PNG folder is `0.png` (the original hard-codes `3500.png`; use
  `--best_frame 3500` for that); the folder is read from `offset` until `length` frames or the
  first missing `color/<i>.png` (the original fails on a missing one).
* `--find_best` uses face_alignment's FAN when its weights are in the torch hub cache, else
  dlib's 68-point predictor (the original always downloads FAN).
* `--adjust_camera` needs only the avatar (the original also loads the checkpoint and clip).
* The source's `color.png` is written in its true colours (the original's is channel-swapped).

`--precision bf16` (or `fp16` on a GPU) runs the generator's forward passes under autocast
(`common.precision`); tracking, mesh deformation and rendering stay float32/float64.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.precision import add_precision_argument, check_precision
from common.progress import get_logger, progress
from common.video import iter_frames, read_depth_video, video_info, write_video
from vfa import animate, weights
from vfa.bfm import load_bfm_mesh, load_bfm_model, read_coefficients
from vfa.checkpoint import DEFAULT_CHECKPOINT, load_inference_generator
from vfa.controllers import find_controllers, write_controllers_picture
from vfa.mesh import Mesh, read_obj
from vfa.render import IMAGE_SIZE, SourceRender, render_source
from vfa.weights import controller_corners, geodesic_weights, load_weights, save_weights

log = get_logger("vfa.infer")

FPS = 30
DEFAULT_BFM_MODEL = Path("BFM/BFM09_model_info.mat")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vfa.infer", description=__doc__.split("\n")[0])
    parser.add_argument("--save_folder", default="./results", help="results root (default ./results)")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="VFA.pt")
    parser.add_argument("--length", type=int, default=1000, help="driving frames to use")
    parser.add_argument("--offset", type=int, default=0, help="first driving frame")
    parser.add_argument("--driving_path", default="", help="color/<name>.mp4 (+ depth/<name>.nut) or a PNG folder")
    parser.add_argument("--source_path", default="./dataset/demo_source/woman.npy", help="avatar .npy or .obj")
    parser.add_argument("--bfm_model", default=str(DEFAULT_BFM_MODEL), help="BFM09_model_info.mat for .npy")
    parser.add_argument("--adjust_camera", action="store_true", help="render the avatar, print its depth, exit")
    parser.add_argument("--translation", type=float, nargs=3, default=[0.0, 0.0, 0.0], metavar=("X", "Y", "Z"))
    parser.add_argument("--eye", type=float, nargs=3, default=[0.0, 0.0, 8.0], metavar=("X", "Y", "Z"))
    parser.add_argument("--calc_weights", action="store_true", help="recompute the cached controlling weights")
    parser.add_argument("--weights_k", type=int, default=10, help="controllers / stencil vertices per vertex")
    parser.add_argument("--weights_dir", default="weights", help="weights cache folder (default ./weights)")
    parser.add_argument(
        "--weights_method",
        choices=weights.METHODS,
        default="faithful",
        help="faithful: a heat solve per vertex (the original); fast: per controller corner",
    )
    parser.add_argument("--find_best", action="store_true", help="start from the frame posed most like the avatar")
    parser.add_argument("--best_frame", type=int, default=0, help="start from this frame (> 0)")
    parser.add_argument("--target_frame", type=int, default=-1, help="only this frame, as PNGs")
    parser.add_argument("--lambda_lap", type=float, default=animate.LAP_LAMBDA)
    parser.add_argument("--lap_times", type=int, default=animate.LAP_TIMES)
    parser.add_argument("--fix_channel_order", action="store_true", help="feed mp4 driving frames as RGB")
    add_device_argument(parser)
    add_precision_argument(parser)
    args = parser.parse_args(argv)
    if args.length < 1 or args.offset < 0 or args.weights_k < 1 or args.lap_times < 0:
        parser.error("--length and --weights_k must be >= 1, --offset and --lap_times >= 0")
    return args


# ------------------------------------------------------------------------------------- naming
def path_part(path: str) -> str:
    """The original's `path.split('/')[1]`; the file stem when the path has no second part."""
    parts = str(path).split("/")
    return parts[1] if len(parts) > 1 and parts[1] else (Path(path).stem or "none")


def avatar_name(source_path: str) -> str:
    """File name up to the first dot; for .npy also up to the first underscore (woman_coeffs -> woman)."""
    name = Path(source_path).name.split(".")[0]
    return name.split("_")[0] if Path(source_path).suffix == ".npy" else name


def result_folder(args: argparse.Namespace) -> Path:
    folder = f"{avatar_name(args.source_path)}_{path_part(args.driving_path)}_{args.offset}"
    return Path(args.save_folder) / path_part(args.checkpoint) / folder


@contextlib.contextmanager
def staged(final: Path):
    """A hidden folder beside `final` to write into; its files move into `final` on success and
    the folder is removed either way."""
    created = [folder for folder in reversed(final.parents) if not folder.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    done = False
    try:
        yield stage
        final.mkdir(exist_ok=True)
        for item in sorted(stage.iterdir()):
            if not item.name.startswith("."):
                os.replace(item, final / item.name)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:  # also remove the result's parent folders this run created
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()


def write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise InputError(f"{path}: cannot write the image")


# -------------------------------------------------------------------------------------- inputs
def load_avatar(source_path: str, bfm_model: str) -> Mesh:
    path = Path(source_path)
    if path.suffix == ".obj":
        return read_obj(path)
    if path.suffix == ".npy":
        coefficients = read_coefficients(path)
        return load_bfm_mesh(coefficients, load_bfm_model(bfm_model))
    raise InputError(f"{path}: the avatar must be BFM09 coefficients (.npy) or a mesh (.obj)")


@dataclass(frozen=True, eq=False)
class DrivingClip:
    """Network inputs [1,4,H,W]: `frames` from the offset on, `start` the clip's first frame."""

    frames: list[torch.Tensor]
    start: torch.Tensor


def _check_size(shape, name: str) -> None:
    if tuple(shape[:2]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise InputError(f"{name}: driving frames must be {IMAGE_SIZE}x{IMAGE_SIZE}, got {shape[1]}x{shape[0]}")


def depth_video_path(colour_path: str) -> Path:
    """The original's rule: every `color` -> `depth`, `.mp4` -> `.nut`."""
    return Path(str(colour_path).replace("color", "depth").replace(".mp4", ".nut"))


def load_driving_video(path: Path, length: int, offset: int, fix_channel_order: bool) -> DrivingClip:
    if "color" not in str(path):
        raise InputError(f"{path}: a driving mp4 must lie under a path containing 'color' (its depth: color -> depth)")
    depth_path = depth_video_path(str(path))
    if not depth_path.is_file():
        raise InputError(f"{depth_path}: depth video of the driving clip {path} not found")
    colour_info = video_info(path)
    depth = read_depth_video(depth_path)
    _check_size((colour_info.height, colour_info.width), str(path))
    if depth.shape[1:] != (colour_info.height, colour_info.width):
        raise InputError(
            f"{depth_path}: depth frames are {depth.shape[2]}x{depth.shape[1]}, the colour frames of {path} are "
            f"{colour_info.width}x{colour_info.height}"
        )

    def to_input(rgb: np.ndarray, index: int) -> torch.Tensor:
        # norm_image swaps what it is given: RGB in -> BGR to the network (the original's quirk).
        colour = rgb[..., ::-1] if fix_channel_order else rgb
        return animate.norm_image(colour, depth[index], name=f"{depth_path} [frame {index}]")

    frames, start, count = [], None, 0
    for index, rgb in enumerate(iter_frames(path)):
        count += 1
        if index >= len(depth):
            continue
        if index == 0:
            start = to_input(rgb, 0)
        if offset <= index < offset + length:
            frames.append(to_input(rgb, index))
    if count != len(depth):
        raise InputError(f"{depth_path}: {len(depth)} depth frames for {count} colour frames of {path}")
    if not frames:
        raise InputError(f"{path}: no frames from --offset {offset} on ({count} frames)")
    return DrivingClip(frames, start)


def _read_png_pair(folder: Path, index: int) -> torch.Tensor:
    colour_path, depth_path = folder / "color" / f"{index}.png", folder / "depth" / f"{index}.png"
    colour = cv2.imread(str(colour_path), cv2.IMREAD_COLOR)
    if colour is None:
        raise InputError(f"{colour_path}: driving colour frame missing or unreadable")
    depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise InputError(f"{depth_path}: depth frame of {colour_path} missing or unreadable")
    if depth.ndim != 2:
        raise InputError(f"{depth_path}: a depth frame must be single-channel (16-bit), got {depth.shape[2]} channels")
    _check_size(colour.shape, str(colour_path))
    if depth.shape != colour.shape[:2]:
        raise InputError(
            f"{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, colour {colour.shape[1]}x{colour.shape[0]}"
        )
    return animate.norm_image(colour, depth, name=str(depth_path))


def load_driving_folder(folder: Path, length: int, offset: int) -> DrivingClip:
    start = _read_png_pair(folder, 0)
    frames = []
    for index in range(offset, offset + length):
        if not (folder / "color" / f"{index}.png").is_file():
            break
        frames.append(_read_png_pair(folder, index))
    if not frames:
        raise InputError(f"{folder}: no color/{offset}.png")
    return DrivingClip(frames, start)


def load_driving(path: str, length: int, offset: int, fix_channel_order: bool = False) -> DrivingClip:
    if not path:
        raise InputError("--driving_path is required")
    driving = Path(path)
    if driving.suffix == ".mp4":
        return load_driving_video(driving, length, offset, fix_channel_order)
    if driving.is_dir():
        return load_driving_folder(driving, length, offset)
    raise InputError(f"{driving}: the driving clip must be an .mp4 or a folder with color/ and depth/ PNGs")


# ------------------------------------------------------------------------------------- outputs
def source_files(stage: Path, source: SourceRender, source_rgbd: torch.Tensor) -> None:
    """color.png (true colours) and depth.png ((normalised depth + 1)·65535/2, 16-bit)."""
    write_png(stage / "color.png", np.clip(np.rint(source.colour_bgr_float), 0, 255).astype(np.uint8))
    depth = source_rgbd[0, 3].cpu().numpy()
    write_png(stage / "depth.png", ((depth + 1.0) * 65535.0 / 2.0).astype(np.uint16))


def tensor_png(image) -> np.ndarray:
    """The original's save_img_from_tensor: [3,H,W] RGB (or HxWx3) min-max to uint8, as BGR."""
    array = image.permute(1, 2, 0).cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    low, high = array.min(), array.max()
    scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
    return np.ascontiguousarray(scaled.astype(np.uint8)[..., ::-1])


def rows_to_uint8(rows: np.ndarray, low: float, high: float) -> np.ndarray:
    """save_video's scaling of clamped values: (x - min)/(max - min)·255, truncated to uint8."""
    scale = 255.0 / (high - low) if high > low else 0.0
    return ((rows - low) * scale).astype(np.uint8)


def source_row(source: SourceRender) -> np.ndarray:
    """[H, 4W, 3] the top row: black, then the rendered avatar three times, in [-1,1] RGB."""
    avatar = source.colour_bgr[..., ::-1].astype(np.float32) / 255.0 * 2.0 - 1.0
    return np.concatenate([np.full_like(avatar, -1.0), avatar, avatar, avatar], axis=1)


def write_panels_video(path: Path, top: np.ndarray, bottoms: np.ndarray) -> None:
    """inference.mp4: each row clamped to [-1,1] and min-max scaled over the whole clip."""
    top = np.clip(top, -1.0, 1.0)
    top_u8 = rows_to_uint8(top, float(top.min()), float(top.max()))
    low, high = np.inf, -np.inf
    for bottom in bottoms:
        low, high = min(low, float(bottom.min())), max(high, float(bottom.max()))
    frames = (np.concatenate([top_u8, rows_to_uint8(bottom, low, high)], axis=0) for bottom in bottoms)
    write_video(path, frames, fps=FPS)


def bottom_row(frame: torch.Tensor, result: animate.FrameResult) -> np.ndarray:
    """[H, 4W, 3]: driving colour channels, network RGB, front and rotated renders, clamped."""
    driving = frame[0, :3].permute(1, 2, 0).cpu().numpy()
    network = result.rgb.permute(1, 2, 0).numpy()
    row = np.concatenate([driving, network, result.front, result.rotated], axis=1)
    return np.clip(row, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------- run
def controlling_weights(args, source: SourceRender, controllers) -> weights.ControlWeights:
    name = avatar_name(args.source_path)
    mesh = source.mesh
    cached = None if args.calc_weights else load_weights(args.weights_dir, name, len(mesh.vertices), len(controllers))
    if cached is not None:
        log.info(f"controlling weights from {Path(args.weights_dir) / name}_*.npy")
        return cached
    corners = controller_corners(controllers.pixels, source.pix_to_face, mesh.faces)
    control = geodesic_weights(mesh.vertices, mesh.faces, corners, k=args.weights_k, method=args.weights_method)
    save_weights(args.weights_dir, name, control)
    return control


def start_frame(args, clip: DrivingClip, source_rgbd: torch.Tensor, device) -> torch.Tensor:
    if args.find_best:
        from common.landmarks import LandmarkDetector

        try:
            detector = LandmarkDetector("face_alignment", device=str(device), flip_input=True)
        except InputError as exc:
            log.info(f"--find_best: using dlib landmarks ({exc})")
            detector = LandmarkDetector("dlib")
        best = animate.find_best_frame(source_rgbd, clip.frames, detector)
        log.info(f"best frame: {best + args.offset}")
        return clip.frames[best]
    if args.best_frame > 0:
        index = args.best_frame - args.offset
        if not 0 <= index < len(clip.frames):
            raise InputError(f"--best_frame {args.best_frame} is outside the frames read ({args.offset}..)")
        return clip.frames[index]
    return clip.start


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    final = result_folder(args)
    if args.adjust_camera:
        source = render_source(load_avatar(args.source_path, args.bfm_model), args.eye, args.translation)
        with staged(final) as stage:
            source_files(stage, source, animate.norm_image(source.colour_bgr_float, source.zbuf, "rendered avatar"))
        print(f"depth range {source.depth_min} {source.depth_max}; wrote {final}/color.png and depth.png")
        return 0

    device = resolve_device(args.device)
    check_precision(args.precision, device)
    generator = load_inference_generator(args.checkpoint, device)
    clip = load_driving(args.driving_path, args.length, args.offset, args.fix_channel_order)
    if args.target_frame >= len(clip.frames):
        raise InputError(f"--target_frame {args.target_frame}: only {len(clip.frames)} driving frames were read")
    source = render_source(load_avatar(args.source_path, args.bfm_model), args.eye, args.translation)
    source_rgbd = animate.norm_image(source.colour_bgr_float, source.zbuf, "rendered avatar")
    log.info(f"avatar depth range {source.depth_min} {source.depth_max}")
    controllers = find_controllers(source.colour_bgr, source.zbuf)
    log.info(f"{len(controllers)} controllers")
    start = start_frame(args, clip, source_rgbd, device)

    with staged(final) as stage:
        source_files(stage, source, source_rgbd)
        write_controllers_picture(stage / "controllers.png", source.colour_bgr, controllers)
        control = controlling_weights(args, source, controllers)
        animator = animate.Animator(
            generator,
            source,
            source_rgbd,
            controllers,
            control,
            args.lap_times,
            args.lambda_lap,
            precision=args.precision,
        )
        animator.set_start(start)
        if args.target_frame >= 0:
            write_target_frame(stage, args.target_frame, clip.frames[args.target_frame], animator, source_rgbd)
        else:
            write_clip(stage, clip, animator, source)
    log.info(f"wrote {final}")
    return 0


def write_target_frame(stage: Path, j: int, frame: torch.Tensor, animator: animate.Animator, source_rgbd) -> None:
    result = animator.animate(frame)
    write_png(stage / f"{j}_depth_img.png", result.depth_u16)
    write_png(stage / "source_img.png", tensor_png(source_rgbd[0, :3]))
    write_png(stage / f"{j}_driving_img.png", tensor_png(frame[0, :3]))
    write_png(stage / f"{j}_recon_img.png", tensor_png(result.front))
    write_png(stage / f"{j}_recon_img_angles.png", tensor_png(result.rotated))
    write_png(stage / f"{j}_recon_img_rgb.png", tensor_png(result.rgb))


def write_clip(stage: Path, clip: DrivingClip, animator: animate.Animator, source: SourceRender) -> None:
    shape = (len(clip.frames), IMAGE_SIZE, 4 * IMAGE_SIZE, 3)
    # The clip-wide scaling needs every frame first: they wait on disk, not in memory.
    bottoms = np.lib.format.open_memmap(stage / ".bottom_rows.npy", mode="w+", dtype=np.float32, shape=shape)
    for index, frame in enumerate(progress(clip.frames, desc="animating")):
        bottoms[index] = bottom_row(frame, animator.animate(frame))
    write_panels_video(stage / "inference.mp4", source_row(source), bottoms)
    del bottoms


if __name__ == "__main__":
    raise SystemExit(main())
