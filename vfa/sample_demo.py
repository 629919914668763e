"""VFA animation of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m vfa.sample_demo --sample DIR --out OUT [--checkpoint VFA.pt] [--frames N (30)]
                              [--steps N] [--max_seconds S] [--seed N]

The sample has photos and landmarks but neither depth nor a BFM09 model, so both of VFA's inputs
are built from it, with a synthetic depth (not a sensor's):

* face depth from 68 landmarks: the face is the ellipse fitted to the jaw line and its mirror
  image above the ear-to-ear line (the forehead); inside it the surface rises toward the viewer
  as a dome (0.35 x the face width at the centre) plus an elongated bump along the nose
  (0.12 x the face width); nothing outside the ellipse;
* the avatar (OUT/avatar.obj): source_2.png (the second identity) cropped to its mediapipe face
  box as `vfa.preprocess` crops, as a textured heightfield: a grid of vertices over the face
  ellipse, each placed on the source camera's ray through its pixel at that depth and coloured by
  the photo there, so the avatar rendered from the front shows the photo and mediapipe FaceMesh
  finds the face (the controllers) on it as on a rendered BFM09 avatar;
* the driving clip (OUT/driving_rgbd): every frame of DIR/driving with its depth built the same
  way from its landmarks (metres: the face 0.15 m wide at 0.35 m), run through `vfa.preprocess`
  as an RGB + EXR capture: color/output.mp4 + 16-bit FFV1 depth/output.nut, the original's
  driving layout (`python -m vfa.infer --source_path OUT/avatar.obj --driving_path
  OUT/driving_rgbd/color/output.mp4` reads them).

Without --checkpoint: a QUICK FIT, not the official model: `vfa.train` stage 1 (encoder + RGBD
generator) then stage 2 (distillation of the flow generator), each for --steps steps or about half
of --max_seconds, at 256 x 256, batch 1, on the driving clip (5 copies, each starting at another
frame: one training sample per video). 256 is the only size the animation runs at: a generator
built for 128 has other layers and its encoder cannot take the 256 x 256 avatar. The perceptual
loss uses torchvision's VGG19 from checkpoints/vfa/ when it is there, else random VGG19 weights.
With --checkpoint: the official VFA.pt, loaded strictly.

The avatar is then animated by the first --frames driving frames as `python -m vfa.infer
--weights_method fast` does (relative motion from driving frame 0; controlling weights from one
heat solve per controller corner). Writes OUT/inference.mp4 (the original's panel video: avatar on
top; driving frame, network RGB, animated mesh front and rotated below), OUT/cross/frames/NNNNN.png
(the animated mesh from the front: source_2's identity with the first identity's motion),
OUT/avatar.obj, OUT/controllers.png, OUT/driving_rgbd/, OUT/run.json (for `tools.compare_demo`:
the cross-identity part only, since a rendered avatar in its own crop has no pixel ground truth)
and OUT/README.txt (what produced them). On 2 free cores the defaults take about 3 minutes (the fit
about 100 s, about 2 s per animated frame); cores shared with other work slow it several-fold.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common.errors import cli_main
from common.image import read_image
from common.progress import get_logger, progress
from common.sample import require
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme, write_run_info
from common.video import iter_frames, read_depth_video, write_depth_video, write_exr, write_video
from vfa import animate, infer, preprocess, train
from vfa.checkpoint import load_inference_generator
from vfa.controllers import Controllers, find_controllers, write_controllers_picture
from vfa.facemesh import face_mesh_landmarks
from vfa.losses import VGG19_FILE
from vfa.mesh import Mesh, write_obj
from vfa.render import IMAGE_SIZE, SOURCE_EYE, Camera, SourceRender, render_source, screen_to_world
from vfa.weights import ControlWeights, controller_corners, geodesic_weights

log = get_logger("vfa.sample_demo")

SIZE = IMAGE_SIZE  # VFA's only resolution
FOREHEAD = 0.85  # the forehead's height as a fraction of the ear-line-to-chin height
DOME = 0.35  # face centre's height over the ellipse rim, x the face width
NOSE = 0.12  # nose bump, x the face width
FACE_WIDTH_M, FACE_DISTANCE_M = 0.15, 0.35  # the synthetic capture (preprocess drops depth >= 0.5 m)
AVATAR_GRID = 192  # vertices across the avatar's view (about 22k fall inside the face)
CLIP_COPIES = 5  # training videos (copies of the clip from other start frames); the first 4 train
TRAINING_NAME = "output"
DEFAULT_FRAMES = 30  # of the sample's 48: about 2 s each on 2 cores

QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: vfa.train stage 1 for {steps1} steps ({seconds1:.0f} s, "
    "final loss {loss1:.2f}) and stage 2 (distillation) for {steps2} steps ({seconds2:.0f} s, final loss "
    "{loss2:.2f}) from random initial weights, 256 x 256, batch 1, on the sample's driving clip with "
    "synthetic landmark depth; perceptual loss with {vgg}. Expect an avatar that barely moves or is "
    "distorted at random (the untrained flow moves the controllers): this many steps do not learn motion."
)
OFFICIAL_LABEL = "OFFICIAL MODEL: {checkpoint} (strict load)"


# ------------------------------------------------------------------------------- synthetic depth
def face_ellipse(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre [2], half axes [2], angle in radians) of the ellipse fitted to the jaw line (iBUG
    0-16) and its mirror image above the ear-to-ear line (0-16) scaled by FOREHEAD."""
    jaw = np.asarray(landmarks, dtype=np.float64)[:17]
    left, right = jaw[0], jaw[16]
    normal = np.array([right[1] - left[1], left[0] - right[0]])
    normal /= np.linalg.norm(normal)
    if np.dot(jaw[8] - left, normal) < 0:
        normal = -normal  # toward the chin
    forehead = jaw - (1 + FOREHEAD) * ((jaw - left) @ normal)[:, None] * normal
    (cx, cy), (width, height), angle = cv2.fitEllipse(np.concatenate([jaw, forehead]).astype(np.float32))
    return np.array([cx, cy]), np.array([width, height]) / 2, np.deg2rad(angle)


