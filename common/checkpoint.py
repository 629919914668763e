"""Checkpoint files: atomic writes, safe loads, strict loading with a readable report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.errors import CheckpointMismatchError, InputError


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` to a temp file in the target folder, then rename: never a half-written file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def not_found(path: str | os.PathLike | None, what: str, where: str) -> InputError:
    """The one error every loader gives for an absent weights file: the path, what the file is
    and where its official copy comes from (`where`, e.g. "the official files are ...; put them
    under checkpoints/fsrt/"). A `None` path means none was given."""
    return InputError(f"{'no ' + what + ' given' if path is None else f'{path}: {what} not found'}; {where}")


def require_file(path: str | os.PathLike | None, what: str, where: str) -> Path:
    """`path` as a Path when it names a file, else the `not_found` error."""
    if path is None or not Path(path).is_file():
        raise not_found(path, what, where)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike,
    map_location="cpu",
    trust_pickle: bool = False,
    where: str = "pass the path of an existing file",
) -> Any:
    """Load a torch checkpoint with `weights_only=True`; a missing file is `not_found(..., where)`.

    Some official files pickle whole objects (optimisers, argparse namespaces); loading those
    runs arbitrary code, so it needs the explicit `trust_pickle=True`, which a one-line error
    suggests when the safe load refuses.
    """
    import pickle

    import torch

    path = require_file(path, "checkpoint file", where)
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if not trust_pickle and "Unsupported global" in str(exc):
            raise InputError(
                f"{path}: holds pickled objects that weights_only loading refuses; "
                "pass trust_pickle=True (CLI: --trust_pickle) only if you trust this file"
            ) from None
        raise InputError(f"{path}: {_not_a_checkpoint(path)}") from None
    except (RuntimeError, EOFError, OSError, ValueError):
        raise InputError(f"{path}: {_not_a_checkpoint(path)}") from None


def _not_a_checkpoint(path: Path) -> str:
    """What an unreadable file is not, from its first bytes (torch's own messages advise
    weights_only=False, which cannot help a file that is not a checkpoint)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "a damaged or truncated torch checkpoint (its zip archive cannot be read)"
    if head[:1] == b"\x80":
        return "a damaged or truncated torch checkpoint (its pickle cannot be read)"
    return "not a torch checkpoint (neither torch.save's zip format nor a legacy pickle)"


def load_state_dict_file(path: str | os.PathLike, key: str | None = None, **kwargs) -> dict:
    """Load a file that holds a state dict, optionally nested under `key` (e.g. 'model')."""
    obj = load_checkpoint(path, **kwargs)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            raise InputError(f"{path}: no '{key}' entry in this checkpoint")
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise InputError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return dict(obj)


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict:
    """Remove a DataParallel/DDP `module.` prefix when every key carries it."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def mismatch_report(expected: Mapping[str, Any], given: Mapping[str, Any], limit: int = 8) -> str:
    """One line listing missing, unexpected and mis-shaped keys (empty when they match)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(expected[k].shape)
    ]

    def part(name, items):
        more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
        return f"{len(items)} {name}: " + ", ".join(items[:limit]) + more

    parts = [part(n, i) for n, i in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if i]
    return "; ".join(parts)


def load_strict(
    model, state_dict: Mapping[str, Any], source: str | os.PathLike = "state dict", ignore: tuple[str, ...] = ()
) -> None:
    """`model.load_state_dict(strict=True)` with a one-line report instead of torch's traceback.

    `ignore` lists key prefixes dropped knowingly (e.g. FOMM's `jacobian.` heads).
    """
    state_dict = strip_prefix(state_dict)
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(ignore)} if ignore else state_dict
    report = mismatch_report(model.state_dict(), state_dict)
    if report:
        raise CheckpointMismatchError(f"{source}: does not match {type(model).__name__}: {report}")
    model.load_state_dict(state_dict, strict=True)
