"""Reduced-precision inference for the PyTorch methods: one `--precision` flag and one autocast.

Float32 is the default and what every parity test checks. `--precision bf16` runs the matrix
products and convolutions in bfloat16 through torch's autocast, and `fp16` does the same in float16
on a GPU. Weights stay float32, so every checkpoint loads as it is; outputs are cast back to float32
before they are clamped and written. `frame_agreement` says how far the frames moved (PSNR and the
largest 8-bit level difference against the float32 frames), which the benches report beside the
speed-up. Framework-neutral at import.

bfloat16 pays only on CPUs with bfloat16 instructions (AVX512-BF16, AMX, Arm BF16), where a large
matmul runs ~3-4x faster than in float32. Elsewhere oneDNN emulates it: on a 2-core AVX-512 Xeon
without AVX512-BF16 a 2048^2 matmul ran at 62 GFLOP/s against 342 in float32 and a 3x3 convolution
2.4x slower, so `check_precision` warns once on stderr there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path

import numpy as np

from common.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}
# /proc/cpuinfo flags of bfloat16 arithmetic: x86 AVX512-BF16 and AMX, Arm's BF16 extension
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
HELP = "arithmetic of the networks: fp32 (default, exact), bf16 (CPU or GPU autocast) or fp16 (GPU autocast)"


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=HELP)


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them (x86 `flags`, Arm `Features`); None where unknown."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags) if flags else None


@functools.cache  # autocast checks the precision on every forward
def native_bf16() -> bool | None:
    """Whether this CPU has bfloat16 arithmetic instructions; None where its flags are unknown."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & NATIVE_BF16_FLAGS)


@functools.cache
def _warn_emulated_bf16() -> None:
    print(
        "warning: this CPU has no bfloat16 instructions (AVX512-BF16, AMX or Arm BF16): --precision bf16 "
        "is emulated here and usually slower than fp32",
        file=sys.stderr,
    )


def check_precision(precision: str, device) -> None:
    """InputError for a precision this device cannot run (fp16 autocast is a GPU path); for bf16 on a CPU
    without bfloat16 instructions, a one-line warning on stderr, once per process."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    on_cpu = str(device).split(":")[0].lower() == "cpu"
    if precision == "fp16" and on_cpu:
        raise InputError("--precision fp16 is for GPUs; on the CPU use bf16")
    if precision == "bf16" and on_cpu and native_bf16() is False:
        _warn_emulated_bf16()


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
