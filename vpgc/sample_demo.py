"""VPGC reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m vpgc.sample_demo --sample DIR --out OUT
    python -m vpgc.sample_demo --sample DIR --out OUT --checkpoint STAGE1.ckpt --encoder_path Enc.ckpt
                               --implicit_path Imp.ckpt --data_root SUBJECT
    python -m vpgc.sample_demo --sample DIR --out OUT --quick_fit [--steps N] [--max_seconds S]

VPGC models one person: the sample's driving clip plays the subject's video (the astronaut).
The model, first match wins: the official files named on the command line; the official files
under checkpoints/vpgc/ when --data_root names their subject's dataset folder; the DEMO MODEL
in vpgc/demo_model/ (trained on the sample's training frames by `python -m vpgc.demo_model`,
recipe vpgc/runs/sample.yaml); else (or with --quick_fit) a QUICK FIT of both stages on the
training frames, time-boxed, a blurred likeness only. Nothing is trained by default.

Written: `self/frames/NNNNN.png`, the subject rendered from each driving frame's landmarks (its
own: a self-reenactment; the held-out frames were never trained on, README.txt scores them against
the baseline that returns source.png unchanged); `cross/frames/NNNNN.png`, the subject driven by
the second identity's clip (DIR/driving_2) retargeted onto its face (`vpgc.retarget`); a
`result.mp4` ([driving | landmark map | result]) in each; OUT/run.json and OUT/README.txt.
With an official model both parts are retargeted onto its subject (no ground truth).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common.errors import cli_main
from common.image import read_image, write_image
from common.progress import get_logger
from common.sample import (
    SampleFrame,
    require,
    sample_fps,
    second_identity_frames,
    training_count,
)
from common.sample_demo import (
    add_demo_arguments,
    pick_model,
    start_demo,
    time_boxed_fit,
    write_readme,
    write_run_info,
)
from common.video import write_video
from vpgc import data
from vpgc.demo_model import DEMO_DIR, demo_files, load_demo_model, write_subject
from vpgc.reenactment import Reenactor, draw_maps, driving_landmarks

log = get_logger("vpgc.sample_demo")

PACKAGE = Path(__file__).resolve().parent
OFFICIAL_DIR = PACKAGE.parent / "checkpoints" / "vpgc"
OFFICIAL_FILES = ["N-Step-Checkpoint_19_120000.ckpt", "Enc_00161851.ckpt", "Imp_00161851.ckpt"]
QUICK_SIZE = 64
PANEL = 256  # side of each panel of result.mp4
# The official config with a narrow autoencoder at 64 px (two downsamplings keep the 16 x 16 latent
# of the grid codebook); no perceptual loss (the LPIPS VGG16 weights are not shipped) and no GAN.
QUICK_CONFIG = [
    f"model.params.ddconfig.resolution={QUICK_SIZE}",
    "model.params.ddconfig.ch=32",
    "model.params.ddconfig.ch_mult=[1,2,2]",
    "model.params.ddconfig.num_res_blocks=1",
    "model.params.lossconfig.params.perceptual_weight=0",
    "model.params.lossconfig.params.disc_start=100000",
    "model.base_learning_rate=0.0005",
    "data.params.num_workers=0",
]
QUICK_LANDMARK_CH, QUICK_LANDMARK_CH_MULT = 32, (1, 2, 2)

DEMO_LABEL = "DEMO MODEL trained on the sample by `make demo-models` (recipe vpgc/runs/sample.yaml): {files}"
OFFICIAL_LABEL = "OFFICIAL MODEL: {checkpoint} with {encoder} and {implicit}"
QUICK_LABEL = (
    "QUICK FIT on the sample, NOT an official model: VPGC stage 1 (narrow autoencoder, {size} px) for "
    "{steps1} steps ({seconds1:.0f} s) and stage 2 for {steps2} steps ({seconds2:.0f} s), trained from "
    "scratch with vpgc.codebook.train and vpgc.reenact.train on the sample's driving frames 0-{last}; "
    "expect a blurred likeness of the subject."
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vpgc.sample_demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(parser, steps=2000, max_seconds=120, checkpoint_help="official stage-1 checkpoint")
    parser.add_argument("--encoder_path", type=Path, help="official stage-2 Enc_*.ckpt (with --checkpoint)")
    parser.add_argument("--implicit_path", type=Path, help="official stage-2 Imp_*.ckpt (with --checkpoint)")
    parser.add_argument("--data_root", type=Path, help="the official subject's dataset folder (its ldmks/train)")
    parser.add_argument("--config", default="obama_sliding_4", help="stage-1 config of the official checkpoint")
    parser.add_argument("--quick_fit", action="store_true", help="train a quick fit even when a model is present")
    parser.add_argument("--demo_model", type=Path, default=DEMO_DIR, help=f"demo-model folder (default: {DEMO_DIR})")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    files = (args.encoder_path, args.implicit_path, args.data_root)
    if args.checkpoint is None and any(v is not None for v in files[:2]):
        parser.error("--encoder_path and --implicit_path go with --checkpoint")
    if args.checkpoint is not None and any(v is None for v in files):
        parser.error("--checkpoint needs --encoder_path, --implicit_path and --data_root")
    return args


def clip_landmarks(frames: list[SampleFrame], sample: Path, side: tuple[int, int], size: int) -> np.ndarray:
    """The frames' 68 landmarks [N, 68, 2] rescaled from the sample's `side` to `size` px."""
    points = np.stack([np.load(require(f.landmarks, sample)) for f in frames]).astype(np.float64)
    return data.rescale_points(points, side, size)


def quick_fit(args: argparse.Namespace, work: Path) -> tuple[Reenactor, str]:
    """Stage 1 then stage 2 on the training frames, each time-boxed; the Reenactor and its label."""
    import yaml

    from vpgc.codebook import train as codebook_train
    from vpgc.config import load_config
    from vpgc.reenact import train as reenact_train

    subject = write_subject(args.sample, work / "subject", QUICK_SIZE)
    config = load_config("obama_sliding_4", QUICK_CONFIG)
    config_file = work / "quick.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    stage1, stage2 = work / "stage1", work / "stage2"

    def stage1_until(step: int) -> None:
        resume = stage1 if (stage1 / "checkpoints" / "last.ckpt").is_file() else None
        codebook_train.train(
            config, subject, stage1, resume=resume, seed=args.seed, max_steps=step, device=args.device,
            show_progress=False, log_every=10, image_every=10**9,
        )  # fmt: skip

    steps1, seconds1 = time_boxed_fit(stage1_until, args.steps, args.max_seconds / 2)
    stage1_ckpt = stage1 / "checkpoints" / "last.ckpt"

    def stage2_until(step: int) -> None:
        opt = reenact_train.parse_args(
            [
                "--data_root", str(subject), "-m", "quick", "-o", str(stage2), "--load_path", str(stage1_ckpt),
                "--model_base", str(config_file), "--landmark_ch", str(QUICK_LANDMARK_CH),
                "--landmark_ch_mult", ",".join(map(str, QUICK_LANDMARK_CH_MULT)), "--seed", str(args.seed),
                "--max_steps", str(step), "--num_workers", "0", "--print_freq", "10", "--vis_freq", str(10**9),
                "--save_epoch_freq", str(10**9), "--resume", "true" if step > min(args.steps, 10) else "false",
                "--device", args.device,
            ]
        )  # fmt: skip
        reenact_train.train(opt, device=args.device, show_progress=False)

    steps2, seconds2 = time_boxed_fit(stage2_until, args.steps, args.max_seconds - seconds1)
    checkpoints = stage2 / "logs" / "quick" / "checkpoints"
    encoder_path, implicit_path = (
        max(checkpoints.glob(f"{kind}_*.ckpt"), key=lambda p: int(p.stem.split("_")[1])) for kind in ("Enc", "Imp")
    )
    reenactor = Reenactor.from_checkpoints(
        stage1_ckpt, encoder_path, implicit_path, config=config_file, device=args.device,
        landmark_ch=QUICK_LANDMARK_CH, landmark_ch_mult=QUICK_LANDMARK_CH_MULT,
    )  # fmt: skip
    clip = len(list((args.sample / "driving").glob("*.png")))
    label = QUICK_LABEL.format(
        size=QUICK_SIZE, steps1=steps1, seconds1=seconds1, steps2=steps2, seconds2=seconds2,
        last=training_count(clip) - 1,
    )  # fmt: skip
    return reenactor, label


def choose_model(args: argparse.Namespace) -> tuple[str, list[Path]]:
    """("official" | "demo model" | "quick fit", the files) by the rule of the module docstring."""
    if args.checkpoint is not None:
        return "official", [args.checkpoint, args.encoder_path, args.implicit_path]
    if not args.quick_fit:
        official = [OFFICIAL_DIR / name for name in OFFICIAL_FILES] if args.data_root is not None else []
        picked = pick_model(official=official, demo=demo_files(args.demo_model))
        if picked is not None:
            files, kind = picked
            return kind, files
        log.info(f"no demo model in {args.demo_model} (python -m vpgc.demo_model): running a quick fit")
    return "quick fit", []


def panels(driving: Path, landmark_map: np.ndarray, result: np.ndarray) -> np.ndarray:
    """[driving | landmark map | result], each PANEL px (the map and result upscaled, nearest)."""
    import cv2

    def scaled(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)

    return np.concatenate(
        [read_image(driving, PANEL), scaled(np.repeat(landmark_map[..., None], 3, 2)), scaled(result)], 1
    )


def reenact(reenactor: Reenactor, frames: list[SampleFrame], landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(landmark maps, rendered frames) for `landmarks` [N, 68, 2] in the model's pixel frame."""
    maps = draw_maps(landmarks, reenactor.resolution)
    return maps, reenactor.frames(maps)


