"""Helpers of the FSRT tests: the official state-dict manifest and seeded weights.

A plain module rather than a conftest.py: test folders here have no __init__.py, so every
conftest is imported under the one name `conftest` and a second one would shadow the root's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

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


# The released architecture with the narrowest settings its constructors allow: the token and
# render widths are fixed, but few octaves, a small expression vector, one attention block and
# the small decoder make a 256x256 frame cost about a second on a CPU.
SMALL_MODEL = {
    "expression_size": 8,
    "small_decoder": True,
    "encoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
    "decoder_kwargs": {"pix_octaves": 2, "kp_octaves": 1, "num_att_blocks": 1},
}


def small_checkpoints(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write a small random FSRT (config YAML + checkpoint, official layout) and a random
    keypoint detector into `folder`; returns their paths by CLI flag name."""
    import yaml

    from common.checkpoint import save_checkpoint
    from fsrt.checkpoint import save_fsrt
    from fsrt.model import FSRT, KPDetector

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"config": folder / "small.yaml", "checkpoint": folder / "small.pt", "kp_checkpoint": folder / "kp.pt"}
    paths["config"].write_text(yaml.safe_dump({"model": SMALL_MODEL}))
    model = FSRT(**SMALL_MODEL)
    detector = KPDetector()
    with torch.no_grad():
        detector.kp.weight.mul_(20)  # sharper heatmaps, so keypoints follow the image content
        last = model.decoder.render_mlp[-1]
        last.weight.mul_(20)  # mid-grey images with visible structure instead of ~0 +- 0.01
        last.bias.fill_(0.5)
    save_fsrt(paths["checkpoint"], model, it=0)
    save_checkpoint(detector.state_dict(), paths["kp_checkpoint"])
    return paths
