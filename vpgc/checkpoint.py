"""Official VPGC checkpoint layouts: strict loading with one-line errors, and the same layouts on save.

* Stage 1, `N-Step-Checkpoint_<epoch>_<global_step>.ckpt`: a PyTorch Lightning checkpoint whose
  `state_dict` holds the whole `VQGridModel` (456 entries, the loss's LPIPS and discriminator
  included); the other entries (`epoch`, `global_step`, `optimizer_states`, ...) are returned for a
  resume. The grid codebook is the entry `quantize.embedding`; the candidate banks are derived
  from it on every call, so nothing has to be rebuilt after loading.
* Stage 2, `Enc_<step:08d>.ckpt` = {'encoder': state dict} and `Imp_<step:08d>.ckpt` =
  {'implicit': state dict}, every key prefixed `module.` (saved from DataParallel); optimisers in
  `optimizer_enc.ckpt` {'enc_opt'} and `optimizer_imp.ckpt` {'imp_opt'}.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common.checkpoint import load_checkpoint, load_strict, save_checkpoint
from common.distributed import unwrap
from common.errors import CheckpointMismatchError, InputError

WHERE = (
    "the official VPGC checkpoints (Grid_Codebook: N-Step-Checkpoint_*.ckpt; Reenactment: Enc_*.ckpt, Imp_*.ckpt) "
    "are in the per-subject SharePoint folders linked from the README of github.com/uniBruce/VPGC_Pytorch; "
    "put them under checkpoints/vpgc/<Subject>/"
)
# Marks the layout (Lightning 1.5's top-level keys); the file is written by torch.save, not by Lightning.
LIGHTNING_LAYOUT_VERSION = "1.5.10"
# Classes a Lightning 1.x checkpoint may pickle by name (callback-state keys); mapped to empty stand-ins
# so that `weights_only` loading accepts them without importing Lightning or running their code.
_LIGHTNING_CLASSES = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "main.CheckpointEveryNSteps",
    "main.SetupCallback",
    "main.ImageLogger",
)


def _stand_ins() -> list[tuple[type, str]]:
    return [(type(name.rsplit(".", 1)[1], (), {}), name) for name in _LIGHTNING_CLASSES]


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Load with weights_only; a Lightning file naming callback classes is retried with those stand-ins."""
    import torch

    try:
        content = load_checkpoint(path, where=WHERE)
    except InputError as exc:
        if "weights_only loading refuses" not in str(exc):
            raise
        with torch.serialization.safe_globals(_stand_ins()):
            content = load_checkpoint(path, where=WHERE)
    if not isinstance(content, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a dict checkpoint, found {type(content).__name__}")
    return content


def _kind(content: Mapping[str, Any]) -> str:
    if "state_dict" in content:
        return "a stage-1 Lightning checkpoint (N-Step-Checkpoint_*.ckpt)"
    if "encoder" in content:
        return "a stage-2 landmark-encoder checkpoint (Enc_*.ckpt)"
    if "implicit" in content:
        return "a stage-2 driving-module checkpoint (Imp_*.ckpt)"
    found = ", ".join(list(content)[:6]) + (", ..." if len(content) > 6 else "")
    return f"not a VPGC checkpoint (entries: {found})"


def _entry(path: str | os.PathLike, content: Mapping[str, Any], key: str, wanted: str) -> Mapping[str, Any]:
    if key not in content:
        raise CheckpointMismatchError(f"{path}: {_kind(content)} given where {wanted} is expected")
    state = content[key]
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f"{path}: '{key}' is a {type(state).__name__}, not a state dict")
    return state


def load_stage1(path: str | os.PathLike, model) -> dict[str, Any]:
    """Load a stage-1 checkpoint's `state_dict` strictly into a `VQGridModel`; returns the other entries.

    A model built without the loss ignores the file's `loss.*` entries; everything else must match.
    """
    content = read_checkpoint(path)
    state = _entry(path, content, "state_dict", "a stage-1 Lightning checkpoint (N-Step-Checkpoint_*.ckpt)")
    target = unwrap(model)
    ignore = () if hasattr(target, "loss") else ("loss.",)
    load_strict(target, state, source=path, ignore=ignore)
    return {key: value for key, value in content.items() if key != "state_dict"}


def save_stage1(
    path: str | os.PathLike, model, epoch: int, global_step: int, optimizers: Iterable = (), **extra
) -> Path:
    """Write the Lightning layout atomically: epoch, global_step, version, state_dict, optimizer_states,
    lr_schedulers, then `extra` entries (e.g. RNG states for an exact resume)."""
    content = {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": LIGHTNING_LAYOUT_VERSION,
        "state_dict": unwrap(model).state_dict(),
        "optimizer_states": [optimizer.state_dict() for optimizer in optimizers],
        "lr_schedulers": [],
        **extra,
    }
    return save_checkpoint(content, path)


def load_stage2(encoder_path: str | os.PathLike, implicit_path: str | os.PathLike, encoder, imp) -> None:
    """Load `Enc_*.ckpt` into the landmark encoder and `Imp_*.ckpt` into `PriorTrans`, strictly; keys may
    carry the official `module.` prefix or none."""
    for path, key, module, wanted in (
        (encoder_path, "encoder", encoder, "a stage-2 landmark-encoder checkpoint (Enc_*.ckpt)"),
        (implicit_path, "implicit", imp, "a stage-2 driving-module checkpoint (Imp_*.ckpt)"),
    ):
        state = _entry(path, read_checkpoint(path), key, wanted)
        load_strict(unwrap(module), state, source=path)


def save_stage2(folder: str | os.PathLike, step: int, encoder, imp, enc_opt=None, imp_opt=None) -> tuple[Path, Path]:
    """Write `Enc_<step:08d>.ckpt` and `Imp_<step:08d>.ckpt` (keys prefixed `module.`, as the official files;
    the original names them with its iteration + 1), and the optimiser files when given."""
    folder = Path(folder)
    written = []
    for name, key, module in (("Enc", "encoder", encoder), ("Imp", "implicit", imp)):
        state = {f"module.{k}": v for k, v in unwrap(module).state_dict().items()}
        written.append(save_checkpoint({key: state}, folder / f"{name}_{step:08d}.ckpt"))
    optimizers = (("optimizer_enc.ckpt", "enc_opt", enc_opt), ("optimizer_imp.ckpt", "imp_opt", imp_opt))
    for file, key, optimizer in optimizers:
        if optimizer is not None:
            save_checkpoint({key: optimizer.state_dict()}, folder / file)
    return written[0], written[1]