def write_part(out: Path, frames: list[SampleFrame], maps: np.ndarray, results: np.ndarray, fps: float) -> None:
    """out/frames/<driving stem>.png and out/result.mp4."""
    for frame, image in zip(frames, results):
        write_image(out / "frames" / f"{frame.image.stem}.png", image)
    write_video(out / "result.mp4", (panels(f.image, m, r) for f, m, r in zip(frames, maps, results)), fps=fps)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse > 0 else float("inf")


def held_out_scores(results: np.ndarray, frames: list[SampleFrame], source: Path) -> str:
    """PSNR of the held-out frames against their ground truth, beside source.png returned unchanged."""
    size, train = results.shape[1], training_count(len(frames))
    truth = [read_image(f.image, size) for f in frames[train:]]
    ours = np.mean([psnr(r, t) for r, t in zip(results[train:], truth)])
    still = read_image(source, size)
    baseline = np.mean([psnr(still, t) for t in truth])
    return (
        f"held-out frames {train}-{len(frames) - 1}: PSNR {ours:.2f} dB "
        f"(source.png returned unchanged: {baseline:.2f} dB)"
    )


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    source, *frames = start_demo(args)
    second = second_identity_frames(args.sample)
    side = read_image(frames[0].image).shape[:2]
    kind, files = choose_model(args)
    with tempfile.TemporaryDirectory(prefix="vpgc_demo_") as work:
        if kind == "quick fit":
            reenactor, label = quick_fit(args, Path(work))
        elif kind == "demo model":
            reenactor = load_demo_model(files[0].parent, device=args.device)
            label = DEMO_LABEL.format(files=", ".join(str(f) for f in files))
        else:
            reenactor = Reenactor.from_checkpoints(*files, config=args.config, device=args.device)
            label = OFFICIAL_LABEL.format(checkpoint=files[0], encoder=files[1], implicit=files[2])
    size = reenactor.resolution
    own = clip_landmarks(frames, args.sample, side, size)
    if kind == "official":  # another person: every drive is retargeted onto its own training landmarks
        subject = np.stack([data.read_landmarks(p) for p in data.list_landmarks(args.data_root, "train")])
        self_landmarks, identity = driving_landmarks(own, subject), data.list_frames(args.data_root, "train", 1)[0]
    else:  # the sample's subject: its own landmarks, and its training frames as the face to retarget onto
        subject = own[: training_count(len(frames))]
        self_landmarks, identity = own, source.image
    cross_landmarks = driving_landmarks(clip_landmarks(second, args.sample, side, size), subject)
    log.info("rendering the self-reenactment and the cross-identity drive")
    start = time.perf_counter()
    self_maps, self_results = reenact(reenactor, frames, self_landmarks)
    cross_maps, cross_results = reenact(reenactor, second, cross_landmarks)
    seconds_per_frame = (time.perf_counter() - start) / (len(frames) + len(second))
    fps = sample_fps(args.sample)
    write_part(args.out / "self", frames, self_maps, self_results, fps)
    write_part(args.out / "cross", second, cross_maps, cross_results, fps)
    parts = {
        "self": {"frames": "self/frames", "source": identity, "driving": args.sample / "driving", "identity": identity},
        "cross": {
            "frames": "cross/frames",
            "source": identity,
            "driving": args.sample / "driving_2",
            "identity": identity,
        },
    }
    write_run_info(args.out, "vpgc", kind, ", ".join(str(f) for f in files), size, parts, seconds_per_frame)
    if kind == "official":
        scores = "(the official model's subject is another person: no ground truth)"
    else:
        scores = held_out_scores(self_results, frames, source.image)
    write_readme(
        args.out,
        label,
        args.sample,
        f"self/: the subject rendered from the driving clip's landmarks; {scores}\n"
        f"cross/: the subject driven by {args.sample / 'driving_2'} (retargeted onto its face)\n"
        f"frames/NNNNN.png: results alone ({size} px); result.mp4: [driving | landmark map | result]\n"
        f"rendering: {seconds_per_frame:.3f} s per frame",
    )
    return 0


if __name__ == "__main__":
    main()
