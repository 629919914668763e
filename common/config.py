"""YAML configs validated against a schema of defaults: unknown keys are errors."""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.errors import InputError


def closest(name: str, choices) -> str:
    """' (did you mean X?)' for the nearest valid name, or ''."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def read_yaml(path: str | os.PathLike) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be a mapping, found {type(data).__name__}")
    return data


def merge_config(
    defaults: Mapping[str, Any], given: Mapping[str, Any], source: str = "config", open_keys: tuple[str, ...] = ()
) -> dict:
    """Recursively overlay `given` on `defaults`, rejecting keys the defaults do not define.

    Sections named in `open_keys` (dotted paths) accept any key, for free-form maps such as
    a dict of loss weights keyed by layer.
    """

    def merge(base, new, where):
        out = copy.deepcopy(dict(base))
        for key, value in new.items():
            path = f"{where}.{key}" if where else key
            if key not in base:
                raise InputError(f"{source}: unknown key '{path}'{closest(key, base)}")
            if isinstance(base[key], Mapping) and path not in open_keys:
                if not isinstance(value, Mapping):
                    raise InputError(f"{source}: '{path}' must be a mapping")
                out[key] = merge(base[key], value, path)
            else:
                out[key] = copy.deepcopy(value)
        return out

    return merge(defaults, given, "")


def load_config(path: str | os.PathLike, defaults: Mapping[str, Any], **kwargs) -> dict:
    """Read a YAML file and validate it against `defaults` (see `merge_config`)."""
    return merge_config(defaults, read_yaml(path), source=str(path), **kwargs)
