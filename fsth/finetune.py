"""Fine-tuning of G and D on a few frames of each test person, as the original `finetune.py`.

    python -m fsth.finetune save_N.pkl [--subject DIR ...] [--test_dataset DIR] [--config my.yaml] [--device cpu]

People are the folders of `test_dataset` (or the `--subject` folders), laid out
`<person>/<video>/<clip>/<frame>` as the VoxCeleb1 frame tree (frames directly in `<video>/` are
read too). For each person: finetune_T frames of one random video, a driving frame of another
random person, E's mean embedding initialises G's AdaIN parameters and D's w = w0 + e_mean, then
finetune_epoch epochs of the meta-training iteration without the matching loss.

Writes `<output_dir>/<YYYYmmdd_HHMM>_finetune/`: config.yaml, log.txt (one CSV line per
iteration, LOG_COLUMNS), losses.png, and per person i `t_<i>.jpg` (the training frames side by
side) and `o_<i>.jpg` = [output before | output after fine-tuning | driving frame | its landmarks].
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from common.checkpoint import load_strict
from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.image import image_to_tensor, list_images, read_image, tensor_to_image, write_image
from common.landmarks import LandmarkDetector, load_landmarks
from common.progress import get_logger, progress
from fsth.checkpoint import MetaCheckpoint, read_meta_checkpoint, to_finetune_state
from fsth.config import load_config, write_config
from fsth.dataset import find_landmarks, landmark_image
from fsth.loss import Loss_DSC, Loss_EG_finetune
from fsth.network import Embedder, FinetuneDiscriminator, FinetuneGenerator

LOG_COLUMNS = (
    "person",
    "epoch",
    "step",
    "L_VGG19",
    "L_VGGFace",
    "L_CNT",
    "L_ADV",
    "L_FM",
    "L_EG",
    "L_DSC1",
    "L_DSC2",
    "D_SCORE",
    "D_SCORE_HAT",
)
log = get_logger("fsth.finetune")


def video_frames(video: Path) -> list[Path]:
    """Frames of a video folder: those of its clip sub-folders (the original's layout), else its own."""
    frames = [f for clip in sorted(video.iterdir()) if clip.is_dir() for f in list_images(clip)]
    return frames or list_images(video)


def _videos(person: Path) -> list[Path]:
    videos = sorted(v for v in person.iterdir() if v.is_dir() and video_frames(v))
    if not videos:
        raise InputError(f"{person}: no <video> folders with frames")
    return videos


def sample_frames(person: Path, count: int, rng: random.Random) -> list[Path]:
    """`count` distinct frames of one random video of `person`."""
    video = rng.choice(_videos(person))
    frames = video_frames(video)
    if len(frames) < count:
        raise InputError(f"{video}: {len(frames)} frames, fine-tuning needs finetune_T = {count}")
    return rng.sample(frames, count)


@dataclass
class FramePair:
    """An image and its landmark image, (3, S, S) tensors at input_size."""

    x: torch.Tensor
    y: torch.Tensor


class FrameLoader:
    """Frames resized to input_size with their landmark images. Landmarks come from a `.npy`
    found by `fsth.dataset.find_landmarks` (frame pixels), else the detector runs on the
    resized frame as the original did."""

    def __init__(self, size: int, normalize: bool, backend: str = "dlib"):
        self.size, self.backend = size, backend
        self.value_range = (0.0, 1.0) if normalize else (0.0, 255.0)
        self._detector = None

    def __call__(self, path: Path) -> FramePair:
        full = read_image(path)
        image = read_image(path, self.size)
        npy = find_landmarks(path)
        if npy is not None:
            height, width = full.shape[:2]
            landmarks = load_landmarks(npy) * np.array([self.size / width, self.size / height], dtype=np.float32)
        else:
            if self._detector is None:
                self._detector = LandmarkDetector(self.backend, flip_input=True)
            landmarks = self._detector.detect(image, name=str(path))
        return FramePair(
            image_to_tensor(image, self.value_range),
            landmark_image(landmarks, self.size, self.value_range == (0.0, 1.0)),
        )


def finetune_networks(
    ckpt: MetaCheckpoint, cfg: Mapping[str, Any], x: torch.Tensor, y: torch.Tensor
) -> tuple[FinetuneGenerator, FinetuneDiscriminator]:
    """G_ft and D_ft initialised from the checkpoint and the mean embedding of (x, y) by E in eval mode."""
    dim = cfg["embedding_dim"]
    E = Embedder(cfg["E_config"], dim)
    load_strict(E, ckpt.E, source=f"{ckpt.source} [E]")
    with torch.no_grad():
        e_mean = E.eval()(x, y).mean(dim=0, keepdim=True)
    G_state, D_state = to_finetune_state(ckpt.G, ckpt.D, e_mean)
    G = FinetuneGenerator(cfg["G_config"], cfg["input_normalize"], upsample_mode=cfg["upsample_mode"])
    D = FinetuneDiscriminator(cfg["V_config"], dim)
    load_strict(G, G_state, source=f"{ckpt.source} [G]")
    load_strict(D, D_state, source=f"{ckpt.source} [D]")
    return G, D


def finetune_step(G, D, L_EG, optim_G, optim_D, x, y) -> dict[str, float]:
    """One iteration, ordered as meta-training: combined backward of L_EG + L_D and both steps,
    then a D-only step on the detached fake."""
    optim_G.zero_grad(set_to_none=False)  # zeros as torch 1.x, see meta_train.train_step
    optim_D.zero_grad(set_to_none=False)
    x_hat = G(y)
    real, fake = D(x, y), D(x_hat, y)
    eg = L_EG(x, x_hat, real.features, fake.features, fake.score)
    l_d = Loss_DSC(fake.score, real.score)
    (eg.total + l_d).backward()
    optim_G.step()
    optim_D.step()

    optim_D.zero_grad(set_to_none=False)
    x_hat = x_hat.detach()
    real, fake = D(x, y), D(x_hat, y)
    l_d2 = Loss_DSC(fake.score, real.score)
    l_d2.backward()
    optim_D.step()
    values = (
        eg.vgg19,
        eg.vggface,
        eg.content,
        eg.adv,
        eg.fm,
        eg.total,
        l_d,
        l_d2,
        real.score.mean(),
        fake.score.mean(),
    )
    return dict(zip(LOG_COLUMNS[3:], (float(v.detach()) for v in values)))


def finetune(
    ckpt: MetaCheckpoint,
    cfg: Mapping[str, Any],
    people: Sequence[Path],
    run_dir: str | os.PathLike,
    drivers: Sequence[Path] | None = None,
    L_EG: Loss_EG_finetune | None = None,
    seed: int = 0,
    landmark_backend: str = "dlib",
    device=None,
) -> list[Path]:
    """Fine-tune on every person of `people` in turn; the driving frame comes from another person
    of `drivers` (default `people`). Returns the o_<i>.jpg paths.

    `L_EG` defaults to `Loss_EG_finetune.from_config(cfg)`; `seed` fixes frames, order and init.
    `device`: cpu, cuda, cuda:N or a torch.device (default: this process's GPU, else the CPU).
    """
    drivers = list(drivers or people)
    if not people:
        raise InputError("no people to fine-tune on")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    # every person's frames are drawn first, so a data problem shows before the VGG files load
    plans = []
    for person in people:
        others = [p for p in drivers if p.resolve() != person.resolve()]
        if not others:
            raise InputError(f"{person}: the driving frame must come from another person; give a second one")
        frames = sample_frames(person, cfg["finetune_T"], rng)
        driver = rng.choice(others)
        plans.append((person, frames, driver, sample_frames(driver, 1, rng)[0]))
    L_EG = (L_EG or Loss_EG_finetune.from_config(cfg)).to(device).eval()
    load = FrameLoader(cfg["input_size"], cfg["input_normalize"], landmark_backend)
    value_range = (0.0, 1.0) if cfg["input_normalize"] else (0.0, 255.0)
    betas = tuple(cfg["adam_betas"])
    log_file, written = run_dir / "log.txt", []
    for i, (person, frames, driver, target) in enumerate(progress(plans, desc="people")):
        target = load(target)
        pairs = [load(f) for f in frames]
        x, y = torch.stack([p.x for p in pairs]), torch.stack([p.y for p in pairs])
        x_t, y_t = target.x[None].to(device), target.y[None].to(device)

        G, D = finetune_networks(ckpt, cfg, x, y)
        G, D = G.to(device).eval(), D.to(device)
        with torch.no_grad():
            x_hat_0 = G(y_t)
        G.train()
        D.train()
        optim_G = torch.optim.Adam(G.parameters(), lr=cfg["lr_EG"], betas=betas)
        optim_D = torch.optim.Adam(D.parameters(), lr=cfg["lr_D"], betas=betas)
        loader = DataLoader(
            TensorDataset(x, y), batch_size=cfg["finetune_batch_size"], shuffle=cfg["dataset_shuffle"], drop_last=False
        )
        with open(log_file, "a") as f:
            for epoch in progress(range(cfg["finetune_epoch"]), desc=person.name, leave=False):
                for step, (xx, yy) in enumerate(loader):
                    values = finetune_step(G, D, L_EG, optim_G, optim_D, xx.to(device), yy.to(device))
                    f.write(f"{i}, {epoch}, {step}, " + ", ".join(f"{values[k]:.4f}" for k in LOG_COLUMNS[3:]) + "\n")
        with torch.no_grad():
            x_hat_1 = G(y_t)  # still in train mode, as the original
        write_image(run_dir / f"t_{i}.jpg", np.concatenate(tensor_to_image(x, value_range), axis=1))
        row = torch.cat((x_hat_0, x_hat_1, x_t, y_t))
        written.append(write_image(run_dir / f"o_{i}.jpg", np.concatenate(tensor_to_image(row, value_range), axis=1)))
        log.info(
            "%s: %d frames of %s, driven by %s -> %s",
            person.name,
            len(frames),
            frames[0].parent,
            driver.name,
            written[-1],
        )
    return written


def plot_losses(log_file: Path, out: Path) -> Path:
    """losses.png: L_EG and L_DSC2 per iteration, one curve per person."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.loadtxt(log_file, delimiter=",", ndmin=2)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("L_EG", "L_DSC2")):
        for person in np.unique(rows[:, 0]):
            values = rows[rows[:, 0] == person, LOG_COLUMNS.index(name)]
            ax.plot(values, label=f"person {int(person)}")
        ax.set_xlabel("iteration")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _people(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: test dataset folder not found")
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    if not people:
        raise InputError(f"{folder}: no <person> folders")
    return people


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsth.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("pretrained", type=Path, help="save_<step>.pkl of meta-training (ours or the original)")
    parser.add_argument(
        "--subject",
        type=Path,
        nargs="+",
        help="person folders to fine-tune on (default: every person of test_dataset); drivers come from both",
    )
    parser.add_argument("--test_dataset", help="<person>/<video>/[<clip>/]<frame> folders")
    parser.add_argument("--config", type=Path, help="YAML overriding the checkpoint's settings")
    parser.add_argument("--vgg19_weight_file")
    parser.add_argument("--vggface_weight_file")
    parser.add_argument("--finetune_epoch", type=int)
    parser.add_argument(
        "--output_dir", type=Path, default=Path("output"), help="runs go to OUTPUT_DIR/<date>_finetune/"
    )
    parser.add_argument(
        "--landmarks",
        choices=("dlib", "face_alignment"),
        default="dlib",
        help="detector for frames without a .npy (the original used face_alignment)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust_pickle", action="store_true", help="allow pickled objects in the checkpoint")
    add_device_argument(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    overrides = {
        k: getattr(args, k)
        for k in ("test_dataset", "vgg19_weight_file", "vggface_weight_file", "finetune_epoch")
        if getattr(args, k) is not None
    }
    device = resolve_device(args.device)
    ckpt = read_meta_checkpoint(args.pretrained, args.trust_pickle)
    cfg = load_config(args.config, **{**(ckpt.config or {}), **overrides})
    drivers = _people(Path(cfg["test_dataset"])) if cfg["test_dataset"] else []
    people = args.subject or drivers
    if not people:
        raise InputError("no people: pass --subject DIR ... or --test_dataset / test_dataset in --config")
    for person in people:
        if not person.is_dir():
            raise InputError(f"{person}: subject folder not found")
    run_dir = args.output_dir / datetime.now().strftime("%Y%m%d_%H%M_finetune")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(cfg, run_dir / "config.yaml")
    written = finetune(
        ckpt,
        cfg,
        people,
        run_dir,
        list(people) + [d for d in drivers if d not in people],
        seed=args.seed,
        landmark_backend=args.landmarks,
        device=device,
    )
    plot_losses(run_dir / "log.txt", run_dir / "losses.png")
    log.info("%d people -> %s", len(written), run_dir)


if __name__ == "__main__":
    main()
