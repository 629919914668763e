"""common.errors: the one-line CLI guard and the shared "at least 1" check of count flags."""

from __future__ import annotations

import argparse

import pytest

from common.errors import InputError, cli_main, require_at_least_one


def test_the_first_count_flag_below_one_is_named():
    args = argparse.Namespace(steps=3, detector_steps=0, repeats=-2, threads=None)
    require_at_least_one(args, "steps", "threads")  # set and positive, or not set: accepted
    with pytest.raises(InputError, match=r"^--detector_steps must be at least 1, got 0$"):
        require_at_least_one(args, "steps", "detector_steps", "repeats")


def test_cli_main_turns_an_input_error_into_one_line_and_exit_2(capsys):
    @cli_main
    def main():
        raise InputError("first line\n  second line")

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: first line\n"
