"""What VPGC's two trainers share: boolean flags, the data order, RNG state and image grids.

The data order is a pure function of (seed, epoch, rank, world) and the RNG streams are saved in
every checkpoint, so a resumed run takes exactly the steps an uninterrupted one would have.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch

TRUE, FALSE = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")


def str2bool(value) -> bool:
    """argparse type for true/false flags (the original's `type=bool` made any non-empty string,
    'False' included, True)."""
    if isinstance(value, bool):
        return value
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices), as Lightning's `seed_everything`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's RNG streams, in types a weights-only checkpoint load accepts."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved (CUDA streams only where both runs have GPUs)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_order(length: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """This process's shuffled sample indices for one epoch (DistributedSampler's split: the
    permutation repeated up to a multiple of `world` entries, then every world-th entry)."""
    generator = torch.Generator().manual_seed(seed * 100003 + epoch)
    order = torch.randperm(length, generator=generator).tolist()
    total = -(-length // world) * world
    padded = (order * -(-total // length))[:total]
    return padded[rank::world]


def batches(dataset, indices: list[int], workers: int, device: torch.device):
    """The samples `indices` of `dataset`, in that order, one per step, without the loader's batch axis.
    The loader draws its worker seed from a private generator: the global RNG streams (saved in the
    checkpoints) stay untouched, so a resumed run sees the same random numbers."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    return iter(loader)


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """[N, C, H, W] -> one [C, H', W'] tiling, row-major, `nrow` images per row with `padding`
    pixels of `pad_value` around each (torchvision's `make_grid` layout)."""
    count, channels, height, width = images.shape
    rows = -(-count // nrow)
    cell_h, cell_w = height + padding, width + padding
    grid = images.new_full((channels, rows * cell_h + padding, nrow * cell_w + padding), pad_value)
    for index, image in enumerate(images):
        top, left = (index // nrow) * cell_h + padding, (index % nrow) * cell_w + padding
        grid[:, top : top + height, left : left + width] = image
    return grid


def grid_to_uint8(grid: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> HxWx3 uint8 by truncation of (x + 1) / 2 * 255, as the original's loggers."""
    scaled = ((grid.detach().float().cpu().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)
    return np.ascontiguousarray(scaled.expand(3, -1, -1).permute(1, 2, 0).numpy())
