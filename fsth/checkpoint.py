"""Meta-training checkpoints (the original's list format and ours) and the fine-tuning state.

The original `meta_train.py` saves a Python list,
    [epoch, step_in_epoch, total_step, G.state_dict(), E.state_dict(), D.state_dict()]
plus [optim_EG.state_dict(), optim_D.state_dict()] when save_optim_state is set, from CUDA and
possibly in torch's legacy serialisation. We write a dict tagged with FORMAT instead, which also
keeps the run's settings and any resume state; `read_meta_checkpoint` accepts both.
Optimiser states are only meaningful with parameters in the original order:
optim_EG over list(E.parameters()) + list(G.parameters()).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import load_checkpoint, load_strict, save_checkpoint
from common.errors import CheckpointMismatchError, InputError
from fsth.config import DEFAULTS
from fsth.network import Discriminator, Embedder, Generator

FORMAT = "fsth-meta/1"
_FIELDS = ("epoch", "step", "total_step", "G", "E", "D", "optim_EG", "optim_D", "config", "extra")


@dataclass(eq=False)  # holds tensors: no meaningful ==
class MetaCheckpoint:
    """The contents of a meta-training checkpoint; `config` is None in the original's files.

    `extra` holds further resume state a trainer saves (RNG states, ...), `source` names the
    file in error messages and is not saved.
    """

    G: dict
    E: dict
    D: dict
    epoch: int = 0
    step: int = 0
    total_step: int = 0
    optim_EG: dict | None = None
    optim_D: dict | None = None
    config: dict | None = None
    extra: dict = field(default_factory=dict)
    source: str = "checkpoint"

    @property
    def sample_count(self) -> int:
        """Number of meta-training videos: the rows of D's per-video embedding."""
        weight = self.D.get("embedding.weight")
        return int(weight.shape[0]) if weight is not None else 1  # absent: load_strict reports it


WHERE = (
    "no official weights exist: checkpoints come from python -m fsth.meta_train (save_<step>.pkl) or "
    "from the original bowen-xiao96/reenact meta_train.py, which writes the same list"
)


def read_meta_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> MetaCheckpoint:
    """Read a checkpoint written by the original `meta_train.py` or by `write_meta_checkpoint`."""
    obj = load_checkpoint(path, map_location="cpu", trust_pickle=trust_pickle, where=WHERE)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT and all(k in obj for k in "GED"):
        return MetaCheckpoint(**{k: obj[k] for k in _FIELDS if k in obj}, source=str(path))
    if (
        isinstance(obj, (list, tuple))
        and len(obj) in (6, 8)
        and all(isinstance(v, int) for v in obj[:3])
        and all(isinstance(v, Mapping) for v in obj[3:6])
    ):
        epoch, step, total_step, G, E, D, *optim = obj
        return MetaCheckpoint(dict(G), dict(E), dict(D), epoch, step, total_step, *optim, source=str(path))
    raise InputError(
        f"{path}: not an FSTH meta-training checkpoint (expected the list "
        "[epoch, step, total_step, G, E, D(, optim_EG, optim_D)] of the original "
        f"meta_train.py or a dict with format '{FORMAT}')"
    )


def write_meta_checkpoint(path: str | os.PathLike, ckpt: MetaCheckpoint) -> Path:
    """Save `ckpt` atomically in our dict format."""
    return save_checkpoint({"format": FORMAT, **{k: getattr(ckpt, k) for k in _FIELDS}}, path)


def build_meta_networks(
    ckpt: MetaCheckpoint, cfg: Mapping[str, Any] | None = None
) -> tuple[Generator, Embedder, Discriminator]:
    """G, E, D built from `cfg` (default: the checkpoint's settings, else DEFAULTS) and loaded
    strictly from `ckpt`; a mismatch is a one-line CheckpointMismatchError."""
    cfg = {**DEFAULTS, **(ckpt.config or {}), **(cfg or {})}
    dim = cfg["embedding_dim"]
    G = Generator(cfg["G_config"], dim, cfg["input_normalize"], upsample_mode=cfg["upsample_mode"])
    E = Embedder(cfg["E_config"], dim)
    D = Discriminator(cfg["V_config"], ckpt.sample_count, dim)
    for name, net, state in (("G", G, ckpt.G), ("E", E, ckpt.E), ("D", D, ckpt.D)):
        load_strict(net, state, source=f"{ckpt.source} [{name}]")
    return G, E, D


def to_finetune_state(
    G_state: Mapping[str, torch.Tensor], D_state: Mapping[str, torch.Tensor], e_mean: torch.Tensor
) -> tuple[dict, dict]:
    """Meta-trained G and D state dicts -> those of FinetuneGenerator / FinetuneDiscriminator.

    e_mean (1, embedding_dim) is the mean embedding of the fine-tuning frames. G: `P.weight` is
    replaced by adain = (e_mean P^T) viewed (1, count, 2). D: `embedding.weight` and `w0` are
    replaced by w = w0 + e_mean; `b` is kept.
    """
    for name, state, keys in (("G", G_state, ("P.weight",)), ("D", D_state, ("w0", "embedding.weight"))):
        missing = [k for k in keys if k not in state]
        if missing:
            raise CheckpointMismatchError(f"{name} state dict lacks {', '.join(missing)}: not a meta-training {name}")
    e_mean = e_mean.detach().reshape(1, -1)
    adain = (e_mean @ G_state["P.weight"].t()).reshape(1, -1, 2)
    G_ft = {"adain": adain, **{k: v for k, v in G_state.items() if k != "P.weight"}}
    D_ft = {"w": D_state["w0"] + e_mean, **{k: v for k, v in D_state.items() if k not in ("w0", "embedding.weight")}}
    return G_ft, D_ft
