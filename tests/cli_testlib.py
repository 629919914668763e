"""What command-line tests share: the check that bad input is one line on stderr and exit 2."""

from __future__ import annotations

import pytest


def one_line_error(capsys, main, argv, *needles: str) -> str:
    """Run `main(argv)`, expect exit 2 with a single `error: ...` line on stderr that contains every
    needle; returns that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err.strip()
