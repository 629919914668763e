"""Official FSRT checkpoint layouts: strict loading with one-line errors, and the same layout on save.

* `vox256.pt` / `vox256_2Source.pt`: a dict with the state dicts `encoder`, `decoder`,
  `expression_encoder` (what inference needs) and, from training, `optimizer`,
  `discriminator`, `optimizer_disc` and scalars (`epoch_it`, `it`, `t`, `loss_val_best`, `run_id`).
* `kp_detector.pt`: a flat `KPDetector` state dict. FOMM checkpoints (a dict with
  `kp_detector`) load too; their `jacobian.*` head is dropped, FSRT has none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.checkpoint import load_checkpoint, load_strict, save_checkpoint
from common.distributed import unwrap
from common.errors import CheckpointMismatchError
from fsrt.config import load_config
from fsrt.model import FSRT, KPDetector

FSRT_PARTS = ("encoder", "decoder", "expression_encoder")
DEFAULT_KP_DETECTOR = Path("checkpoints/fsrt/kp_detector.pt")
_WHERE = (
    "the official files are in the Google Drive folder linked from the README of "
    "github.com/andrerochow/fsrt; put them under checkpoints/fsrt/"
)


def _read(path: str | os.PathLike) -> Mapping[str, Any]:
    content = load_checkpoint(path, where=_WHERE)
    if not isinstance(content, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a dict checkpoint, found {type(content).__name__}")
    return content


def load_kp_detector(
    path: str | os.PathLike = DEFAULT_KP_DETECTOR, kp_detector: KPDetector | None = None
) -> KPDetector:
    """Load `kp_detector.pt` strictly into `kp_detector` (default: a new `KPDetector()`), in eval mode."""
    state = _read(path)
    if isinstance(state.get("kp_detector"), Mapping):  # a FOMM training checkpoint
        state = state["kp_detector"]
    kp_detector = KPDetector() if kp_detector is None else kp_detector
    load_strict(kp_detector, state, source=path, ignore=("jacobian.",))
    return kp_detector.eval()


def load_fsrt(model: FSRT, path: str | os.PathLike) -> dict[str, Any]:
    """Load encoder, decoder and expression encoder strictly; returns the file's other entries
    (optimiser and discriminator states, scalars) for a training resume."""
    content = _read(path)
    missing = [part for part in FSRT_PARTS if part not in content]
    if missing:
        found = ", ".join(list(content)[:6]) + (", ..." if len(content) > 6 else "")
        raise CheckpointMismatchError(f"{path}: not an FSRT checkpoint, no {', '.join(missing)} entry (found: {found})")
    for part in FSRT_PARTS:
        load_strict(getattr(model, part), content[part], source=f"{path} [{part}]")
    return {key: value for key, value in content.items() if key not in FSRT_PARTS}


def save_fsrt(path: str | os.PathLike, model: FSRT, **entries) -> Path:
    """Write the official layout atomically: scalar `entries` first, then the three FSRT state dicts,
    then the state dicts of any module/optimiser `entries` (e.g. optimizer=..., discriminator=...)."""
    stateful = {key: value for key, value in entries.items() if hasattr(value, "state_dict")}
    content = {key: value for key, value in entries.items() if key not in stateful}
    for part in FSRT_PARTS:
        content[part] = unwrap(getattr(model, part)).state_dict()
    for key, value in stateful.items():
        content[key] = unwrap(value).state_dict()
    return save_checkpoint(content, path)


def load_pretrained(
    config: str | os.PathLike | Mapping[str, Any],
    checkpoint: str | os.PathLike,
    kp_detector: str | os.PathLike = DEFAULT_KP_DETECTOR,
    device="cpu",
) -> tuple[KPDetector, FSRT]:
    """Build the detector and FSRT from a config (path, bundled name or dict), load both
    checkpoints strictly and return them in eval mode on `device`."""
    model = FSRT(**load_config(config)["model"])
    load_fsrt(model, checkpoint)
    detector = load_kp_detector(kp_detector)
    return detector.to(device), model.to(device).eval()
