"""Time FSRT at the official sizes with random weights: `python -m fsrt.bench [--config vox256]`.

Rows: the keypoint detector + expression encoder on the sources, the encoder (once per source
set), the decoder per 256x256 frame as the demo runs it (pixel codes cached, `--max_num_pixels`
chunks), and `FSRTTrainer.train_step` (forward, backward, Adam; its GFLOP counted on one extra
step) on random frames at each training phase: 4096 random target pixels (phase 1), a 128x128
sub-grid with gradients plus the other 49152 pixels without (phase 2; the perceptual loss is left
out, it needs VGG weights), and phase 2 plus the discriminator and its update (phase 3). Peak
memory is the process's resident peak so far on CPU (it never goes down), the stage's allocator
peak on GPU. `--json OUT` also writes them as common.bench rows, the decoder's with its counted
GFLOP per frame.

`--precisions fp32 bf16` (the CPU default; fp32 fp16 on a GPU) times the encoder and the decoder
again under autocast (`common.precision`) and notes the speed-up and how far the frame moved. Random
weights decode a nearly constant frame (values within about +-0.01), so the decoded values are
first scaled by the float32 frame's own range: the agreement is that of the image's contrast.

`--original DIR` (a checkout of andrerochow/fsrt, CPU only) then times the original's demo per frame
and its phase-1 training step beside ours, taking turns, `--rounds` times each (fsrt.bench_original).
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import torch

from common.bench import BenchRow, count_flops, write_rows_json
from common.distributed import add_device_argument, resolve_device
from common.errors import cli_main
from common.precision import PRECISIONS, autocast, frame_agreement
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


def range_scaled_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> dict:
    """`frame_agreement` of two decoded frames after mapping the reference's [min, max] to [0, 1]."""
    low, high = reference.min(), reference.max()
    scale = (high - low).clamp_min(1e-12)
    return frame_agreement((reference - low) / scale, (candidate.float() - low) / scale)


def precision_note(fp32_seconds: float, seconds: float, agreement: dict | None = None) -> str:
    note = f"x{fp32_seconds / seconds:.2f} vs fp32"
    if agreement is not None:
        note += f"; frames vs fp32 {agreement['psnr_db']:.1f} dB PSNR, max {agreement['max_levels']} levels"
    return note


def time_encoder_decoder(model, sources, kp, expression, code, opt, device: str, precision: str) -> dict:
    """The encoder's ms per call and the decoder's ms per SIZE x SIZE frame (scaled from `code`'s
    pixels) at `precision`, their peak MiB, the set-latent z and the decoded pixels."""
    with autocast(precision, device):
        encoder_ms, encoder_mib, z = timed(lambda: model.encode(sources[None], kp[None], expression[None]), device)
        decode = functools.partial(model.decoder.render, z, code, kp[:1], expression[:1], opt.max_num_pixels)
        decoder_ms, decoder_mib, frame = timed(decode, device, opt.frames)
    return {
        "encoder_ms": encoder_ms,
        "encoder_mib": encoder_mib,
        "decoder_ms": decoder_ms * SIZE * SIZE / len(code),
        "decoder_mib": decoder_mib,
        "z": z,
        "frame": frame.float(),
    }


@cli_main
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
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="inference precisions (default fp32 bf16; GPU: fp32 fp16); fp32 always runs, as the reference",
    )
    parser.add_argument("--original", metavar="DIR", help="also time an andrerochow/fsrt checkout beside ours (CPU)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each side with --original")
    add_device_argument(parser)
    opt = parser.parse_args(argv)
    device = resolve_device(opt.device).type
    if opt.original:
        from fsrt import bench_original  # imports nothing of the original until compare()

        if opt.rounds < 1:
            parser.error("--rounds must be at least 1")

        original = bench_original.find_original(opt.original, device)
    precisions = opt.precisions or ["fp32", "fp16" if device == "cuda" else "bf16"]
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
        encoder_label = f"encoder, {num_src} source(s) (once per video)"
        decoder_label = f"decoder per {SIZE}x{SIZE} frame (chunks of {opt.max_num_pixels})"
        code = model.pixel_code(SIZE, SIZE, device)[: opt.num_pixels]
        scaled = f"{len(code)} of {SIZE * SIZE} pixels timed, scaled" if len(code) < SIZE * SIZE else ""
        fp32, gflop = None, None
        for precision in ["fp32"] + [p for p in precisions if p != "fp32"]:
            run = time_encoder_decoder(model, sources, kp, expression, code, opt, device, precision)
            suffix = ""
            if fp32 is None:
                fp32, notes = run, ("", scaled)
                gflop = decoder_gflop_per_frame(model, run["z"], code, kp, expression, opt.max_num_pixels)
            else:
                suffix = f" [{precision}]"
                agreement = range_scaled_agreement(fp32["frame"], run["frame"])
                decoder_note = precision_note(fp32["decoder_ms"], run["decoder_ms"], agreement)
                notes = (
                    precision_note(fp32["encoder_ms"], run["encoder_ms"]),
                    "; ".join(filter(None, [decoder_note, scaled])),
                )
            rows.append((encoder_label + suffix, run["encoder_ms"], run["encoder_mib"]))
            standard.append(
                BenchRow(
                    "fsrt", rows[-1][0], "inference", rows[-1][1] / 1000, "call", rows[-1][2], None, notes[0], device
                )
            )
            rows.append((decoder_label + suffix, run["decoder_ms"], run["decoder_mib"]))
            standard.append(
                BenchRow(
                    "fsrt", rows[-1][0], "inference", rows[-1][1] / 1000, "frame", rows[-1][2], gflop, notes[1], device
                )
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
        gflop = count_flops(step) / 1e9  # one more step: forward and backward products, for the share of peak
        standard.append(BenchRow("fsrt", label, "training", ms / 1000, "step", mib, gflop, device=device))

    comparisons = bench_original.compare(original, opt.config, SIZE, opt.rounds) if opt.original else []
    if comparisons:
        standard += bench_original.bench_rows(comparisons, opt.rounds)
    header = f"FSRT {opt.config}, random weights, {device}, {torch.get_num_threads()} threads"
    if opt.json:
        write_rows_json(opt.json, standard, header)
    print(header)
    print(f"{'stage':<62} {'ms':>10} {'peak MiB':>10}")
    for name, ms, mib in rows:
        print(f"{name:<62} {ms:>10.1f} {mib:>10.0f}")
    if comparisons:
        print("\n" + bench_original.table(comparisons, opt.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
