"""Reduced-precision inference for the PyTorch methods: one `--precision` flag and one autocast.

Float32 is the default and what every parity test checks. `--precision bf16` runs the matrix
products and convolutions in bfloat16 through torch's autocast (on CPUs with AVX512-BF16 or AMX a
large matmul runs ~3x faster in bfloat16 than in float32; elsewhere bfloat16 may be slower), and
`fp16` does the same in float16 on a GPU. Weights stay float32, so every checkpoint loads as it
is; outputs are cast back to float32 before they are clamped and written. `frame_agreement` says
how far the frames moved (PSNR and the largest 8-bit level difference against the float32 frames),
which the benches report beside the speed-up. Framework-neutral at import.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from common.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}
HELP = "arithmetic of the networks: fp32 (default, exact), bf16 (CPU or GPU autocast) or fp16 (GPU autocast)"


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=HELP)


def check_precision(precision: str, device) -> None:
    """InputError for a precision this device cannot run (fp16 autocast is a GPU path)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and str(device).split(":")[0] == "cpu":
        raise InputError("--precision fp16 is for GPUs; on the CPU use bf16")


def autocast(precision: str, device):
    """A context that runs the enclosed forward passes at `precision` on `device` (a torch.device or
    its name); a no-op for fp32."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=getattr(torch, DTYPE_NAMES[precision]))


def frame_agreement(reference, candidate) -> dict:
    """How closely `candidate` frames match `reference` ones once both are written as 8-bit images:
    {"psnr_db": PSNR over all pixels (inf when equal), "max_levels": largest level difference}.
    Both are arrays or tensors of the same shape with values in [0, 1] (clamped here)."""

    def levels(frames) -> np.ndarray:
        if hasattr(frames, "detach"):
            frames = frames.detach().float().cpu().numpy()
        return np.round(np.clip(np.asarray(frames, dtype=np.float64), 0, 1) * 255)

    a, b = levels(reference), levels(candidate)
    if a.shape != b.shape:
        raise ValueError(f"frames of different shapes: {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    return {"psnr_db": psnr, "max_levels": int(np.abs(a - b).max())}
