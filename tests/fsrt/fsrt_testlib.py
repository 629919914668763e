"""Helpers of the FSRT tests: the official state-dict manifest and seeded weights.

A plain module rather than a conftest.py: test folders here have no __init__.py, so every
conftest is imported under the one name `conftest` and a second one would shadow the root's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

DATA = Path(__file__).parent / "data"


def load_manifest() -> dict:
    """Names, shapes and dtypes of every official checkpoint entry, listed by instantiating the
    original classes (copy of shared/reference/fsrt_state_dict.json)."""
    return json.loads((DATA / "fsrt_state_dict.json").read_text())


def state_from_manifest(entry: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the official names, shapes and dtypes and distinct random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for i, tensor in enumerate(entry["tensors"]):
        if tensor["dtype"] == "int64":
            state[tensor["name"]] = torch.tensor(1000 + i, dtype=torch.int64).reshape(tensor["shape"])
        else:
            state[tensor["name"]] = torch.randn(tensor["shape"], generator=generator) * 0.02 + i
    return state


def seeded_state(reference: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Well-scaled random weights for a state dict, a pure function of its key order and shapes.

    Matrices get N(0, 1/fan_in), vectors N(0, 0.05²), norm scales 1 + N(0, 0.1²), BatchNorm
    running variances U(0.5, 1.5); the anti-aliasing kernel and integer buffers are kept. The
    same recipe filled the original's modules for data/original_outputs.npz.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in reference.items():
        if not value.dtype.is_floating_point or key == "down.weight":
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif "norm.weight" in key:
            state[key] = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        elif value.dim() > 1:
            state[key] = torch.randn(value.shape, generator=generator) / value[0].numel() ** 0.5
        else:
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    return state
