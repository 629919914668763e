"""FSTH reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m fsth.sample_demo --sample DIR --out OUT [--checkpoint save_N.pkl] [--steps N] [--max_seconds S]

With --checkpoint: `fsth.infer` with DIR/source.png as the source frame(s) and DIR/driving/ as the
driving frames. Without: a QUICK FIT, not the official model (none was ever published): a small
meta-training run (`fsth.meta_train.meta_train`) on the sample's own frames at 64 x 64, stopped
after --steps iterations or about --max_seconds (`common.sample_demo.time_boxed_fit`, resuming
meta_train from its last checkpoint), then the same inference with its checkpoint. The perceptual
(VGG) terms are switched off (weight 0), so the loss reads no VGG weight files.
Writes OUT/frames/00000.png ..., OUT/result.mp4 and OUT/README.txt (what produced them).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common.checkpoint import require_file
from common.distributed import resolve_device
from common.errors import cli_main
from common.image import read_image
from common.progress import get_logger
from common.sample import require, sample_fps, sample_frames
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme
from common.video import write_frames, write_video
from fsth.checkpoint import WHERE, read_meta_checkpoint
from fsth.config import load_config
from fsth.infer import Reenactor, driving_frames
from fsth.loss import Loss_EG_meta
from fsth.meta_train import meta_train

log = get_logger("fsth.sample_demo")

# Narrow networks with the original block sequence (3 downsamplings: 64 px -> 8 x 8 maps).
QUICK_NETWORKS = {
    "G_config": (
        ("D", 16, 9, 2),
        ("I",),
        ("D", 32, 3, 2),
        ("I",),
        ("A",),
        ("D", 32, 3, 2),
        ("I",),
        ("BA", 32, 3),
        ("BA", 32, 3),
        ("U", 32, 3, 2),
        ("U", 16, 3, 2),
        ("A", 8),
        ("U", 3, 3, 2),
    ),
    "E_config": (("D", 16, 3, 2), ("D", 32, 3, 2), ("A",), ("D", 32, 3, 2)),
    "V_config": (("D", 16, 3, 2), ("D", 32, 3, 2), ("A",), ("D", 32, 3, 2), ("B", 32, 3)),
    "embedding_dim": 32,
}
QUICK_SIZE = 64

QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: FSTH networks ({size} px, narrow) "
    "meta-trained from scratch for {steps} steps ({seconds:.0f} s on {where}) on the sample's own "
    "frames, then run feed-forward. The perceptual (VGG19/VGGFace) loss terms were disabled "
    "(weight 0), so no VGG weights were loaded. Losses used: adversarial + feature matching + "
    "embedding matching. Expect blurry, low-quality output."
)
CHECKPOINT_LABEL = "FSTH reenactment with checkpoint {checkpoint} (feed-forward, no fine-tuning)."


def _training_set(sample: Path, root: Path) -> Path:
    """The sample's frames as one training video (frames + landmarks .npy beside them)."""
    clip = root / "sample" / "clip"
    clip.mkdir(parents=True)
    for i, frame in enumerate(sample_frames(sample)):
        shutil.copy(frame.image, clip / f"{i:05d}.png")
        shutil.copy(require(frame.landmarks, sample), clip / f"{i:05d}.npy")
    return root


def quick_fit(
    sample: Path, work: Path, steps: int, max_seconds: float, seed: int = 0, device=None
) -> tuple[Path, int, float]:
    """Meta-train the quick config on the sample; (checkpoint, steps done, seconds)."""
    # no VGG weight files: a term of loss weight 0 is never built
    cfg = load_config(
        None,
        **QUICK_NETWORKS,
        train_dataset=str(_training_set(sample, work / "data")),
        input_size=QUICK_SIZE,
        metatrain_T=4,
        metatrain_batch_size=2,
        num_worker=0,
        vgg19_weight_file=None,
        vggface_weight_file=None,
        vgg19_loss_weight=0.0,
        vggface_loss_weight=0.0,
        max_epoch=10**6,
        display_every=10,
        check_every=10**9,
        save_every=10**9,
        lr_EG=1e-3,
        lr_D=1e-3,
    )
    loss = Loss_EG_meta.from_config(cfg)
    run_dir, last = work / "run", None

    def train_until(target: int) -> None:
        """Continue the run to `target` steps, resuming from its last checkpoint (exact resume)."""
        nonlocal last
        resume = read_meta_checkpoint(last) if last is not None else None
        done = resume.total_step + 1 if resume is not None else 0
        last = meta_train(cfg, run_dir, loss, resume=resume, max_steps=target - done, seed=seed, device=device)

    done, seconds = time_boxed_fit(train_until, steps, max_seconds)
    return last, done, seconds


def reenact(checkpoint: Path, sample: Path, out: Path) -> list[Path]:
    """fsth.infer on the sample: source.png embedded, driving/ rendered; frames + result.mp4."""
    model = Reenactor(checkpoint, device="cpu")
    e = model.embed([sample / "source.png"])
    frames, _, _ = driving_frames(sample / "driving")
    if (out / "frames").exists():
        shutil.rmtree(out / "frames")
    written = write_frames(out / "frames", model.render(e, frames))
    write_video(out / "result.mp4", (read_image(p) for p in written), fps=sample_fps(sample))
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsth.sample_demo", description=__doc__.split("\n")[0])
    add_demo_arguments(
        parser, steps=60, max_seconds=50.0, checkpoint_help="a meta-training save_<step>.pkl (no official one exists)"
    )
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    start_demo(args)
    if args.checkpoint is not None:
        require_file(args.checkpoint, "checkpoint file", WHERE)
        label = CHECKPOINT_LABEL.format(checkpoint=args.checkpoint)
        written = reenact(args.checkpoint, args.sample, args.out)
    else:
        # meta_train's own default device (this process's GPU, else the CPU); inference runs on the CPU
        device = resolve_device(None)
        with tempfile.TemporaryDirectory(prefix="fsth_sample_demo_") as work:
            ckpt, steps, seconds = quick_fit(args.sample, Path(work), args.steps, args.max_seconds, args.seed, device)
            where = "this machine's CPU" if device.type == "cpu" else f"GPU {device}"
            label = QUICK_LABEL.format(size=QUICK_SIZE, steps=steps, seconds=seconds, where=where)
            written = reenact(ckpt, args.sample, args.out)
    write_readme(
        args.out, label, args.sample, f"{len(written)} frames -> {args.out / 'frames'}, {args.out / 'result.mp4'}"
    )


if __name__ == "__main__":
    main()
