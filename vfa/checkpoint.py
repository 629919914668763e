"""The official VFA checkpoint layout: strict loading with one-line errors, and the same layout on save.

`VFA.pt` (and every file `trainer.py` writes, `<iter:06d>.pt`) is a dict
{'gen': Generator state dict (no `module.` prefix), 'g_optim': Adam state dict, 'args': the
argparse.Namespace of train.py}. A distillation-stage file holds the inference generator (338
entries, with `student_dec.*`), a stage-1 file the same without the student (245 entries).
LIA's checkpoints share the names but take 3-channel RGB input; they are refused with a clear message.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import load_checkpoint, load_strict, save_checkpoint
from common.distributed import unwrap
from common.errors import CheckpointMismatchError, InputError
from vfa.model import Generator

DEFAULT_CHECKPOINT = Path("checkpoints/vfa/VFA.pt")
WHERE = (
    "the official VFA.pt is in the Google Drive folder "
    "(drive.google.com/drive/folders/19zRZO0J2VPMIK32ddGq9zf77XF1JEHha) or on Tsinghua Cloud "
    "(cloud.tsinghua.edu.cn/d/b257a8f8b9534ba6a7e8) linked from the README of github.com/why986/VFA; "
    "put it under checkpoints/vfa/"
)
INPUT_CONV = "enc.net_app.convs.0.0.weight"


def read_vfa_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The file's dict, loaded with weights_only=True; the pickled argparse.Namespace under 'args'
    is allowed for this one load only."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        content = load_checkpoint(path, where=WHERE)
    if not isinstance(content, Mapping) or not isinstance(content.get("gen"), Mapping):
        found = ", ".join(map(str, list(content)[:6])) if isinstance(content, Mapping) else type(content).__name__
        raise CheckpointMismatchError(f"{path}: not a VFA checkpoint, no 'gen' state dict (found: {found})")
    return dict(content)


def load_generator_state(generator: Generator, state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Load a 'gen' state dict strictly; a 3-channel (LIA) one given to a 4-channel generator is
    named as such instead of listed as mis-shaped tensors."""
    generator = unwrap(generator)
    given = state.get(INPUT_CONV)
    rgb_given = given is not None and given.ndim == 4 and given.shape[1] == 3
    if rgb_given and generator.get_parameter(INPUT_CONV).shape[1] == 4:
        raise InputError(
            f"{path}: a 3-channel LIA checkpoint ({INPUT_CONV} takes 3 input channels); "
            "VFA needs its own 4-channel RGBD checkpoint VFA.pt"
        )
    load_strict(generator, state, source=f"{path} [gen]")


def load_vfa(generator: Generator, path: str | os.PathLike) -> dict[str, Any]:
    """Load 'gen' strictly into `generator`; returns the other entries ('g_optim', 'args') for a resume."""
    content = read_vfa_checkpoint(path)
    load_generator_state(generator, content["gen"], path)
    return {key: value for key, value in content.items() if key != "gen"}


def save_vfa(
    path: str | os.PathLike, generator: Generator, g_optim=None, args: argparse.Namespace | None = None
) -> Path:
    """Write {'gen', 'g_optim', 'args'} atomically; `g_optim` is an optimiser or its state dict."""
    if hasattr(g_optim, "state_dict"):
        g_optim = g_optim.state_dict()
    content = {"gen": unwrap(generator).state_dict(), "g_optim": g_optim, "args": args}
    return save_checkpoint(content, path)


def load_inference_generator(path: str | os.PathLike = DEFAULT_CHECKPOINT, device="cpu") -> Generator:
    """The generator infer.py builds (256x256 RGBD, with the student), loaded strictly from `path`,
    in eval mode on `device`. The file is read first, so a missing one fails before any work. The
    latent sizes and `channel_divisor` come from the file's training flags ('args') where it has
    them (the official file's are the defaults), so narrower models trained by vfa.train load too."""
    content = read_vfa_checkpoint(path)
    flags = content.get("args")
    generator = Generator(
        size=256,
        style_dim=getattr(flags, "latent_dim_style", 512),
        motion_dim=getattr(flags, "latent_dim_motion", 20),
        in_channels=4,
        depth_motion_dim=getattr(flags, "latent_dim_depth_motion", 5),
        distilling=True,
        channel_divisor=getattr(flags, "channel_divisor", 1),
    )
    load_generator_state(generator, content["gen"], path)
    return generator.to(device).eval()
