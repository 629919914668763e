"""FSRT configs: the original YAML keys, validated against a schema of defaults.

Every key the original code reads is listed in `DEFAULTS`; an unknown key is an error naming the
closest valid one. A key left out takes the value of the original code's own fallback where it
has one (`max_it`, `num_workers`, `lr_warmup`, `decay_it`), otherwise the `vox256.yaml` value.
`encoder_kwargs`/`decoder_kwargs` also accept the constructor arguments the released configs
leave at their defaults (`num_conv_blocks`, `num_att_blocks`, `num_kp`); `model.width_scale` (not
in the original, default 1) shrinks every hidden width for small models, and `training.lr` (not in
the original, which hard-codes it) sets the peak learning rate, default 1e-4.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config import load_config as _load_yaml
from common.config import merge_config
from common.errors import InputError

RUNS_DIR = Path(__file__).resolve().parent / "runs"

_OCTAVES = {"pix_octaves": 16, "pix_start_octave": -1, "kp_octaves": 4, "kp_start_octave": -1}

DEFAULTS: dict[str, Any] = {
    "data": {
        "data_path": None,
        "kp_path": None,
        "dataset": "vox",
        "num_src": 1,
        "num_pixels_phase1": 4096,
        "num_pixels": 16384,
        "image_subsampling": True,
        "simulate_out_of_frame_motion": True,
        "augmentation_params": {
            "flip_param": {"horizontal_flip": True},
            "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
        },
    },
    "model": {
        "encoder_kwargs": {
            **_OCTAVES,
            "encode_with_expression": True,
            "num_conv_blocks": 3,
            "num_att_blocks": 5,
            "num_kp": 10,
        },
        "decoder_kwargs": {**_OCTAVES, "num_att_blocks": 2, "num_kp": 10},
        "small_decoder": False,
        "expression_size": 256,
        "width_scale": 1.0,  # ours, for small demo models: scales every hidden width
    },
    "discriminator": {
        "use_disc": True,
        "scales": [1],
        "disc_kwargs": {
            "num_channels": 3,
            "block_expansion": 64,
            "num_blocks": 4,
            "max_features": 512,
            "sn": False,
            "use_kp": True,
            "num_kp": 10,
            "kp_variance": 0.01,
        },
    },
    "training": {
        "iters_in_phase1": 200000,
        "iters_in_phase2": 300000,
        "max_it": 1000000,
        "decay_it": 4000000,
        "lr_warmup": 2500,
        "lr": 1e-4,  # ours: the original hard-codes this peak learning rate
        "num_workers": 1,
        "batch_size": 24,
        "model_selection_metric": "psnr",
        "model_selection_mode": "maximize",
        "print_every": 10,
        "visualize_every": 5000,
        "validate_every": 5000,
        "checkpoint_every": 1000,
        "backup_every": 5000,
        "disc_warmup_iters": 500,
        "scales": [1],
        "mse_loss_weight": 1,
        "perceptual_loss_weight": [0.01] * 5,
        "discriminator_gan_loss_weight": 0.001,
        "generator_gan_loss_weight": 0.001,
        "generator_gan_feature_matching": [0.01] * 4,
        "statistical_regularization": True,
        "variance_loss_weight": 0.2,
        "covariance_loss_weight": 1,
        "invariance_loss_weight": 1,
    },
}


def available_configs() -> list[str]:
    """Names of the bundled configs in `fsrt/runs/`."""
    return sorted(p.stem for p in RUNS_DIR.glob("*.yaml"))


def resolve_config(name: str | os.PathLike) -> Path:
    """An existing file as given; otherwise a bare name (`vox256`, `vox256.yaml`, `runs/vox256.yaml`)
    from `fsrt/runs/`."""
    path = Path(name)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path("runs")):
        bundled = RUNS_DIR / (path.name if path.suffix else f"{path.name}.yaml")
        if bundled.is_file():
            return bundled
    raise InputError(f"{name}: config file not found (bundled configs: {', '.join(available_configs())})")


def load_config(config: str | os.PathLike | Mapping[str, Any]) -> dict:
    """A validated, complete config from a YAML path, a bundled config name or a mapping."""
    if isinstance(config, Mapping):
        return merge_config(DEFAULTS, config)
    return _load_yaml(resolve_config(config), DEFAULTS)
