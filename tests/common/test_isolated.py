"""common.isolated runs a measurement in a fresh process and reports its result or its error."""

from __future__ import annotations

import argparse
import os

from common.isolated import run_isolated


def measure(name: str, opt: argparse.Namespace, state: dict) -> dict:
    if name == "fail":
        raise ValueError("bad stage\nsecond line")
    return {"name": name, "x": opt.x, "state": state, "pid": os.getpid()}


def test_result_comes_back_from_another_process():
    result = run_isolated(measure, "stage", argparse.Namespace(x=3), {"k": 1})
    assert result["name"] == "stage" and result["x"] == 3 and result["state"] == {"k": 1}
    assert result["pid"] != os.getpid()
    assert run_isolated(measure, "stage", argparse.Namespace(x=3), in_process=True)["pid"] == os.getpid()


def test_an_error_is_one_line():
    assert run_isolated(measure, "fail", argparse.Namespace(x=0)) == {"error": "ValueError: bad stage"}