def face_height(landmarks: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside the face ellipse, height toward the viewer in pixels) at image points (x, y)
    (continuous coordinates, pixel centres at .5): the dome plus the nose bump."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    centre, half, angle = face_ellipse(landmarks)
    dx, dy = x - centre[0], y - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / half[0]
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / half[1]
    radius2 = u**2 + v**2
    width = 2 * half.min()
    dome = DOME * width * np.sqrt(np.clip(1 - radius2, 0, 1))
    top, tip = landmarks[27], landmarks[30]
    length = np.linalg.norm(tip - top)
    along = (tip - top) / length
    middle = (landmarks[28] + tip) / 2
    nose_width = np.linalg.norm(landmarks[35] - landmarks[31])
    a = (x - middle[0]) * along[0] + (y - middle[1]) * along[1]
    b = -(x - middle[0]) * along[1] + (y - middle[1]) * along[0]
    nose = NOSE * width * np.exp(-0.5 * ((a / (0.6 * length)) ** 2 + (b / (0.45 * nose_width)) ** 2))
    inside = radius2 < 1
    return inside, np.where(inside, dome + nose, 0.0)


def depth_metres(landmarks: np.ndarray, size: int) -> np.ndarray:
    """[size, size] float32 depth of a synthetic capture: the face FACE_WIDTH_M wide at
    FACE_DISTANCE_M, 0 (no reading) outside the face ellipse."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    inside, height = face_height(landmarks, x, y)
    metres_per_pixel = FACE_WIDTH_M / (2 * face_ellipse(landmarks)[1].min())
    return np.where(inside, FACE_DISTANCE_M - height * metres_per_pixel, 0.0).astype(np.float32)


# -------------------------------------------------------------------------------------- avatar
def face_crop(photo: np.ndarray, landmarks: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo cropped to its mediapipe face box as `vfa.preprocess` crops (black beyond the
    image), resized to SIZE, and its landmarks moved along."""
    height, width = photo.shape[:2]
    x, y, w, h = preprocess.face_box(face_mesh_landmarks(photo, name=name), width, height)
    scale = np.array([SIZE / w, SIZE / h])
    affine = np.array([[scale[0], 0, -x * scale[0]], [0, scale[1], -y * scale[1]]])
    crop = cv2.warpAffine(photo, affine, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop, (np.asarray(landmarks, dtype=np.float64) - [x, y]) * scale


def heightfield_avatar(photo: np.ndarray, landmarks: np.ndarray, grid: int = AVATAR_GRID) -> Mesh:
    """The face of a SIZE x SIZE photo as a heightfield mesh (module docstring); colours 0-1."""
    t = (np.arange(grid) + 0.5) * SIZE / grid
    x, y = np.meshgrid(t, t)
    inside, height = face_height(landmarks, x, y)
    camera = Camera.looking_at_origin(SOURCE_EYE)
    world_per_pixel = SOURCE_EYE[2] / camera.focal_length  # at the origin's depth
    depth = SOURCE_EYE[2] - height * world_per_pixel
    # vfa.render's screen positions count from pixel centres
    screen = np.stack([x.ravel() - 0.5, y.ravel() - 0.5, 1.0 / depth.ravel()], axis=1)
    keep = inside.ravel()
    ids = np.full(grid * grid, -1)
    ids[keep] = np.arange(keep.sum())
    ids = ids.reshape(grid, grid)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    faces = np.concatenate([np.stack(corners, -1).reshape(-1, 3) for corners in ((a, c, b), (b, c, d))])
    faces = faces[(faces >= 0).all(axis=1)]
    remap = (x - 0.5).astype(np.float32), (y - 0.5).astype(np.float32)
    colours = cv2.remap(photo.astype(np.float32), *remap, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    vertices = screen_to_world(screen[keep], camera)
    return Mesh(vertices, faces, colours.reshape(-1, 3)[keep] / 255.0)


# ------------------------------------------------------------------------------------- driving
def sample_images(paths: list[Path], sample: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames at SIZE x SIZE and their 68 landmarks [N, 68, 2] in those pixels."""
    images, points = [], []
    for path, marks in paths:
        image = read_image(path)
        images.append(read_image(path, SIZE) if image.shape[:2] != (SIZE, SIZE) else image)
        points.append(np.load(require(marks, sample))[:68] * (SIZE / image.shape[1]))
    return images, np.asarray(points, dtype=np.float64)


def write_driving_rgbd(frames: list[np.ndarray], landmarks: np.ndarray, work: Path, out: Path) -> Path:
    """`vfa.preprocess` of a synthetic RGB + EXR capture of `frames`; moves its result to `out`
    (color/output.mp4, depth/output.nut) and returns the mp4."""
    capture = work / "capture"
    (capture / "rgb").mkdir(parents=True)
    for index, (frame, points) in enumerate(zip(frames, landmarks)):
        cv2.imwrite(str(capture / "rgb" / f"{index}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
        write_exr(capture / "depth" / f"{index}.exr", depth_metres(points, SIZE))
    colour_path, _ = preprocess.preprocess(capture, TRAINING_NAME)
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(colour_path.parent.parent), out)
    return out / "color" / f"{TRAINING_NAME}.mp4"


def write_training_set(root: Path, colour_path: Path) -> Path:
    """root/MMFace4D/sample/ with CLIP_COPIES copies of the clip, copy k starting at frame k·n/5
    (source = a copy's frame 0, driving = one of its frames); returns root."""
    colours = list(iter_frames(colour_path))
    depths = read_depth_video(infer.depth_video_path(str(colour_path)))
    person = root / "MMFace4D" / "sample"
    for copy in range(CLIP_COPIES):
        order = np.roll(np.arange(len(colours)), -copy * len(colours) // CLIP_COPIES)
        write_video(person / "color" / f"{copy}.mp4", (colours[i] for i in order), fps=preprocess.FPS, crf=3)
        write_depth_video(person / "depth" / f"{copy}.nut", (depths[i] for i in order), fps=preprocess.FPS)
    return root


# ------------------------------------------------------------------------------------ quick fit
def vgg_weights(work: Path, seed: int) -> tuple[Path, str]:
    """torchvision's VGG19 file if it is in place, else random VGG19 weights; (path, description)."""
    if VGG19_FILE.is_file():
        return VGG19_FILE, f"torchvision's VGG19 ({VGG19_FILE})"
    from common.vgg.torch_vgg import VGGFeatures

    torch.manual_seed(seed)
    path = work / "vgg19_random.pth"
    torch.save(VGGFeatures("vgg19").state_dict(), path)
    return path, f"random VGG19 weights ({VGG19_FILE} not found)"


def latest_checkpoint(run: Path) -> Path | None:
    found = sorted((run / "checkpoint").glob("*.pt"))
    return found[-1] if found else None


def fit_stage(
    root: Path, vgg: Path, run: Path, start: Path | None, steps: int, seconds: float, seed: int
) -> tuple[Path, int, float, float]:
    """One time-boxed `vfa.train` stage in `run` (stage 2 when `start`, a stage-1 file, is given);
    (last checkpoint, steps done, seconds, last loss). Older checkpoints are deleted as it goes."""
    rows = []

    def train_until(step: int) -> None:
        previous = latest_checkpoint(run)
        resume = previous or start
        argv = [
            *("--size", str(SIZE), "--batch_size", "1", "--workers", "0", "--data_root", str(root)),
            *("--vgg", str(vgg), "--exp_path", str(run.parent), "--exp_name", run.name, "--iter", str(step)),
            *("--save_freq", str(10**9), "--display_freq", str(10**9), "--seed", str(seed), "--device", "cpu"),
            *(("--distilling",) if start is not None else ()),
            *(("--resume_ckpt", str(resume)) if resume is not None else ()),
        ]
        rows.extend(train.train(train.build_parser().parse_args(argv), show_progress=False))
        for old in (run / "checkpoint").rglob("*.pt"):
            if old.name != f"{step - 1:06d}.pt":
                old.unlink()

    done, elapsed = time_boxed_fit(train_until, steps, seconds)
    return latest_checkpoint(run), done, elapsed, rows[-1]["loss"]


def quick_fit(args: argparse.Namespace, work: Path, colour_path: Path) -> tuple[Path, str]:
    """Stage 1 then stage 2 on the driving clip; (inference checkpoint, README label)."""
    root = write_training_set(work / "data", colour_path)
    vgg, vgg_text = vgg_weights(work, args.seed)
    half = args.max_seconds / 2
    stage1, steps1, seconds1, loss1 = fit_stage(root, vgg, work / "stage1", None, args.steps, half, args.seed)
    log.info(f"stage 1: {steps1} steps in {seconds1:.0f} s")
    # A file name that is not a step number: stage 2 starts at step 0 from its weights.
    teacher = stage1.rename(work / "stage1.pt")
    rest = max(args.max_seconds - seconds1, 1.0)
    stage2, steps2, seconds2, loss2 = fit_stage(root, vgg, work / "stage2", teacher, args.steps, rest, args.seed)
    log.info(f"stage 2: {steps2} steps in {seconds2:.0f} s")
    label = QUICK_LABEL.format(
        steps1=steps1, seconds1=seconds1, loss1=loss1, steps2=steps2, seconds2=seconds2, loss2=loss2, vgg=vgg_text
    )
    return stage2, label


# ------------------------------------------------------------------------------------ animation
def to_uint8(image: np.ndarray) -> np.ndarray:
    """[-1, 1] RGB -> uint8."""
    return np.clip((image + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Avatar:
    """The avatar as vfa.infer prepares it: render, network input, controllers and their weights."""

    source: SourceRender
    rgbd: torch.Tensor
    controllers: Controllers
    control: ControlWeights


def prepare_avatar(mesh: Mesh, out: Path) -> Avatar:
    """Render the avatar, find its controllers (OUT/controllers.png) and their fast weights."""
    source = render_source(mesh)
    rgbd = animate.norm_image(source.colour_bgr_float, source.zbuf, "rendered avatar")
    controllers = find_controllers(source.colour_bgr, source.zbuf)
    write_controllers_picture(out / "controllers.png", source.colour_bgr, controllers)
    corners = controller_corners(controllers.pixels, source.pix_to_face, source.mesh.faces)
    control = geodesic_weights(source.mesh.vertices, source.mesh.faces, corners, method="fast", show_progress=False)
    log.info(f"{len(controllers)} controllers on the avatar ({len(mesh.vertices)} vertices)")
    return Avatar(source, rgbd, controllers, control)


def animate_avatar(generator, avatar: Avatar, colour_path: Path, out: Path, frames: int) -> tuple[int, float]:
    """vfa.infer's loop (relative motion from driving frame 0): OUT/inference.mp4 and
    OUT/cross/frames/NNNNN.png (the front view). Returns (frames animated, seconds per frame)."""
    clip = infer.load_driving(str(colour_path), frames, 0)
    animator = animate.Animator(generator, avatar.source, avatar.rgbd, avatar.controllers, avatar.control)
    animator.set_start(clip.start)
    folder = out / "cross" / "frames"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    bottoms, start = [], time.perf_counter()
    for index, frame in enumerate(progress(clip.frames, desc="animating")):
        result = animator.animate(frame)
        cv2.imwrite(str(folder / f"{index:05d}.png"), to_uint8(result.front)[..., ::-1])
        bottoms.append(infer.bottom_row(frame, result))
    seconds = (time.perf_counter() - start) / len(bottoms)
    infer.write_panels_video(out / "inference.mp4", infer.source_row(avatar.source), np.stack(bottoms))
    return len(bottoms), seconds


# -------------------------------------------------------------------------------------- command
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vfa.sample_demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(parser, steps=1000, max_seconds=90, checkpoint_help="official VFA.pt")
    parser.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_FRAMES,
        help=f"animate the first N driving frames (default {DEFAULT_FRAMES}: one mouth opening, about a minute)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    frames = start_demo(args)
    start = time.perf_counter()
    generator = None if args.checkpoint is None else load_inference_generator(args.checkpoint)  # strict
    source_2 = require(args.sample / "source_2.png", args.sample)
    (photo,), (photo_marks,) = sample_images([(source_2, args.sample / "landmarks" / "source_2.npy")], args.sample)
    driving, driving_marks = sample_images([(f.image, f.landmarks) for f in frames[1:]], args.sample)
    with tempfile.TemporaryDirectory(prefix="vfa_sample_demo_") as tmp:
        work = Path(tmp)
        mesh = heightfield_avatar(*face_crop(photo, photo_marks, str(source_2)))
        write_obj(args.out / "avatar.obj", mesh)
        avatar = prepare_avatar(mesh, args.out)
        colour_path = write_driving_rgbd(driving, driving_marks, work, args.out / "driving_rgbd")
        if generator is None:
            checkpoint, label = quick_fit(args, work, colour_path)
            generator = load_inference_generator(checkpoint)
        else:
            label = OFFICIAL_LABEL.format(checkpoint=args.checkpoint)
        count, seconds_per_frame = animate_avatar(generator, avatar, colour_path, args.out, args.frames)
    cross = {"frames": "cross/frames", "source": source_2, "driving": args.sample / "driving", "identity": source_2}
    write_run_info(
        args.out,
        "vfa",
        "quick fit" if args.checkpoint is None else "official",
        "quick fit (not kept)" if args.checkpoint is None else str(args.checkpoint),
        SIZE,
        {"cross": cross},
        seconds_per_frame,
    )
    write_readme(
        args.out,
        label,
        args.sample,
        f"avatar: {args.out / 'avatar.obj'} (heightfield of source_2.png, synthetic landmark depth)\n"
        f"driving RGBD: {args.out / 'driving_rgbd'} (synthetic landmark depth, not a sensor)\n"
        f"inference.mp4: avatar on top; driving, network RGB, animated mesh front and rotated below\n"
        f"cross/frames/NNNNN.png: the animated mesh from the front, {count} frames\n"
        f"{time.perf_counter() - start:.0f} s on this machine",
    )
    return 0


if __name__ == "__main__":
    main()
