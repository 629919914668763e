"""FSTH reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m fsth.sample_demo --sample DIR --out OUT [--checkpoint save_N.pkl] [--quick_fit]

Feed-forward FSTH (no fine-tuning): E embeds one source frame, G renders every driving frame's
landmark image in that identity. Self-reenactment: DIR/source.png driven by DIR/driving/ ->
OUT/self/frames/; cross-identity: DIR/source_2.png driven by the same frames -> OUT/cross/frames/.

The model: --checkpoint (a meta-training save_<step>.pkl), else CHECKPOINT under checkpoints/fsth/
when present (no official weights exist; a meta-trained model can be put there), else the DEMO
MODEL fsth/demo_model/model.pkl trained on the sample by `python -m fsth.demo_model`. A QUICK FIT
(the demo model's recipe run in-process for --steps or about --max_seconds) is used only with
--quick_fit or when no demo model exists. Also writes OUT/<part>/result.mp4, OUT/run.json and
OUT/README.txt (what produced the frames).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common.checkpoint import require_file
from common.distributed import resolve_device
from common.errors import cli_main
from common.image import list_images, read_image, write_image
from common.sample import require, sample_fps
from common.sample_demo import add_demo_arguments, pick_model, start_demo, time_boxed_fit, write_readme, write_run_info
from common.video import write_video
from fsth.checkpoint import WHERE, read_meta_checkpoint
from fsth.config import load_config
from fsth.demo_model import DEMO_DIR, MODEL_FILE, RECIPE, write_training_set
from fsth.infer import Reenactor
from fsth.loss import Loss_EG_meta
from fsth.meta_train import meta_train

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "checkpoints" / "fsth" / "model.pkl"

DEMO_LABEL = (
    "DEMO MODEL trained on the sample by `make demo-models` (recipe fsth/runs/sample.yaml): FSTH "
    "meta-trained from scratch on the training frames of the sample's two identities ({steps} steps, "
    "{size} px, narrow networks, an L1 pixel term instead of the VGG perceptual terms), run feed-forward. "
    "Not an official model (none was ever published)."
)
QUICK_LABEL = (
    "QUICK FIT on the sample, NOT the official model: the demo model's recipe (fsth/runs/sample.yaml, "
    "{size} px, narrow) meta-trained from scratch for only {steps} steps ({seconds:.0f} s on {where}) "
    "on the sample's training frames, then run feed-forward. The perceptual (VGG19/VGGFace) loss terms "
    "were disabled (weight 0), so no VGG weights were loaded; an L1 pixel term stands in for them. Expect "
    "blurry, low-quality output."
)
CHECKPOINT_LABEL = "FSTH reenactment with checkpoint {checkpoint} (feed-forward, no fine-tuning)."


def quick_fit(
    sample: Path, work: Path, steps: int, max_seconds: float, seed: int = 0, device=None
) -> tuple[Path, int, float]:
    """Meta-train the recipe on the sample's training frames, time-boxed; (checkpoint, steps, seconds)."""
    cfg = load_config(RECIPE, train_dataset=str(write_training_set(sample, work / "data")))
    loss = Loss_EG_meta.from_config(cfg)  # VGG terms of weight 0: no weight file is read
    run_dir, last = work / "run", None

    def train_until(target: int) -> None:
        """Continue the run to `target` steps, resuming from its last checkpoint (exact resume)."""
        nonlocal last
        resume = read_meta_checkpoint(last) if last is not None else None
        done = resume.total_step + 1 if resume is not None else 0
        last = meta_train(cfg, run_dir, loss, resume=resume, max_steps=target - done, seed=seed, device=device)

    done, seconds = time_boxed_fit(train_until, steps, max_seconds)
    return last, done, seconds


def render_part(model: Reenactor, source: Path, driving: Path, out: Path, fps: float) -> tuple[int, float]:
    """`source` driven by the frames of `driving` -> out/frames/<stem>.png and out/result.mp4;
    returns (frames, seconds spent embedding and rendering)."""
    paths = list_images(driving)
    start = time.perf_counter()
    e = model.embed([source])
    rendered = list(model.render(e, ((read_image(p), p, str(p)) for p in paths)))
    seconds = time.perf_counter() - start
    if (out / "frames").exists():
        shutil.rmtree(out / "frames")
    for path, image in zip(paths, rendered):
        write_image(out / "frames" / f"{path.stem}.png", image)
    write_video(out / "result.mp4", rendered, fps=fps)
    return len(rendered), seconds


def reenact(checkpoint: Path, sample: Path, out: Path) -> tuple[dict, int, float]:
    """Self and cross parts with `checkpoint`; (parts for run.json, size, seconds per frame)."""
    model = Reenactor(checkpoint, device="cpu")
    driving = sample / "driving"
    sources = {"self": sample / "source.png", "cross": require(sample / "source_2.png", sample)}
    parts, count, seconds = {}, 0, 0.0
    for name, source in sources.items():
        frames, spent = render_part(model, source, driving, out / name, sample_fps(sample))
        count, seconds = count + frames, seconds + spent
        parts[name] = {"frames": f"{name}/frames", "source": source, "driving": driving, "identity": source}
    return parts, model.size, seconds / count


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsth.sample_demo", description=__doc__.split("\n")[0])
    add_demo_arguments(
        parser, steps=60, max_seconds=50.0, checkpoint_help="a meta-training save_<step>.pkl (no official one exists)"
    )
    parser.add_argument("--quick_fit", action="store_true", help="train a quick fit even if the demo model exists")
    return parser.parse_args(argv)


def _outputs(out: Path) -> str:
    return ", ".join(f"{out / part / 'frames'}, {out / part / 'result.mp4'}" for part in ("self", "cross"))


def _chosen_label(checkpoint: Path, kind: str) -> str:
    if kind == "demo model":
        ckpt = read_meta_checkpoint(checkpoint)
        return DEMO_LABEL.format(steps=ckpt.total_step + 1, size=ckpt.config["input_size"])
    return CHECKPOINT_LABEL.format(checkpoint=checkpoint)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    start_demo(args)
    if args.checkpoint is not None:
        picked = [require_file(args.checkpoint, "checkpoint file", WHERE)], "official"
    else:
        picked = None if args.quick_fit else pick_model([CHECKPOINT], [DEMO_DIR / MODEL_FILE])
    if picked is not None:
        (checkpoint,), kind = picked
        label = _chosen_label(checkpoint, kind)
        parts, size, seconds_per_frame = reenact(checkpoint, args.sample, args.out)
    else:
        # meta_train's own default device (this process's GPU, else the CPU); inference runs on the CPU
        device = resolve_device(None)
        with tempfile.TemporaryDirectory(prefix="fsth_sample_demo_") as work:
            fitted, steps, seconds = quick_fit(args.sample, Path(work), args.steps, args.max_seconds, args.seed, device)
            where = "this machine's CPU" if device.type == "cpu" else f"GPU {device}"
            parts, size, seconds_per_frame = reenact(fitted, args.sample, args.out)
        label = QUICK_LABEL.format(size=size, steps=steps, seconds=seconds, where=where)
        kind, checkpoint = "quick fit", "none (trained in a temporary folder, not kept)"
    write_run_info(args.out, "fsth", kind, str(checkpoint), size, parts, seconds_per_frame)
    write_readme(args.out, label, args.sample, _outputs(args.out))


if __name__ == "__main__":
    main()
