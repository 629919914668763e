"""VPGC stage-1 configs: the original YAML layout, validated against a schema of defaults.

`DEFAULTS` holds every key of the official `configs/obama_sliding_4.yaml` with its value there, and
the loss constructor's remaining keyword arguments with their defaults; an unknown key is an error
naming the closest valid one. `ddconfig.soft_quant` is accepted and has no effect (as in the original,
where the encoder and decoder swallow it). Overrides use the original's OmegaConf dotlist form,
`model.params.lossconfig.params.disc_start=5`, values read as YAML.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.config import closest, merge_config, read_yaml
from common.errors import InputError

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
MODEL_TARGET = "taming.models.vqgan_slidinggrid.VQGridModel"
LOSS_TARGET = "taming.modules.losses.vqperceptual.VQLPIPSWithSeqDiscriminator"

DEFAULTS: dict[str, Any] = {
    "model": {
        "base_learning_rate": 4.5e-5,
        "target": MODEL_TARGET,
        "params": {
            "embed_dim": 4,
            "n_embed": 256,
            "ddconfig": {
                "double_z": False,
                "z_channels": 256,
                "resolution": 512,
                "in_channels": 3,
                "out_ch": 3,
                "ch": 64,
                "ch_mult": [1, 1, 2, 2, 4, 8],
                "num_res_blocks": 2,
                "attn_resolutions": [16],
                "dropout": 0.0,
                "soft_quant": False,
            },
            "lossconfig": {
                "target": LOSS_TARGET,
                "params": {
                    "disc_conditional": False,
                    "disc_in_channels": 3,
                    "disc_start": 10000,
                    "disc_weight": 0.8,
                    "codebook_weight": 1.0,
                    "pixelloss_weight": 1.0,
                    "disc_num_layers": 3,
                    "disc_factor": 1.0,
                    "perceptual_weight": 1.0,
                    "use_actnorm": False,
                    "disc_ndf": 64,
                    "disc_loss": "hinge",
                    "D_type": "multiscale",
                },
            },
        },
    },
    "data": {
        "target": "main.DataModuleFromConfig",
        "params": {
            "batch_size": 1,
            "num_workers": 8,
            "train": {
                "target": "taming.data.lrw.LRWTrain",
                "params": {"training_images_list_file": "configs/talking_config/lrw_train.yaml", "size": 512},
            },
            "validation": {
                "target": "taming.data.lrw.LRWTest",
                "params": {"test_images_list_file": "configs/talking_config/lrw_val.yaml", "size": 512},
            },
        },
    },
}


def available_configs() -> list[str]:
    """Names of the bundled configs in `vpgc/configs/`."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def resolve_config(name: str | os.PathLike) -> Path:
    """An existing file as given; otherwise a bundled config name (`obama_sliding_4`, with or without .yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path("configs")):
        bundled = CONFIGS_DIR / (path.name if path.suffix else f"{path.name}.yaml")
        if bundled.is_file():
            return bundled
    raise InputError(f"{name}: config file not found (bundled configs: {', '.join(available_configs())})")


def _check_targets(config: Mapping[str, Any], source: str) -> None:
    model = config["model"]
    for where, found, expected in (
        ("model.target", model["target"], MODEL_TARGET),
        ("model.params.lossconfig.target", model["params"]["lossconfig"]["target"], LOSS_TARGET),
    ):
        if found != expected:
            raise InputError(f"{source}: {where} '{found}' is not supported (only '{expected}')")


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str], source: str = "override") -> dict:
    """A copy of `config` with dotlist overrides `a.b.c=value` applied (values parsed as YAML).

    Unknown keys, a missing '=' and a value where a section is expected are one-line InputErrors.
    """
    import yaml

    result = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError(f"{source}: '{item}' is not of the form key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        parts, node, schema = key.split("."), result, DEFAULTS
        for depth, part in enumerate(parts):
            if not isinstance(schema, Mapping) or part not in schema:
                choices = schema if isinstance(schema, Mapping) else {}
                raise InputError(f"{source}: unknown key '{'.'.join(parts[: depth + 1])}'{closest(part, choices)}")
            if depth == len(parts) - 1:
                if isinstance(schema[part], Mapping):
                    raise InputError(f"{source}: '{key}' is a section; set one of its keys")
                node[part] = value
            else:
                node, schema = node[part], schema[part]
    return merge_config(DEFAULTS, result, source=source)


def load_config(
    name_or_path: str | os.PathLike | Mapping[str, Any] = "obama_sliding_4", overrides: Sequence[str] | None = None
) -> dict:
    """A validated, complete config from a YAML path, a bundled name or a mapping, with dotlist overrides."""
    if isinstance(name_or_path, Mapping):
        source = "config"
        config = merge_config(DEFAULTS, name_or_path, source=source)
    else:
        path = resolve_config(name_or_path)
        source = str(path)
        config = merge_config(DEFAULTS, read_yaml(path), source=source)
    if overrides:
        config = apply_overrides(config, overrides)
    _check_targets(config, source)
    return config
