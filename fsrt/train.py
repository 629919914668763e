"""Train FSRT: `python -m fsrt.train runs/vox256.yaml` or `torchrun --nproc_per_node N -m fsrt.train ...`.

Phases, losses, LR schedule and checkpoint cadence follow the original (fact sheet §8). Resume is
exact: model, optimisers, step, best metric and RNG are in `model.pt`, the LR is a function of the
step and the data stream a function of (seed, step, rank).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.distributed as dist

from common import distributed
from common.checkpoint import load_strict, require_file
from common.errors import InputError, cli_main
from common.progress import get_logger, progress
from common.runlog import RunLog
from fsrt.checkpoint import DEFAULT_KP_DETECTOR, load_fsrt, load_kp_detector, save_fsrt
from fsrt.config import load_config, resolve_config
from fsrt.data import StepSampler, get_dataset
from fsrt.model import FSRT, KPDetector, MultiScaleDiscriminator
from fsrt.trainer import FSRTTrainer, check_scales
from fsrt.visualize import NUM_VISUALIZED, fixed_batch, render_columns, save_grid

DECAY_RATE = 0.16
log = get_logger("fsrt.train")


def learning_rate(it: int, warmup: int, decay_it: int, peak: float = 1e-4) -> float:
    """Linear warm-up to `peak` (the original's 1e-4), then exponential decay by 0.16 per `decay_it` steps."""
    if it < warmup:
        return peak * it / warmup
    return peak * DECAY_RATE ** ((it - warmup) / decay_it)


def _loader(dataset, batch_size: int, start: int, rank: int, world: int, seed: int, workers: int, device):
    sampler = StepSampler(len(dataset), batch_size, start, rank, world, seed)
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
        )
    )


def describe(model: FSRT) -> str:
    """The original's `--print-model` listing: the modules, then name / shape / size of every parameter."""
    lines = [str(model)]
    lines += [f"{name:80}{str(list(p.shape)):20}{p.numel():10d}" for name, p in model.named_parameters()]
    return "\n".join(lines)


