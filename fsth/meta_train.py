"""Meta-training of E, G and D, one iteration exactly as the original `meta_train.py`.

    python -m fsth.meta_train --config my.yaml [--train_dataset DIR] [--resume save_N.pkl] [--device cuda:1]
    torchrun --nproc_per_node 4 -m fsth.meta_train --config my.yaml      (DDP; batch size per process)

Writes into `<log_dir>/<YYYYmmdd_HHMM>_meta/` (or the resumed checkpoint's folder): config.yaml,
log.txt (the original's CSV columns, see LOG_COLUMNS), losses.png, check_<step>/ images every
check_every steps and save_<step>.pkl every save_every steps and when the run stops.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from common import distributed
from common.errors import InputError, cli_main
from common.image import tensor_to_image, write_image
from common.progress import get_logger, progress
from fsth.checkpoint import MetaCheckpoint, build_meta_networks, read_meta_checkpoint, write_meta_checkpoint
from fsth.config import load_config, plain, write_config
from fsth.dataset import EpisodeSampler, VoxCeleb
from fsth.loss import Loss_DSC, Loss_EG_meta
from fsth.network import Discriminator, Embedder, Generator

LOG_COLUMNS = (
    "epoch",
    "step",
    "total_step",
    "L_VGG19",
    "L_VGGFace",
    "L_CNT",
    "L_ADV",
    "L_FM",
    "L_MCH",
    "L_EG",
    "L_DSC1",
    "L_DSC2",
    "D_SCORE",
    "D_SCORE_HAT",
)
log = get_logger("fsth.meta_train")


def train_step(E, G, D, L_EG, optim_EG, optim_D, batch, device) -> tuple[dict[str, float], torch.Tensor]:
    """One iteration: combined backward of L_EG + L_D and both steps, then a D-only step on the
    detached fake. Returns the logged values and x_hat."""
    video_idx, x, y, x_t, y_t = (t.to(device) for t in batch)
    b, T = x.shape[:2]
    # zeros rather than None, as torch 1.x did: Adam then treats every parameter the same way
    optim_EG.zero_grad(set_to_none=False)
    optim_D.zero_grad(set_to_none=False)
    e_hat = E(x.flatten(0, 1), y.flatten(0, 1)).view(b, T, -1)
    x_hat = G(y_t, e_hat.mean(dim=1))
    real, fake = D(x_t, y_t, video_idx), D(x_hat, y_t, video_idx)
    eg = L_EG(x_t, x_hat, real.features, fake.features, fake.score, e_hat, real.w)
    l_d = Loss_DSC(fake.score, real.score)
    (eg.total + l_d).backward()
    optim_EG.step()
    optim_D.step()

    optim_D.zero_grad(set_to_none=False)
    x_hat = x_hat.detach()
    real, fake = D(x_t, y_t, video_idx), D(x_hat, y_t, video_idx)
    l_d2 = Loss_DSC(fake.score, real.score)
    l_d2.backward()
    optim_D.step()
    values = (
        eg.vgg19,
        eg.vggface,
        eg.content,
        eg.adv,
        eg.fm,
        eg.mch,
        eg.total,
        l_d,
        l_d2,
        real.score.mean(),
        fake.score.mean(),
    )
    return dict(zip(LOG_COLUMNS[3:], (float(v.detach()) for v in values))), x_hat


def plot_losses(log_file: Path, out: Path) -> Path:
    """losses.png from log.txt: the E/G terms and the D losses against total_step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = np.loadtxt(log_file, delimiter=",", ndmin=2)
    col = {name: rows[:, i] for i, name in enumerate(LOG_COLUMNS)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, names in zip(axes, (("L_EG", "L_CNT", "L_ADV", "L_FM", "L_MCH"), ("L_DSC1", "L_DSC2"))):
        for name in names:
            ax.plot(col["total_step"], col[name], label=name)
        ax.set_xlabel("total_step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def meta_train(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    L_EG: Loss_EG_meta | None = None,
    resume: MetaCheckpoint | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    device=None,
) -> Path:
    """Train until max_epoch (or `max_steps` more iterations); returns the last checkpoint path
    (None on ranks other than 0, which write nothing).

    `L_EG` defaults to `Loss_EG_meta.from_config(cfg)`; `seed` fixes initialisation and episodes.
    `device`: cpu, cuda, cuda:N or a torch.device (default: this process's GPU, else the CPU).
    Under torchrun (WORLD_SIZE > 1) the process joins the group (`common.distributed.start`) and
    the networks train inside DistributedDataParallel; the caller leaves it with `stop`.
    """
    env = distributed.start(device)
    run_dir = Path(run_dir)
    main = env.rank == 0
    dataset = VoxCeleb(
        cfg["train_dataset"], cfg["input_size"], cfg["metatrain_T"] + 1, cfg["input_normalize"], cfg["random_flip"]
    )
    if resume is not None:
        seed = resume.extra.get("seed", seed)
        if resume.sample_count != len(dataset):
            raise InputError(
                f"{resume.source}: D holds {resume.sample_count} video embeddings but "
                f"{cfg['train_dataset']} has {len(dataset)} videos"
            )
        G, E, D = build_meta_networks(resume, cfg)
    else:
        torch.manual_seed(seed)
        dim = cfg["embedding_dim"]
        G = Generator(cfg["G_config"], dim, cfg["input_normalize"], upsample_mode=cfg["upsample_mode"])
        E = Embedder(cfg["E_config"], dim)
        D = Discriminator(cfg["V_config"], len(dataset), dim)
    nets = {"G": G, "E": E, "D": D}
    G, E, D = (env.wrap(n.train()) for n in (G, E, D))
    L_EG = (L_EG or Loss_EG_meta.from_config(cfg)).to(env.device).eval()
    # E's parameters first, then G's: the original's order, so its optimiser states line up
    optim_EG = torch.optim.Adam(
        list(E.parameters()) + list(G.parameters()), lr=cfg["lr_EG"], betas=tuple(cfg["adam_betas"])
    )
    optim_D = torch.optim.Adam(D.parameters(), lr=cfg["lr_D"], betas=tuple(cfg["adam_betas"]))

    batch = cfg["metatrain_batch_size"]
    per_rank = math.ceil(len(dataset) / env.world)
    batches = math.ceil(per_rank / batch)
    first_epoch, first_step, total_step = 0, 0, 0  # where this run starts
    if resume is not None:
        if resume.optim_EG is not None:
            optim_EG.load_state_dict(resume.optim_EG)
            optim_D.load_state_dict(resume.optim_D)
        if "torch_rng" in resume.extra:
            torch.set_rng_state(resume.extra["torch_rng"])
        carry, first_step = divmod(resume.step + 1, batches)
        first_epoch, total_step = resume.epoch + carry, resume.total_step + 1
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run_dir / "config.yaml")
        log.info(
            "%d videos, batch size %d x %d processes, %d batches per epoch", len(dataset), batch, env.world, batches
        )

    def save(done: tuple[int, int, int]) -> Path:
        ckpt = MetaCheckpoint(
            nets["G"].state_dict(),
            nets["E"].state_dict(),
            nets["D"].state_dict(),
            *done,
            optim_EG.state_dict(),
            optim_D.state_dict(),
            {k: plain(v) for k, v in cfg.items()},
            {"seed": seed, "torch_rng": torch.get_rng_state()},
        )
        return write_meta_checkpoint(run_dir / f"save_{done[2]}.pkl", ckpt)

    last, done = None, None
    stop_at = None if max_steps is None else total_step + max_steps
    log_file = run_dir / "log.txt"
    for epoch in range(first_epoch, cfg["max_epoch"]):
        if stop_at is not None and total_step >= stop_at:
            break
        sampler = EpisodeSampler(
            len(dataset), seed, epoch, cfg["dataset_shuffle"], env.rank, env.world, start=first_step * batch
        )
        loader = DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=cfg["num_worker"],
            pin_memory=env.device.type == "cuda",
            drop_last=False,
        )
        bar = progress(loader, desc=f"epoch {epoch}", total=len(loader), disable=None if main else True)
        for step, data in enumerate(bar, start=first_step):
            values, x_hat = train_step(E, G, D, L_EG, optim_EG, optim_D, data, env.device)
            done = (epoch, step, total_step)
            if main:
                _after_step(cfg, run_dir, log_file, bar, epoch, step, total_step, values, x_hat, data)
                if total_step and total_step % cfg["save_every"] == 0:
                    last = save(done)
            total_step += 1
            if stop_at is not None and total_step >= stop_at:
                break
        first_step = 0
    if main and done is not None and (last is None or last.name != f"save_{done[2]}.pkl"):
        last = save(done)  # so that every run can be resumed where it stopped
    return last


