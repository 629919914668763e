"""Helpers of the VFA tests: the official state-dict manifest, seeded weights and RGBD inputs.

A plain module rather than a conftest.py: test folders here have no __init__.py, so every
conftest is imported under the one name `conftest` and a second one would shadow the root's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"

# Seeds of the parity recording (data/original_outputs.npz): weights and the three input frames.
PARITY_SEEDS = dict(weights=31, frames=32)

# Plain torch convolutions (the student's residual blocks) take their scale from the weights;
# every other convolution / linear weight is an equalised-lr one, N(0, 1) and scaled at run time.
_PLAIN_CONV = re.compile(r"res_blocks\.\d+\.conv\d\.weight$")


def load_manifest() -> dict:
    """Every official state-dict entry in order (name, shape, dtype, param/buffer, requires_grad),
    listed by instantiating the original classes (copy of shared/reference/vfa_state_dict.json)."""
    return json.loads((DATA / "vfa_state_dict.json").read_text())


def manifest_entries(config: str = "infer_and_distill") -> list[dict]:
    """The ordered entries of one manifest configuration ('infer_and_distill' or 'train_stage1')."""
    return load_manifest()["configs"][config]["entries"]


def state_from_manifest(config: str = "infer_and_distill", seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the manifest's names, order, shapes and dtypes and distinct random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for i, entry in enumerate(manifest_entries(config)):
        if entry["dtype"] == "int64":
            state[entry["name"]] = torch.tensor(1000 + i, dtype=torch.int64).reshape(entry["shape"])
        else:
            state[entry["name"]] = torch.randn(entry["shape"], generator=generator) * 0.02 + i
    return state


def seeded_state(reference: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Well-scaled random weights for a VFA state dict, a pure function of its key order and shapes.

    Equalised-lr weights, the constant input and the two motion dictionaries are N(0, 1) as the
    original initialises them; the plain convolutions of the student's residual blocks get
    N(0, 1/fan_in). Biases the original starts at 0 get N(0, 0.1²) and the modulation biases
    (initialised at 1) 1 + N(0, 0.1²), so that a dropped bias shows; BatchNorm scales are
    1 + N(0, 0.1²), running means N(0, 0.1²), running variances U(0.5, 1.5). The blur kernels and
    integer buffers are kept. The same recipe filled the original's modules for
    data/original_outputs.npz.

    Drawn with NumPy's generator in float64, then rounded to the reference dtype: torch.randn's
    float32 values depend on the CPU kernel (ATEN_CPU_CAPABILITY), and the decoder turns such
    1e-7 differences into 1e-3 ones.
    """
    rng = np.random.default_rng(seed)

    def normal(shape, std=1.0, mean=0.0):
        return mean + std * rng.standard_normal(tuple(shape))

    state = {}
    for key, value in reference.items():
        if not value.dtype.is_floating_point or key.endswith("kernel"):
            state[key] = value.clone()
            continue
        if key.endswith("running_var"):
            draw = rng.random(tuple(value.shape)) + 0.5
        elif key.endswith("modulation.bias") or (".norm" in key and key.endswith("weight")):
            draw = normal(value.shape, 0.1, 1.0)
        elif _PLAIN_CONV.search(key):
            draw = normal(value.shape, 1 / value[0].numel() ** 0.5)
        elif value.dim() > 1 and not key.endswith("bias"):
            draw = normal(value.shape)
        else:
            draw = normal(value.shape, 0.1)
        state[key] = torch.from_numpy(draw).to(value.dtype)
    return state


def make_rgbd_frames(count: int = 3, size: int = 256, seed: int = PARITY_SEEDS["frames"]) -> torch.Tensor:
    """[count, 4, size, size] float64 smooth random RGBD frames in [-1, 1] with a little fine texture
    (NumPy's generator, float64 throughout: the same values on every CPU to ~1e-16)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((count, 4, 8, 8)) * 2 - 1)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 0.1 * torch.from_numpy(rng.standard_normal((count, 4, size, size)))).clamp(-1, 1)
