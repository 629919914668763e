"""Time FSRT at the official sizes with random weights: `python -m fsrt.bench [--config vox256]`.

Rows: the keypoint detector + expression encoder on the sources, the encoder (once per source
set), the decoder per 256x256 frame as the demo runs it (pixel codes cached, `--max_num_pixels`
chunks), and one training step (forward + backward of an L1 loss on `--train_pixels` random
pixels of `--batch` samples; there is no trainer yet). Peak memory is the process's resident
peak so far on CPU (it never goes down), the stage's allocator peak on GPU.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from fsrt.config import load_config
from fsrt.model import FSRT, KPDetector, pixel_grid

SIZE = 256


def peak_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
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


def train_step(model, detector, batch: int, num_src: int, pixels: int, device: str) -> None:
    """Forward + backward of the whole model on random frames with an L1 loss on random pixels."""
    sources = torch.rand(batch, num_src, 3, SIZE, SIZE, device=device)
    target = torch.rand(batch, 3, SIZE, SIZE, device=device)
    kp_src, exp_src = model.keypoints_and_expression(detector, sources.flatten(0, 1))
    kp_drv, exp_drv = model.keypoints_and_expression(detector, target)
    z = model.encode(sources, kp_src.view(batch, num_src, -1, 2), exp_src.view(batch, num_src, -1))
    index = torch.randint(SIZE * SIZE, (batch, pixels), device=device)
    queries = pixel_grid(SIZE, SIZE, device).flatten(0, 1)[index]
    rgb = model.decoder(z, queries, kp_drv, exp_drv)
    wanted = target.flatten(2).transpose(1, 2).gather(1, index[..., None].expand(-1, -1, 3))
    loss = (rgb - wanted).abs().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsrt.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="vox256", help="config whose model sizes are timed")
    parser.add_argument("--num_src", type=int, default=1, help="source images (2 for vox256_2Source)")
    parser.add_argument("--max_num_pixels", type=int, default=8192, help="decoder chunk, as the demo's flag")
    parser.add_argument("--num_pixels", type=int, default=SIZE * SIZE,
                        help="query pixels decoded; the per-frame time is scaled from them (cost is linear)")
    parser.add_argument("--frames", type=int, default=1, help="frames decoded for the average")
    parser.add_argument("--batch", type=int, default=1, help="training batch")
    parser.add_argument("--train_pixels", type=int, default=4096, help="target pixels per training sample")
    parser.add_argument("--cpu", action="store_true")
    opt = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not opt.cpu else "cpu"

    torch.manual_seed(0)
    model = FSRT(**load_config(opt.config)["model"]).to(device).eval()
    detector = KPDetector().to(device).eval()
    sources = torch.rand(opt.num_src, 3, SIZE, SIZE, device=device)
    rows = []
    with torch.inference_mode():
        ms, mib, (kp, expression) = timed(lambda: model.keypoints_and_expression(detector, sources), device)
        rows.append((f"keypoints + expression, {opt.num_src} frame(s)", ms, mib))
        ms, mib, z = timed(lambda: model.encode(sources[None], kp[None], expression[None]), device)
        rows.append((f"encoder, {opt.num_src} source(s) (once per video)", ms, mib))
        code = model.pixel_code(SIZE, SIZE, device)[:opt.num_pixels]
        decode = lambda: model.decoder.render(z, code, kp[:1], expression[:1], opt.max_num_pixels)  # noqa: E731
        ms, mib, _ = timed(decode, device, opt.frames)
        rows.append((f"decoder per {SIZE}x{SIZE} frame (chunks of {opt.max_num_pixels})",
                     ms * SIZE * SIZE / len(code), mib))
    model.train()
    ms, mib, _ = timed(lambda: train_step(model, detector, opt.batch, opt.num_src, opt.train_pixels, device), device)
    rows.append((f"train step fwd+bwd, batch {opt.batch} x {opt.train_pixels} px, L1", ms, mib))

    print(f"FSRT {opt.config}, random weights, {device}, {torch.get_num_threads()} threads")
    print(f"{'stage':<58} {'ms':>10} {'peak MiB':>10}")
    for name, ms, mib in rows:
        print(f"{name:<58} {ms:>10.1f} {mib:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