def train(
    config,
    out_dir,
    kp_detector: KPDetector | None = None,
    kp_checkpoint=DEFAULT_KP_DETECTOR,
    vgg=None,
    max_it: int | None = None,
    frame_size: int = 256,
    seed: int = 0,
    show_progress: bool | None = None,
    device: torch.device | str | None = None,
    evaluate_now: bool = False,
    visualize_now: bool = False,
) -> list[dict]:
    """Run (or resume) training into `out_dir`; returns the logged rows of this process's steps.

    `device` goes through `common.distributed.resolve_device`; under torchrun the process group
    must be joined first (`common.distributed.start`, as `main` does). `evaluate_now` /
    `visualize_now` validate or write the visualisations before the first step as well (the
    original's --evalnow / --visnow).
    """
    cfg = load_config(config)
    process = distributed.current(device)
    device, rank, world = process.device, process.rank, process.world
    tcfg = cfg["training"]
    out_dir = Path(out_dir)
    max_it = tcfg["max_it"] if max_it is None else max_it
    if tcfg["model_selection_mode"] not in ("maximize", "minimize"):
        raise InputError("training.model_selection_mode must be maximize or minimize")
    sign = 1 if tcfg["model_selection_mode"] == "maximize" else -1
    batch_size = max(1, tcfg["batch_size"] // world)

    # Every file the run needs is checked now, not when a later phase first uses it.
    check_scales(cfg)
    validates = evaluate_now or 0 < tcfg["validate_every"] < max_it  # validation has the perceptual term
    if sum(tcfg["perceptual_loss_weight"]) > 0 and (max_it > tcfg["iters_in_phase1"] or validates):
        require_file(
            vgg,
            "VGG19 weights for training.perceptual_loss_weight",
            "convert them with `python -m tools.convert_vgg` and pass --vgg PATH",
        )
    torch.manual_seed(seed)  # identical initial weights on every process
    detector = kp_detector if kp_detector is not None else load_kp_detector(kp_checkpoint)
    detector = detector.to(device).eval()
    data_kwargs = {"frame_size": frame_size, "seed": seed}

    def train_data(phase1: bool):
        return get_dataset("train", cfg["data"], phase1=phase1, **data_kwargs)

    train_set, val_set = train_data(True), get_dataset("val", cfg["data"], phase1=False, **data_kwargs)
    model = FSRT(**cfg["model"]).to(device)
    disc = None
    if cfg["discriminator"]["use_disc"]:
        disc = MultiScaleDiscriminator(cfg["discriminator"]["scales"], **cfg["discriminator"]["disc_kwargs"])
        disc = disc.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=learning_rate(0, tcfg["lr_warmup"], tcfg["decay_it"], tcfg["lr"])
    )
    optimizer_disc = torch.optim.Adam(disc.parameters(), lr=0.0) if disc is not None else None  # LR set from phase 3
    perceptual = None
    if vgg is not None and sum(tcfg["perceptual_loss_weight"]) > 0:
        from common.vgg.torch_vgg import PerceptualLoss

        perceptual = PerceptualLoss(vgg, layer_weights=tcfg["perceptual_loss_weight"]).to(device)
    trainer = FSRTTrainer(
        cfg,
        *(process.wrap(m) for m in (model.encoder, model.decoder, model.expression_encoder)),
        detector,
        process.wrap(disc) if disc is not None else None,
        perceptual,
        seed=seed + rank,
        device=device,
    )
    if rank == 0:
        counts = [sum(p.numel() for p in part.parameters()) for part in (model.encoder, model.decoder)]
        log.info(f"parameters: encoder {counts[0]}, decoder {counts[1]}, total {sum(counts)}; device {device}")

    state = {"epoch_it": 0, "it": -1, "t": 0.0, "loss_val_best": -sign * float("inf"), "run_id": None}
    resume = out_dir / f"model_{max_it}.pt"
    resume = resume if resume.is_file() else out_dir / "model.pt"
    if resume.is_file():
        extra = load_fsrt(model, resume)
        optimizer.load_state_dict(extra["optimizer"])
        if disc is not None:
            load_strict(disc, extra["discriminator"], source=resume)
            optimizer_disc.load_state_dict(extra["optimizer_disc"])
        trainer.generator.set_state(extra["rng_state"][rank % len(extra["rng_state"])])
        state.update({k: extra[k] for k in state if k in extra})
        log.info(f"resumed from {resume} at step {state['it'] + 1}")

    phase1_end = tcfg["iters_in_phase1"]
    it = state["it"] + 1
    phase1 = it < phase1_end
    if not phase1:
        train_set = train_data(phase1)
    batches = _loader(train_set, batch_size, it, rank, world, seed, tcfg["num_workers"], device)
    writer = RunLog(out_dir) if rank == 0 else None
    visuals: dict[str, dict] = {}  # the fixed samples, read at the first visualisation
    # pixels per decoder call for the visualisations: the original's training budget per process
    vis_chunk = max(1, cfg["data"]["num_pixels"] * tcfg["batch_size"] // (NUM_VISUALIZED * world))

    def visualize():
        if not visuals:
            visuals.update(train=fixed_batch(train_set), val=fixed_batch(val_set))
        for split, batch in visuals.items():
            save_grid(render_columns(model, detector, batch, device, vis_chunk), out_dir / f"renders-{split}.png")

    rows, t0 = [], time.perf_counter() - state["t"]

    def save(name: str, best: float):
        states = torch.stack([trainer.generator.get_state()])
        if world > 1:  # every process's coin-flip generator, so each resumes its own stream
            states = states.to(device)  # NCCL only moves GPU tensors
            gathered = [torch.empty_like(states) for _ in range(world)]
            dist.all_gather(gathered, states)
            states = torch.cat(gathered).cpu()
        if rank == 0:
            entries = {"optimizer": optimizer}
            if disc is not None:
                entries.update(discriminator=disc, optimizer_disc=optimizer_disc)
            save_fsrt(
                out_dir / name,
                model,
                epoch_it=0,
                it=it - 1,
                t=time.perf_counter() - t0,
                loss_val_best=best,
                run_id=None,
                rng_state=states,
                **entries,
            )

    bar = progress(
        range(it, max_it),
        desc="fsrt.train",
        total=max_it,
        initial=it,
        disable=None if show_progress is None else not show_progress,
    )
    best, first = state["loss_val_best"], it

    def due(every: int) -> bool:
        return every > 0 and it > 0 and it % every == 0

    for it in bar:
        if (it < phase1_end) != phase1:  # phase 2 needs full-image targets: rebuild the loader
            phase1 = it < phase1_end
            train_set = train_data(phase1)
            batches = _loader(train_set, batch_size, it, rank, world, seed, tcfg["num_workers"], device)
        if tcfg["checkpoint_every"] > 0 and it % tcfg["checkpoint_every"] == 0 and it > 0:
            save("model.pt", best)
        if tcfg["backup_every"] > 0 and it % tcfg["backup_every"] == 0:
            save(f"model_{it}.pt", best)
        if rank == 0 and ((visualize_now and it == first) or due(tcfg["visualize_every"])):
            visualize()
        if (evaluate_now and it == first) or due(tcfg["validate_every"]):
            metrics = validate(trainer, val_set, rank, world, seed)
            if writer:
                writer.scalars("val", it, metrics)
            if sign * (metrics[tcfg["model_selection_metric"]] - best) > 0:
                best = metrics[tcfg["model_selection_metric"]]
                save("model_best.pt", best)
        lr = learning_rate(it, tcfg["lr_warmup"], tcfg["decay_it"], tcfg["lr"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        if optimizer_disc is not None and it >= trainer.phase3_start:
            for group in optimizer_disc.param_groups:
                group["lr"] = lr
        values = trainer.train_step(next(batches), it, optimizer, optimizer_disc)
        row = {"it": it, "lr": lr, **values}
        rows.append(row)
        if writer and it % tcfg["print_every"] == 0:
            writer.scalars("train", it, row)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
    it = max_it
    save("model.pt", best)
    if writer:
        writer.close()
    return rows


def validate(trainer: FSRTTrainer, dataset, rank: int, world: int, seed: int) -> dict[str, float]:
    """Mean of the per-sample metrics over the whole val set (each process takes every world-th video)."""
    generator = torch.Generator().manual_seed(seed)  # fixed draws: validation does not touch the training RNG
    sums: dict[str, torch.Tensor] = {}
    indices = range(rank, len(dataset), world)
    for index in indices:
        batch = torch.utils.data.default_collate([dataset[index]])
        for key, value in trainer.eval_step(batch, generator).items():
            sums[key] = sums.get(key, 0) + value.sum().double()
    keys = sorted(sums)
    count = torch.tensor(float(len(indices)), dtype=torch.float64, device=trainer.device)
    totals = torch.stack([sums[k] for k in keys] + [count])
    if world > 1:
        dist.all_reduce(totals)
    return {k: (totals[i] / totals[-1]).item() for i, k in enumerate(keys)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="config file or bundled name (runs/vox256.yaml)")
    parser.add_argument("--out", help="run directory (default: output/fsrt/<config name>)")
    parser.add_argument("--exit-after", type=int, dest="exit_after", help="stop at this step (overrides max_it)")
    parser.add_argument("--kp_checkpoint", default=str(DEFAULT_KP_DETECTOR), help="kp_detector.pt")
    parser.add_argument("--vgg", help="VGG19 weights for the perceptual loss (python -m tools.convert_vgg)")
    parser.add_argument("--frame-size", type=int, default=256, dest="frame_size")
    parser.add_argument("--seed", type=int, default=0)
    distributed.add_device_argument(parser)
    parser.add_argument("--evalnow", action="store_true", help="also validate before the first step")
    parser.add_argument("--visnow", action="store_true", help="also write the visualisations before the first step")
    parser.add_argument(
        "--print-model",
        action="store_true",
        dest="print_model",
        help="print the model and every parameter's shape and size, then train",
    )
    args = parser.parse_args(argv)
    out = Path(args.out or Path("output/fsrt") / resolve_config(args.config).stem)
    process = distributed.start(args.device)
    if process.is_main:
        print(f"run directory: {out}", flush=True)
        if args.print_model:
            print(describe(FSRT(**load_config(args.config)["model"])), flush=True)
    try:
        train(
            args.config,
            out,
            kp_checkpoint=args.kp_checkpoint,
            vgg=args.vgg,
            max_it=args.exit_after,
            frame_size=args.frame_size,
            seed=args.seed,
            device=process.device,
            evaluate_now=args.evalnow,
            visualize_now=args.visnow,
        )
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main)())
