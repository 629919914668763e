"""VPGC reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m vpgc.sample_demo --sample DIR --out OUT [--steps N] [--max_seconds S] [--seed N]
    python -m vpgc.sample_demo --sample DIR --out OUT --checkpoint STAGE1.ckpt --encoder_path Enc.ckpt
                               --implicit_path Imp.ckpt --data_root SUBJECT

VPGC models one person. The sample's driving clip plays the subject's video: its last sixth (a
multiple of 4 frames, at least 4: frames 40-47 of the default 48) is held out, the rest trains.
Two reenactments are written:

* `self/`: the subject's whole clip rendered from its own landmarks; the held-out frames were never
  seen in training, so they are a self-reenactment scored against their ground truth (PSNR in
  README.txt, beside the baseline that returns the first frame unchanged);
* `cross/`: the subject driven by the second identity's clip (DIR/driving_2), its landmarks
  retargeted onto the subject's face (`vpgc.retarget`, as `vpgc.demo --retarget`).

Without --checkpoint: a QUICK FIT, not an official model: stage 1 (`vpgc.codebook.train`) and
stage 2 (`vpgc.reenact.train`) trained from scratch on the training frames at 64 x 64 with
narrow networks, each for --steps iterations or about --max_seconds / 2. With the official files
(stage 1 `N-Step-Checkpoint_*.ckpt`, stage 2 `Enc_*.ckpt` and `Imp_*.ckpt` of one subject, and
that subject's dataset folder for its landmarks): that subject at 512 x 512, driven by both of the
sample's clips retargeted onto its face.

Each of `self/` and `cross/` holds `frames/NNNNN.png` (the results alone, lossless) and
`result.mp4` ([driving | landmark map | result] per frame); OUT/README.txt says what produced them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common.errors import InputError, cli_main
from common.image import read_image, write_image
from common.progress import get_logger
from common.sample import SampleFrame, require, sample_fps, second_identity_frames
from common.sample_demo import add_demo_arguments, start_demo, time_boxed_fit, write_readme
from common.video import write_video
from vpgc import data
from vpgc.codebook import train as codebook_train
from vpgc.config import load_config
from vpgc.reenact import train as reenact_train
from vpgc.reenactment import Reenactor, draw_maps, driving_landmarks

log = get_logger("vpgc.sample_demo")

GROUP = data.GROUP
QUICK_SIZE = 64
PANEL = 256  # side of each panel of result.mp4
# The official config with a narrow autoencoder at 64 px (2 downsamplings keep the 16x16 latent the
# grid codebook needs); no perceptual loss (the LPIPS VGG16 weights are not shipped offline) and no
# GAN within a quick fit (disc_start beyond it); a larger learning rate for a fit of a minute.
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

QUICK_LABEL = (
    "QUICK FIT on the sample, NOT an official model: VPGC stage 1 (narrow autoencoder, {size} px, "
    "L1 + codebook loss, frozen random grid codebook) for {steps1} steps ({seconds1:.0f} s) and stage 2 "
    "(narrow landmark encoder + PriorTrans) for {steps2} steps ({seconds2:.0f} s), trained from scratch "
    "with vpgc.codebook.train and vpgc.reenact.train on the sample's driving frames 0-{last}; "
    "expect a blurred likeness of the subject, not the paper's quality."
)
OFFICIAL_LABEL = "OFFICIAL MODEL: {checkpoint} with {encoder} and {implicit}"


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
    parser.add_argument("--config", default="obama_sliding_4", help="stage-1 config of --checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    official = (args.encoder_path, args.implicit_path, args.data_root)
    if args.checkpoint is None and any(v is not None for v in official):
        parser.error("--encoder_path, --implicit_path and --data_root go with --checkpoint")
    if args.checkpoint is not None and any(v is None for v in official):
        parser.error("--checkpoint needs --encoder_path, --implicit_path and --data_root")
    return args


def clip_landmarks(frames: list[SampleFrame], sample: Path) -> np.ndarray:
    return np.stack([np.load(require(f.landmarks, sample)) for f in frames]).astype(np.float64)


def training_frames(count: int) -> int:
    """How many of a clip's `count` frames train: all but the last sixth, held out in whole groups of 4."""
    held_out = max(GROUP, count // 6 // GROUP * GROUP)
    if count - held_out < GROUP:
        raise InputError(f"the sample's driving clip has {count} frames; VPGC's demo needs at least {GROUP + held_out}")
    return count - held_out


def write_subject(root: Path, frames: list[SampleFrame], landmarks: np.ndarray, size: int) -> None:
    """The clip in the original's dataset layout at `size` px: the training frames, then the held-out test."""
    side = read_image(frames[0].image).shape[:2]
    train = training_frames(len(frames))
    for index, (frame, points) in enumerate(zip(frames, landmarks)):
        split = "train" if index < train else "test"
        write_image(root / "images" / split / f"{index:05d}.png", read_image(frame.image, size))
        path = root / "ldmks" / split / f"{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, data.rescale_points(points, side, size), fmt="%.4f")


def quick_fit(args: argparse.Namespace, work: Path, subject: Path, train_frames: int) -> tuple[Reenactor, str]:
    """Stage 1 then stage 2 on `subject`, each time-boxed; the Reenactor of the result and its label."""
    config = load_config("obama_sliding_4", QUICK_CONFIG)
    config_file = work / "quick.yaml"
    import yaml

    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    stage1 = work / "stage1"
    budget = args.max_seconds / 2

    def stage1_until(step: int) -> None:
        resume = stage1 if (stage1 / "checkpoints" / "last.ckpt").is_file() else None
        codebook_train.train(
            config,
            subject,
            stage1,
            resume=resume,
            seed=args.seed,
            max_steps=step,
            device=args.device,
            show_progress=False,
            log_every=10,
            image_every=10**9,
        )

    steps1, seconds1 = time_boxed_fit(stage1_until, args.steps, budget)
    stage1_ckpt = stage1 / "checkpoints" / "last.ckpt"

    def stage2_until(step: int) -> None:
        opt = reenact_train.parse_args(
            [
                "--data_root",
                str(subject),
                "-m",
                "quick",
                "-o",
                str(work / "stage2"),
                "--load_path",
                str(stage1_ckpt),
                "--model_base",
                str(config_file),
                "--landmark_ch",
                str(QUICK_LANDMARK_CH),
                "--landmark_ch_mult",
                ",".join(map(str, QUICK_LANDMARK_CH_MULT)),
                "--seed",
                str(args.seed),
                "--max_steps",
                str(step),
                "--num_workers",
                "0",
                "--print_freq",
                "10",
                "--vis_freq",
                str(10**9),
                "--save_epoch_freq",
                str(10**9),
                "--resume",
                "true" if step > min(args.steps, 10) else "false",
                "--device",
                args.device,
            ]
        )
        reenact_train.train(opt, device=args.device, show_progress=False)

    steps2, seconds2 = time_boxed_fit(stage2_until, args.steps, args.max_seconds - seconds1)
    checkpoints = work / "stage2" / "logs" / "quick" / "checkpoints"
    encoder_path, implicit_path = (max(checkpoints.glob(f"{kind}_*.ckpt")) for kind in ("Enc", "Imp"))
    reenactor = Reenactor.from_checkpoints(
        stage1_ckpt,
        encoder_path,
        implicit_path,
        config=config_file,
        device=args.device,
        landmark_ch=QUICK_LANDMARK_CH,
        landmark_ch_mult=QUICK_LANDMARK_CH_MULT,
    )
    label = QUICK_LABEL.format(
        size=QUICK_SIZE, steps1=steps1, seconds1=seconds1, steps2=steps2, seconds2=seconds2, last=train_frames - 1
    )
    return reenactor, label


def panels(driving: Path, landmark_map: np.ndarray, result: np.ndarray) -> np.ndarray:
    """[driving | landmark map | result], each PANEL px (the map and result upscaled, nearest)."""
    import cv2

    def scaled(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)

    return np.concatenate(
        [read_image(driving, PANEL), scaled(np.repeat(landmark_map[..., None], 3, 2)), scaled(result)], 1
    )


def reenact(
    reenactor: Reenactor, frames: list[SampleFrame], landmarks: np.ndarray, out: Path, fps: float
) -> np.ndarray:
    """Render `landmarks` [N, 68, 2] (already in the model's pixel frame) into out/frames and out/result.mp4."""
    maps = draw_maps(landmarks, reenactor.resolution)
    results = reenactor.frames(maps)
    for index, image in enumerate(results):
        write_image(out / "frames" / f"{index:05d}.png", image)
    write_video(out / "result.mp4", (panels(f.image, m, r) for f, m, r in zip(frames, maps, results)), fps=fps)
    return results


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse > 0 else float("inf")


def held_out_scores(results: np.ndarray, frames: list[SampleFrame]) -> str:
    """PSNR of the held-out frames against their ground truth, and of the first frame returned unchanged."""
    size, train = results.shape[1], training_frames(len(frames))
    truth = [read_image(f.image, size) for f in frames[train:]]
    ours = np.mean([psnr(r, t) for r, t in zip(results[train:], truth)])
    still = read_image(frames[0].image, size)
    baseline = np.mean([psnr(still, t) for t in truth])
    return (
        f"held-out frames {train}-{len(frames) - 1}: PSNR {ours:.2f} dB "
        f"(first frame returned unchanged: {baseline:.2f} dB)"
    )


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    frames = start_demo(args)[1:]  # the driving clip; the still source.png is not a video frame
    train_frames = training_frames(len(frames))
    second = second_identity_frames(args.sample)
    landmarks, second_landmarks = clip_landmarks(frames, args.sample), clip_landmarks(second, args.sample)
    side = read_image(frames[0].image).shape[:2]
    fps = sample_fps(args.sample)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vpgc_demo_") as tmp:
        work = Path(tmp)
        if args.checkpoint is None:
            subject_root = work / "subject"
            write_subject(subject_root, frames, landmarks, QUICK_SIZE)
            reenactor, label = quick_fit(args, work, subject_root, train_frames)
            subject = np.stack([data.read_landmarks(p) for p in data.list_landmarks(subject_root, "train")])
            own = data.rescale_points(landmarks, side, QUICK_SIZE)
        else:
            reenactor = Reenactor.from_checkpoints(
                args.checkpoint, args.encoder_path, args.implicit_path, config=args.config, device=args.device
            )
            label = OFFICIAL_LABEL.format(
                checkpoint=args.checkpoint, encoder=args.encoder_path, implicit=args.implicit_path
            )
            subject = np.stack([data.read_landmarks(p) for p in data.list_landmarks(args.data_root, "train")])
            own = driving_landmarks(data.rescale_points(landmarks, side, reenactor.resolution), subject)
        log.info("rendering the self-reenactment and the cross-identity drive")
        results = reenact(reenactor, frames, own, args.out / "self", fps)
        driver = data.rescale_points(second_landmarks, side, reenactor.resolution)
        reenact(reenactor, second, driving_landmarks(driver, subject), args.out / "cross", fps)
    scores = held_out_scores(results, frames) if args.checkpoint is None else "(another subject: no ground truth)"
    write_readme(
        args.out,
        label,
        args.sample,
        f"self/: the clip rendered from its own landmarks; {scores}\n"
        f"cross/: driven by {args.sample / 'driving_2'} (retargeted onto the subject's face)\n"
        f"frames/NNNNN.png: results alone ({reenactor.resolution} px); result.mp4: [driving | landmark map | result]\n"
        f"{time.perf_counter() - start:.0f} s on this machine",
    )
    return 0


if __name__ == "__main__":
    main()
