"""Where tests that run an original repository beside ours find it.

$FR_ORIGINALS names a folder holding git repositories of the originals as `<owner>+<name>/repo`
(bare or not), e.g. `MoustafaMeshry+lsr/repo`. Without it, or without that repository, those tests
skip: CI has no originals, and nothing in the package needs them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ORIGINALS_ENV = "FR_ORIGINALS"


def original_git(owner_name: str) -> Path:
    """The git repository of `owner/name`, or a pytest skip that says how to provide it."""
    folder = os.environ.get(ORIGINALS_ENV)
    repo = Path(folder) / owner_name.replace("/", "+") / "repo" if folder else None
    if repo is None or not repo.exists():
        pytest.skip(f"no git repository of {owner_name} (set {ORIGINALS_ENV}, see tests/originals.py)")
    return repo
