"""Progress bars and logging: one look for every long-running command."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs) -> Iterable[T]:
    """A tqdm progress bar on stderr; silent when stderr is not a terminal unless forced.

    `disable=False` forces it on (tqdm's own semantics); `disable=None` follows the terminal.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", None)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, **kwargs)


def get_logger(name: str) -> logging.Logger:
    """A logger that prints `name: message` lines to stderr once configured."""
    logger = logging.getLogger(name)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger
