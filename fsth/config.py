"""Settings of the original `face/config.py`, under its names, and the layer-string parser.

Layer strings: ('D', out, k, pool) down block, ('U', out, k, scale) up block, ('BA', out, k)
residual block with AdaIN, ('B', out, k) residual block with InstanceNorm, ('I',)
InstanceNorm2d(affine), ('A',) self-attention. As in the original, anything after the type of an
'A' or 'I' entry is ignored (G_config has ('A', 8)). Every entry becomes one module of the
network's `layers`, so 'I' and 'A' take an index in the state-dict keys too.

The original's dataset and VGG paths pointed at its author's machine; here they default to None
and must be given. Its `gpu_id` has no equivalent: every command takes `--device` (default: this
process's GPU, else the CPU; `common.distributed`), and torchrun gives each process its own GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import load_config as _load_yaml_config
from common.config import merge_config
from common.errors import InputError

# Grouped by the resolution each group outputs for a 256 x 256 input.
G_config = (
    ("D", 64, 9, 2),
    ("I",),  # 128
    ("D", 128, 3, 2),
    ("I",),  # 64
    ("D", 256, 3, 2),
    ("I",),
    ("A",),  # 32
    ("D", 512, 3, 2),
    ("I",),  # 16
    *[("BA", 512, 3)] * 5,  # 16
    ("U", 256, 3, 2),  # 32
    ("U", 128, 3, 2),
    ("A", 8),  # 64
    ("U", 64, 3, 2),  # 128
    ("U", 3, 3, 2),  # 256
)

# E and D use no normalisation layers except the two InstanceNorms of D's final 'B' block.
E_config = (
    ("D", 64, 3, 2),
    ("D", 128, 3, 2),  # 128, 64
    ("D", 256, 3, 2),
    ("A",),  # 32
    ("D", 512, 3, 2),
    ("D", 512, 3, 2),
    ("D", 512, 3, 2),  # 16, 8, 4
)

V_config = E_config + (("B", 512, 3),)

DEFAULTS: dict[str, Any] = {
    # paths
    "train_dataset": None,
    "test_dataset": None,
    "vgg19_weight_file": None,
    "vggface_weight_file": None,
    # dataset
    "dataset_shuffle": True,
    "num_worker": 4,
    "random_flip": True,
    "input_size": 256,
    "input_normalize": True,  # tensors in [0, 1]; False means [0, 255]
    # checkpoints and logging
    "max_epoch": 50,
    "display_every": 10,
    "check_every": 1000,
    "save_every": 5000,
    "finetune_epoch": 150,
    "save_optim_state": False,
    # training
    "metatrain_batch_size": 3,
    "finetune_batch_size": 2,
    "metatrain_T": 8,  # embedder frames per episode (the paper's K)
    "finetune_T": 8,
    # networks
    "embedding_dim": 512,
    "G_config": G_config,
    "E_config": E_config,
    "V_config": V_config,
    "upsample_mode": "bilinear",
    # losses: VGG module indices whose outputs feed the content loss
    "vgg19_layers": (0, 5, 10, 19, 28),
    "vggface_layers": (0, 5, 10, 17, 24),
    "vgg19_loss_weight": 1e-2,
    "vggface_loss_weight": 2e-3,
    "fm_loss_weight": 1e1,
    "mch_loss_weight": 8e1,
    # not in the original (0 keeps it exact): an L1 pixel term in the content loss, for training
    # without the VGG weight files (the sample's demo model)
    "l1_loss_weight": 0.0,
    # optimisers
    "lr_EG": 5e-5,
    "lr_D": 2e-4,
    "adam_betas": (0.0, 0.999),
}

_ARITY = {"D": 4, "U": 4, "B": 3, "BA": 3}  # entries including the type
_LAYER_KEYS = ("G_config", "E_config", "V_config")


@dataclass(frozen=True)
class LayerSpec:
    """One parsed layer string with the channel counts it sees.

    `scale` is the pooling kernel of 'D' and the upsampling factor of 'U', else None.
    """

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int | None = None
    scale: int | None = None


def parse_layer_config(layer_config: Sequence[Sequence], input_dim: int, name: str = "layer config") -> list[LayerSpec]:
    """Layer strings -> one LayerSpec per entry, threading the channel count through."""
    if not layer_config:
        raise InputError(f"{name}: empty layer config")
    specs, channels = [], input_dim
    for i, entry in enumerate(layer_config):
        if not isinstance(entry, (list, tuple)) or not entry:
            raise InputError(f"{name}[{i}]: expected a tuple such as ('D', 64, 3, 2), got {entry!r}")
        kind = entry[0]
        if kind in ("I", "A"):
            specs.append(LayerSpec(kind, channels, channels))
            continue
        if kind not in _ARITY:
            raise InputError(f"{name}[{i}]: unknown layer type {kind!r} (one of D, U, B, BA, I, A)")
        if len(entry) != _ARITY[kind] or not all(isinstance(v, int) and v > 0 for v in entry[1:]):
            raise InputError(f"{name}[{i}]: {kind!r} takes {_ARITY[kind] - 1} positive integers, got {tuple(entry)!r}")
        out_channels, kernel_size, *scale = entry[1:]
        specs.append(LayerSpec(kind, channels, out_channels, kernel_size, scale[0] if scale else None))
        channels = out_channels
    return specs


def plain(value):
    """Tuples -> lists, recursively, for YAML and checkpoints (layer strings are tuples)."""
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def write_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """`cfg` as YAML (keys in their order, tuples as lists): a run folder's config.yaml."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump({k: plain(v) for k, v in cfg.items()}, sort_keys=False))
    return path


def load_config(path: str | os.PathLike | None = None, **overrides) -> dict[str, Any]:
    """DEFAULTS overlaid with a YAML file and then `overrides`; unknown keys and bad layer
    strings are one-line InputErrors."""
    cfg = _load_yaml_config(path, DEFAULTS) if path is not None else dict(DEFAULTS)
    cfg = merge_config(cfg, overrides, source="overrides")
    for key, input_dim in zip(_LAYER_KEYS, (3, 6, 6)):
        parse_layer_config(cfg[key], input_dim, name=f"{path or 'config'}: {key}")
    return cfg
