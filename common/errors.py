"""User-facing errors and the CLI guard that turns them into one-line messages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class InputError(ValueError):
    """Bad user input (missing file, unreadable video, wrong shape...).

    The message is a single line that names the offending file or value; CLIs print it
    without a traceback.
    """


class NoFaceError(InputError):
    """No face was found in an image."""


class CheckpointMismatchError(InputError):
    """A checkpoint does not match the model it is loaded into."""


def require_at_least_one(args, *flags: str) -> None:
    """An InputError `--FLAG must be at least 1, got N` for the first of `flags` (attribute names of
    the parsed `args`) that is set (not None) and below 1."""
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag} must be at least 1, got {value}")


def cli_main(main: Callable[..., int | None]) -> Callable[..., int | None]:
    """Wrap a CLI entry point: an `InputError` becomes `error: <message>` on stderr and exit 2.

    Anything else still raises with a traceback, because it is a bug, not bad input.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as exc:
            message = " ".join(str(exc).split("\n")[0].split())
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