def _after_step(cfg, run_dir, log_file, bar, epoch, step, total_step, values, x_hat, data):
    """The original's per-iteration side effects: console, check images, log line."""
    if total_step and total_step % cfg["display_every"] == 0:
        bar.set_postfix(L_EG=f"{values['L_EG']:.4f}", L_DSC2=f"{values['L_DSC2']:.4f}")
        log.info(
            "epoch %d step %d (total %d): %s",
            epoch,
            step,
            total_step,
            ", ".join(f"{k} {v:.4f}" for k, v in values.items()),
        )
    if total_step and total_step % cfg["check_every"] == 0:
        value_range = (0.0, 1.0) if cfg["input_normalize"] else (0.0, 255.0)
        for name, images in (("x_hat", x_hat), ("x_t", data[3]), ("y_t", data[4])):
            for i, image in enumerate(images[:3]):  # the original's first three; fewer in a small batch
                write_image(run_dir / f"check_{total_step}" / f"{name}_{i}.jpg", tensor_to_image(image, value_range))
    with open(log_file, "a") as f:
        f.write(
            f"{epoch}, {step}, {total_step}, "
            + ", ".join(
                f"{values[k]:.2f}" if k in ("L_VGG19", "L_VGGFace") else f"{values[k]:.4f}" for k in LOG_COLUMNS[3:]
            )
            + "\n"
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsth.meta_train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML overriding fsth.config.DEFAULTS (same key names)")
    parser.add_argument("--train_dataset", help="dataset root: <person>/<video>/ folders")
    parser.add_argument("--vgg19_weight_file", help="from python -m tools.convert_vgg --arch vgg19 --format fsth")
    parser.add_argument("--vggface_weight_file", help="from python -m tools.convert_vgg --arch vggface --format fsth")
    parser.add_argument("--max_epoch", type=int)
    parser.add_argument("--max_steps", type=int, help="stop after this many iterations (checkpoint written)")
    parser.add_argument("--log_dir", type=Path, default=Path("log"), help="runs go to LOG_DIR/<date>_meta/")
    parser.add_argument("--resume", type=Path, help="a save_<step>.pkl to continue from (its folder is reused)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust_pickle", action="store_true", help="allow pickled objects in --resume")
    distributed.add_device_argument(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    overrides = {
        k: getattr(args, k)
        for k in ("train_dataset", "vgg19_weight_file", "vggface_weight_file", "max_epoch")
        if getattr(args, k) is not None
    }
    resume = read_meta_checkpoint(args.resume, args.trust_pickle) if args.resume else None
    base = dict(resume.config) if resume is not None and resume.config else {}
    cfg = load_config(args.config, **{**base, **overrides})
    if cfg["train_dataset"] is None:
        raise InputError("no training dataset: set train_dataset in --config or pass --train_dataset")
    run_dir = args.resume.parent if resume else args.log_dir / datetime.now().strftime("%Y%m%d_%H%M_meta")
    process = distributed.start(args.device)
    try:
        last = meta_train(cfg, run_dir, resume=resume, max_steps=args.max_steps, seed=args.seed, device=process.device)
        if process.is_main:
            plot_losses(run_dir / "log.txt", run_dir / "losses.png")
            log.info("checkpoint: %s", last)
    finally:
        distributed.stop()


if __name__ == "__main__":
    main()
