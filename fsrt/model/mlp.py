"""Plain ReLU multilayer perceptrons, laid out as the checkpoints expect."""

from __future__ import annotations

from torch import nn


def mlp(*widths: int) -> nn.Sequential:
    """Linear layers between consecutive `widths` with a ReLU between them, none after the last.

    Linear layers land at even indices (0, 2, 4, ...), the keys of the official state dicts.
    The ReLUs work in place: a Linear's backward never needs its own output.
    """
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers[:-1])


def scaled(width: int, width_scale: float) -> int:
    """A released hidden width times `width_scale` (1 keeps the official sizes), at least 1."""
    return max(1, round(width * width_scale))
