"""Colour jitter of a clip, one random draw per clip (torchvision's ColorJitter semantics,
written on float tensors since no torchvision build exists for this CPU setup)."""

from __future__ import annotations

import numpy as np
import torch

_GRAY = torch.tensor([0.299, 0.587, 0.114])


def jitter_factors(
    rng: np.random.Generator, brightness: float = 0, contrast: float = 0, saturation: float = 0, hue: float = 0
) -> tuple[list[tuple[str, float]]]:
    """Random factors and a random order of the enabled operations."""
    ops = []
    for name, amount in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if amount > 0:
            ops.append((name, rng.uniform(max(0.0, 1 - amount), 1 + amount)))
    if hue > 0:
        ops.append(("hue", rng.uniform(-hue, hue)))
    return ([ops[i] for i in rng.permutation(len(ops))],)


def _gray(images: torch.Tensor) -> torch.Tensor:
    return (images * _GRAY.to(images)[:, None, None]).sum(-3, keepdim=True)


def _shift_hue(images: torch.Tensor, amount: float) -> torch.Tensor:
    """Rotate the hue by `amount` turns through HSV."""
    r, g, b = images.unbind(-3)
    high, low = images.max(-3).values, images.min(-3).values
    chroma = high - low
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(high == r, ((g - b) / safe) % 6, torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    hue = (hue + amount) % 1.0
    sat = torch.where(high > 0, chroma / torch.where(high > 0, high, torch.ones_like(high)), torch.zeros_like(high))
    # HSV -> RGB with the continuous formula k = (n + 6h) mod 6.
    channels = []
    for n in (5, 3, 1):
        k = (n + 6 * hue) % 6
        channels.append(high - high * sat * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(channels, dim=-3)


def color_jitter(clip: torch.Tensor, ops: list[tuple[str, float]]) -> torch.Tensor:
    """Apply `ops` from `jitter_factors` to a clip [T, 3, H, W] in [0, 1]; the same for every frame."""
    out = clip
    for name, factor in ops:
        if name == "brightness":
            out = out * factor
        elif name == "contrast":
            mean = _gray(out).mean(dim=(-3, -2, -1), keepdim=True)
            out = factor * out + (1 - factor) * mean
        elif name == "saturation":
            out = factor * out + (1 - factor) * _gray(out)
        else:
            out = _shift_hue(out, factor)
        out = out.clamp(0, 1)
    return out
