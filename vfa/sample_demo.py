"""VFA animation of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m vfa.sample_demo --sample DIR --out OUT [--checkpoint VFA.pt] [--quick_fit] [--frames N (30)]
                              [--steps N] [--max_seconds S] [--seed N]

The sample has photos and landmarks but neither depth nor a BFM09 model, so both of VFA's inputs
are built from it with `vfa.synthetic`'s made-up depth: the avatar (OUT/avatar.obj) is source_2.png
(the second identity) as a textured heightfield, and the driving clip (OUT/driving_rgbd) is every
frame of DIR/driving with a synthetic depth, run through `vfa.preprocess` into the original's
driving layout (`python -m vfa.infer --source_path OUT/avatar.obj --driving_path
OUT/driving_rgbd/color/output.mp4` reads them).

The model: --checkpoint, else checkpoints/vfa/VFA.pt when present (the official model), else the
DEMO MODEL vfa/demo_model/VFA.pt trained on the sample by `python -m vfa.demo_model` (8x narrower
networks, synthetic depth: it shows the pipeline working, not VFA's quality). A QUICK FIT (the demo
model's recipes run for --steps steps or about --max_seconds in all) is used only with --quick_fit
or when no demo model exists. Every file loads strictly.

The avatar is then animated by the first --frames driving frames as `python -m vfa.infer
--weights_method fast` does (relative motion from driving frame 0; controlling weights from one
heat solve per controller corner). Writes OUT/inference.mp4 (the original's panel video: avatar on
top; driving frame, network RGB, animated mesh front and rotated below), OUT/cross/frames/NNNNN.png
(the animated mesh from the front: source_2's identity with the first identity's motion),
OUT/avatar.obj, OUT/controllers.png, OUT/driving_rgbd/, OUT/run.json (for `tools.compare_demo`:
the cross-identity part only, since a rendered avatar in its own crop has no pixel ground truth)
and OUT/README.txt (what produced them). On 2 free cores the demo model takes about 25 s
(about 0.3 s per animated frame); cores shared with other work slow it several-fold.
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

from common.checkpoint import require_file
from common.errors import cli_main
from common.progress import get_logger, progress
from common.sample import require
from common.sample_demo import add_demo_arguments, pick_model, start_demo, time_boxed_fit, write_readme, write_run_info
from vfa import animate, demo_model, infer, train
from vfa.checkpoint import DEFAULT_CHECKPOINT, WHERE, load_inference_generator, read_vfa_checkpoint
from vfa.controllers import Controllers, find_controllers, write_controllers_picture
from vfa.mesh import Mesh, write_obj
from vfa.render import SourceRender, render_source
from vfa.synthetic import SIZE, face_crop, heightfield_avatar, sample_images, write_driving_rgbd
from vfa.weights import ControlWeights, controller_corners, geodesic_weights

log = get_logger("vfa.sample_demo")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = 30  # of the sample's 48

DEMO_LABEL = (
    "DEMO MODEL trained on the sample by `make demo-models` (recipes vfa/runs/sample_stage1.flags and "
    "sample_stage2.flags): VFA's two stages from scratch ({steps1} + {steps2} steps, 256 x 256, networks "
    "{divisor}x narrower than the official ones, {style}-D styles) on the training frames of the sample's two "
    "identities with synthetic landmark depth; an L1 term on RGB in place of the VGG19 perceptual terms (no "
    "package ships ImageNet VGG19). Not the official model."
)
QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: the demo model's recipes (vfa/runs/sample_stage*.flags) "
    "for only {steps1} steps of stage 1 ({seconds1:.0f} s, final loss {loss1:.2f}) and {steps2} of stage 2 "
    "(distillation; {seconds2:.0f} s, final loss {loss2:.2f}) from random initial weights, 256 x 256, on the "
    "training frames of the sample's two identities with synthetic landmark depth, L1 in place of VGG19 terms. "
    "Expect an avatar that barely moves or is distorted at random: this many steps do not learn motion."
)
OFFICIAL_LABEL = "OFFICIAL MODEL: {checkpoint} (strict load)"


# ------------------------------------------------------------------------------------ quick fit
def quick_fit(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """The demo model's two stages, each for --steps steps or about half of --max_seconds;
    (inference checkpoint, README label)."""
    half = args.max_seconds / 2
    done = {}

    def run_stage(stage: int, argv: list[str]) -> Path:
        rows = []
        run = work / f"stage{stage}"

        def train_until(step: int) -> None:
            resume = demo_model.last_checkpoint(run) if (run / "checkpoint").is_dir() else None
            more = ["--iter", str(step), "--seed", str(args.seed), "--save_freq", str(10**9), "--log_freq", "1"]
            flags = train.build_parser().parse_args([*argv, *more, *(["--resume_ckpt", str(resume)] if resume else [])])
            rows.extend(train.train(flags, show_progress=False))
            for old in (run / "checkpoint").rglob("*.pt"):
                if old.name != f"{step - 1:06d}.pt":
                    old.unlink()

        seconds = half if stage == 1 else max(args.max_seconds - done[1][1], 1.0)
        steps, seconds = time_boxed_fit(train_until, args.steps, seconds)
        done[stage] = (steps, seconds, rows[-1]["loss"])
        log.info(f"stage {stage}: {steps} steps in {seconds:.0f} s")
        return demo_model.last_checkpoint(run)

    checkpoint, _, _ = demo_model.train_stages(args.sample, work, run_stage)
    (steps1, seconds1, loss1), (steps2, seconds2, loss2) = done[1], done[2]
    label = QUICK_LABEL.format(
        steps1=steps1, seconds1=seconds1, loss1=loss1, steps2=steps2, seconds2=seconds2, loss2=loss2
    )
    return checkpoint, label


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


@dataclass(frozen=True)
class Animation:
    """What animate_avatar did: frames, seconds per frame, the mean share of controllers tracked and
    the frames whose mesh moved (a frame where some vertex keeps no tracked controller stays still,
    as in the original)."""

    frames: int
    seconds_per_frame: float
    tracked: float
    moved: int

    def summary(self) -> str:
        return (
            f"mesh motion: {self.tracked:.0%} of the controllers tracked on average, the mesh moved in "
            f"{self.moved} of {self.frames} frames"
        )


def animate_avatar(generator, avatar: Avatar, colour_path: Path, out: Path, frames: int) -> Animation:
    """vfa.infer's loop (relative motion from driving frame 0): OUT/inference.mp4 and
    OUT/cross/frames/NNNNN.png (the front view)."""
    clip = infer.load_driving(str(colour_path), frames, 0)
    animator = animate.Animator(generator, avatar.source, avatar.rgbd, avatar.controllers, avatar.control)
    animator.set_start(clip.start)
    folder = out / "cross" / "frames"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    bottoms, tracked, moved, start = [], [], 0, time.perf_counter()
    for index, frame in enumerate(progress(clip.frames, desc="animating")):
        result = animator.animate(frame)
        cv2.imwrite(str(folder / f"{index:05d}.png"), to_uint8(result.front)[..., ::-1])
        bottoms.append(infer.bottom_row(frame, result))
        tracked.append(1.0 - result.tracking.untracked.mean())
        moved += bool(np.any(result.displacement))
    seconds = (time.perf_counter() - start) / len(bottoms)
    infer.write_panels_video(out / "inference.mp4", infer.source_row(avatar.source), np.stack(bottoms))
    return Animation(len(bottoms), seconds, float(np.mean(tracked)), moved)


# -------------------------------------------------------------------------------------- command
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vfa.sample_demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(parser, steps=1000, max_seconds=90, checkpoint_help="official VFA.pt")
    parser.add_argument("--quick_fit", action="store_true", help="train a quick fit even if the demo model exists")
    parser.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_FRAMES,
        help=f"animate the first N driving frames (default {DEFAULT_FRAMES}: one mouth opening)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    return args


def demo_label(checkpoint: Path) -> str:
    """The README line of the committed demo model, from the flags it was trained with."""
    flags = read_vfa_checkpoint(checkpoint)["args"]
    return DEMO_LABEL.format(
        steps1=flags.stage1_iter,
        steps2=flags.iter,
        divisor=flags.channel_divisor,
        style=flags.latent_dim_style,
    )


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    frames = start_demo(args)
    start = time.perf_counter()
    if args.checkpoint is not None:
        picked = [require_file(args.checkpoint, "checkpoint file", WHERE)], "official"
    else:
        picked = (
            None
            if args.quick_fit
            else pick_model([REPO / DEFAULT_CHECKPOINT], [demo_model.DEMO_DIR / demo_model.MODEL_FILE])
        )
    generator = None
    if picked is not None:
        (checkpoint,), kind = picked
        generator = load_inference_generator(checkpoint)  # strict
        label = OFFICIAL_LABEL.format(checkpoint=checkpoint) if kind == "official" else demo_label(checkpoint)
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
            fitted, label = quick_fit(args, work / "fit")
            generator = load_inference_generator(fitted)
            kind, checkpoint = "quick fit", "quick fit (not kept)"
        animation = animate_avatar(generator, avatar, colour_path, args.out, args.frames)
    cross = {"frames": "cross/frames", "source": source_2, "driving": args.sample / "driving", "identity": source_2}
    write_run_info(args.out, "vfa", kind, str(checkpoint), SIZE, {"cross": cross}, animation.seconds_per_frame)
    write_readme(
        args.out,
        label,
        args.sample,
        f"avatar: {args.out / 'avatar.obj'} (heightfield of source_2.png, synthetic landmark depth)\n"
        f"driving RGBD: {args.out / 'driving_rgbd'} (synthetic landmark depth, not a sensor)\n"
        f"inference.mp4: avatar on top; driving, network RGB, animated mesh front and rotated below\n"
        f"cross/frames/NNNNN.png: the animated mesh from the front, {animation.frames} frames\n"
        f"{animation.summary()}\n"
        f"{time.perf_counter() - start:.0f} s on this machine",
    )
    return 0


if __name__ == "__main__":
    main()
