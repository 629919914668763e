"""Train the demo model of `make demo-models`: VFA's two training stages on the shared sample.

    python -m vfa.demo_model --sample DIR [--work DIR] [--out vfa/demo_model] [--steps N]

The training frames of the sample's two identities (`common.sample.training_count`:
driving/00000-00039 and driving_2/00000-00039, never the held-out rest) get a synthetic depth
(`vfa.synthetic`), go through `vfa.preprocess` as RGB + EXR captures and become CLIP_COPIES
videos per identity in the MMFace4D layout (each copy starting at another frame, since VFA takes
one source frame per video). `vfa.train` then runs stage 1 with vfa/runs/sample_stage1.flags and
stage 2 (distillation) with vfa/runs/sample_stage2.flags from stage 1's last weights, seed 0, on the
CPU. No package ships ImageNet VGG19, so the recipes leave the perceptual terms out
(--lambda_loss_vgg=0) and stage 1 gets an L1 term on its RGB instead (--lambda_loss_rgb_l1); the
depth terms and stage 2's L1 terms are the original's. With no LIA.pt to start from, stage 1 also
trains the layers the original takes from it and freezes, with its flow heads starting at zero
(--from_scratch), held for a warm-up and trained up to 64 px only, and half of the pairs in both
stages are identity pairs: what keeps the flows learnable under L1 (the recipes' comments say
why). The last stage-2 checkpoint, without its
optimiser state and with the machine's paths dropped from its flags, becomes OUT/VFA.pt in the
official layout, loaded strictly by `vfa.checkpoint.load_inference_generator`.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import InputError, cli_main, require_at_least_one
from common.progress import get_logger
from common.sample import require, sample_frames, second_identity_frames, training_count
from common.sample_demo import demo_model_parser, in_work_folder
from vfa import train
from vfa.checkpoint import load_inference_generator, read_vfa_checkpoint, save_vfa
from vfa.synthetic import sample_images, write_clip_copies, write_driving_rgbd

PACKAGE = Path(__file__).resolve().parent
RECIPES = (PACKAGE / "runs" / "sample_stage1.flags", PACKAGE / "runs" / "sample_stage2.flags")
DEMO_DIR = PACKAGE / "demo_model"
MODEL_FILE = "VFA.pt"
SEED = 0
CLIP_COPIES = 10  # videos per identity; vfa.dataset trains on the first 8 (its 80 % split)

log = get_logger("vfa.demo_model")


def write_training_set(sample: Path, work: Path) -> Path:
    """work/data/MMFace4D/identity_{1,2}/ from both identities' training frames; returns work/data."""
    clips = (("identity_1", sample_frames(sample)[1:]), ("identity_2", second_identity_frames(sample)))
    root = work / "data"
    shutil.rmtree(root, ignore_errors=True)  # from an earlier run in the same work folder
    for person, frames in clips:
        trained = frames[: training_count(len(frames))]
        images, landmarks = sample_images([(f.image, f.landmarks) for f in trained], sample)
        capture = work / f"{person}_capture"
        shutil.rmtree(capture, ignore_errors=True)
        colour_path = write_driving_rgbd(images, landmarks, capture, work / f"{person}_rgbd")
        write_clip_copies(root, person, colour_path, CLIP_COPIES)
    return root


def stage_argv(stage: int, data: Path, run: Path, resume: Path | None = None) -> list[str]:
    """vfa.train's arguments for stage 1 or 2 of the recipe in folder `run`."""
    argv = [f"@{RECIPES[stage - 1]}", "--data_root", str(data), "--seed", str(SEED)]
    argv += ["--exp_path", str(run.parent), "--exp_name", run.name]
    return argv + (["--resume_ckpt", str(resume)] if resume is not None else [])


def last_checkpoint(run: Path) -> Path:
    """The highest-numbered <iter>.pt vfa.train wrote in `run`."""
    found = sorted((run / "checkpoint").glob("[0-9]*.pt"))
    if not found:
        raise InputError(f"{run}: vfa.train wrote no checkpoint")
    return found[-1]


def teacher_file(stage1: Path, work: Path) -> Path:
    """Stage 1's weights under a name that is not a step number, so stage 2 starts at step 0."""
    return Path(shutil.copy(stage1, work / "stage1.pt"))


def train_stages(
    sample: Path, work: Path, run_stage: Callable[[int, list[str]], Path]
) -> tuple[Path, list[float], int]:
    """Write the training set, then run stage 1 and stage 2 through `run_stage(stage, argv)` (which
    returns the stage's last checkpoint). Returns (stage-2 checkpoint, seconds per stage, stage-1 steps)."""
    data = write_training_set(sample, work)
    seconds = []
    start = time.perf_counter()
    stage1 = run_stage(1, stage_argv(1, data, work / "stage1"))
    seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    stage2 = run_stage(2, stage_argv(2, data, work / "stage2", teacher_file(stage1, work)))
    seconds.append(time.perf_counter() - start)
    return stage2, seconds, read_vfa_checkpoint(stage1)["args"].iter


def export(checkpoint: Path, out: Path, stage1_steps: int) -> Path:
    """`checkpoint`'s generator as out/VFA.pt: no optimiser state, stage 2's flags without this
    machine's paths, plus `stage1_iter` (stage 1's steps) for the demo's README; checked to load
    strictly."""
    flags = read_vfa_checkpoint(checkpoint)["args"]
    paths = {"data_root": None, "exp_path": None, "resume_ckpt": None, "vgg": None}
    flags = argparse.Namespace(**{**vars(flags), **paths, "stage1_iter": stage1_steps})
    model = save_vfa(out / MODEL_FILE, load_inference_generator(checkpoint), None, flags)
    load_inference_generator(model)
    return model


def train_demo_model(sample: Path, work: Path, out: Path, steps: int | None = None) -> Path:
    """Both stages with the recipes (`steps` caps each stage's iterations), exported to out/VFA.pt."""

    def run_stage(stage: int, argv: list[str]) -> Path:
        if steps is not None:
            argv += ["--iter", str(steps)]
        log.info(f"stage {stage}: python -m vfa.train {' '.join(argv)}")
        train.main(argv)
        return last_checkpoint(work / f"stage{stage}")

    for folder in ("stage1", "stage2"):
        shutil.rmtree(work / folder, ignore_errors=True)  # runs from an earlier call in the same work folder
    checkpoint, seconds, stage1_steps = train_stages(sample, work, run_stage)
    log.info(f"stage 1 {seconds[0]:.0f} s, stage 2 {seconds[1]:.0f} s")
    model = export(checkpoint, out, stage1_steps)
    log.info(f"demo model: {model} ({model.stat().st_size / 2**20:.1f} MB)")
    return model


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_model_parser(
        "python -m vfa.demo_model", __doc__, DEMO_DIR, f"where {MODEL_FILE} goes", "training set and run folders"
    )
    parser.add_argument("--steps", type=int, help="iterations per stage (default: the recipes')")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    require_at_least_one(args, "steps")
    require(args.sample / "source_2.png", args.sample)  # a missing sample is a one-line error before any work
    second_identity_frames(args.sample)
    in_work_folder(args.work, "vfa_demo_model_", lambda work: train_demo_model(args.sample, work, args.out, args.steps))


if __name__ == "__main__":
    main()
