"""Time FSRT at the official sizes with random weights: `python -m fsrt.bench [--config vox256]`.

Rows: the keypoint detector + expression encoder on the sources, the encoder (once per source
set), the decoder per 256x256 frame as the demo runs it (pixel codes cached, `--max_num_pixels`
chunks), and `FSRTTrainer.train_step` (forward, backward, Adam) on random frames at each training
phase: 4096 random target pixels (phase 1), a 128x128 sub-grid with gradients plus the other
49152 pixels without (phase 2; the perceptual loss is left out, it needs VGG weights), and phase 2
plus the discriminator and its update (phase 3). Peak memory is the process's resident peak so
far on CPU (it never goes down), the stage's allocator peak on GPU. `--json OUT` also writes them as
common.bench rows, the decoder's with its counted GFLOP per frame.
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import torch

from common.bench import BenchRow, count_flops, write_rows_json
from common.distributed import add_device_argument, resolve_device
from fsrt.config import load_config
from fsrt.model import FSRT, KPDetector, MultiScaleDiscriminator, pixel_grid
from fsrt.trainer import FSRTTrainer

SIZE = 256


def peak_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn, device: str, repeat: int = 1) -> tuple[float, float, object]:
    """(ms per call, peak MiB, last result), after one untimed warm-up call on GPU."""
    if device == "cuda":
        fn()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / repeat, peak_mib(device), result


def training_batch(batch: int, num_src: int, phase1_pixels: int | None) -> dict:
    """Random frames with the dataset's keys: `phase1_pixels` random target pixels, or (None)
    the stride-2 sub-grid at offset (0, 0) with gradients and the other three without."""

    def frames(*shape):
        return torch.rand(batch, *shape, 3, SIZE, SIZE)

    grid = pixel_grid(SIZE, SIZE)
    index = torch.arange(SIZE * SIZE).view(SIZE, SIZE)
    if phase1_pixels is not None:
        sampled, remaining = torch.randperm(SIZE * SIZE)[:phase1_pixels], torch.zeros(0, dtype=torch.long)
    else:
        sampled = index[::2, ::2].reshape(-1)
        remaining = torch.cat([index[y::2, x::2].reshape(-1) for x, y in ((1, 0), (0, 1), (1, 1))])
    target = frames()
    pixels = target.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    flat = grid.reshape(-1, 2)
    return {
        "input_images_augm": frames(num_src),
        "input_images_augm2": frames(num_src),
        "input_images_augm2_uncropped": frames(num_src),
        "kp_scale": torch.ones(batch, 2),
        "kp_shift": torch.zeros(batch, 2),
        "input_pos": grid.expand(batch, num_src, -1, -1, -1),
        "target_image_augm": target,
        "target_image_augm2": frames(),
        "target_image_augm2_uncropped": frames(),
        "target_image_augm3_crop": frames(),
        "target_pos": flat[sampled].expand(batch, -1, -1),
        "remaining_pos": flat[remaining].expand(batch, -1, -1),
        "sampled_idxs": sampled.expand(batch, -1),
        "remaining_idxs": remaining.expand(batch, -1),
        "target_pixels_augm": pixels[:, sampled] if phase1_pixels is not None else pixels,
    }


def decoder_gflop_per_frame(model: FSRT, z, code, kp, expression, chunk: int) -> float:
    """GFLOP of the decoder per SIZE x SIZE frame, counted on one `chunk` of queries: the keys and
    values of z are projected once per frame, everything else is per query pixel."""
    decoder = model.decoder
    per_frame = count_flops(decoder.allocation_transformer.transformer.project_kv, z)
    one_chunk = count_flops(decoder.render, z, code[:chunk], kp[:1], expression[:1], chunk)
    return (per_frame + (one_chunk - per_frame) * SIZE * SIZE / min(chunk, len(code))) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsrt.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", default="vox256", help="config whose model sizes are timed (vox256_2Source: 2 sources)"
    )
    parser.add_argument("--max_num_pixels", type=int, default=8192, help="decoder chunk, as the demo's flag")
    parser.add_argument(
        "--num_pixels",
        type=int,
        default=SIZE * SIZE,
        help="query pixels decoded; the per-frame time is scaled from them (cost is linear)",
    )
    parser.add_argument("--frames", type=int, default=1, help="frames decoded for the average")
    parser.add_argument("--batch", type=int, default=1, help="training batch per step")
    parser.add_argument("--phases", type=int, nargs="*", default=[1, 2, 3], help="training phases to time")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as common.bench JSON")
    add_device_argument(parser)
    opt = parser.parse_args(argv)
    device = resolve_device(opt.device).type
    cfg = load_config(opt.config)
    num_src, tcfg = cfg["data"]["num_src"], cfg["training"]

    torch.manual_seed(0)
    model = FSRT(**cfg["model"]).to(device).eval()
    detector = KPDetector().to(device).eval()
    sources = torch.rand(num_src, 3, SIZE, SIZE, device=device)
    rows, standard = [], []
    with torch.inference_mode():
        ms, mib, (kp, expression) = timed(lambda: model.keypoints_and_expression(detector, sources), device)
        rows.append((f"keypoints + expression, {num_src} frame(s)", ms, mib))
        standard.append(BenchRow("fsrt", rows[-1][0], "inference", ms / 1000, "call", mib, device=device))
        ms, mib, z = timed(lambda: model.encode(sources[None], kp[None], expression[None]), device)
        rows.append((f"encoder, {num_src} source(s) (once per video)", ms, mib))
        standard.append(BenchRow("fsrt", rows[-1][0], "inference", ms / 1000, "call", mib, device=device))
        code = model.pixel_code(SIZE, SIZE, device)[: opt.num_pixels]
        decode = lambda: model.decoder.render(z, code, kp[:1], expression[:1], opt.max_num_pixels)  # noqa: E731
        ms, mib, _ = timed(decode, device, opt.frames)
        rows.append(
            (f"decoder per {SIZE}x{SIZE} frame (chunks of {opt.max_num_pixels})", ms * SIZE * SIZE / len(code), mib)
        )
        gflop = decoder_gflop_per_frame(model, z, code, kp, expression, opt.max_num_pixels)
        note = f"{len(code)} of {SIZE * SIZE} pixels timed, scaled" if len(code) < SIZE * SIZE else ""
        standard.append(
            BenchRow("fsrt", rows[-1][0], "inference", rows[-1][1] / 1000, "frame", mib, gflop, note, device)
        )

    disc = MultiScaleDiscriminator(cfg["discriminator"]["scales"], **cfg["discriminator"]["disc_kwargs"]).to(device)
    trainer = FSRTTrainer(cfg, model.encoder, model.decoder, model.expression_encoder, detector, disc, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    optimizer_disc = torch.optim.Adam(disc.parameters(), lr=1e-6)
    no_perceptual = {**tcfg, "perceptual_loss_weight": [0.0] * len(tcfg["perceptual_loss_weight"])}
    trainer.train_cfg = no_perceptual
    first_it = {1: 0, 2: trainer.phase2_start, 3: trainer.phase3_start + tcfg["disc_warmup_iters"]}
    for phase in opt.phases:
        data = training_batch(opt.batch, num_src, cfg["data"]["num_pixels_phase1"] if phase == 1 else None)
        step = functools.partial(trainer.train_step, data, first_it[phase], optimizer, optimizer_disc)
        ms, mib, _ = timed(step, device)
        what = {1: f"{cfg['data']['num_pixels_phase1']} px", 2: "16384 + 49152 px", 3: "phase 2 + GAN"}[phase]
        rows.append((f"train step phase {phase}, batch {opt.batch} ({what}): {1000 / ms:.3f} steps/s", ms, mib))
        label = f"train step phase {phase}, batch {opt.batch} ({what})"
        standard.append(BenchRow("fsrt", label, "training", ms / 1000, "step", mib, device=device))

    header = f"FSRT {opt.config}, random weights, {device}, {torch.get_num_threads()} threads"
    if opt.json:
        write_rows_json(opt.json, standard, header)
    print(header)
    print(f"{'stage':<62} {'ms':>10} {'peak MiB':>10}")
    for name, ms, mib in rows:
        print(f"{name:<62} {ms:>10.1f} {mib:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
