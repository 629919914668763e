"""Run one measurement in a fresh spawned process, so that its resident peak is its own (a process's
ru_maxrss never goes down). The benches of several packages time their stages this way."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
from collections.abc import Callable
from pathlib import Path

Measure = Callable[[str, argparse.Namespace, dict], dict]


def _child(measure: Measure, name: str, options: dict, state: dict, connection) -> None:
    with contextlib.suppress(OSError):  # if memory runs out, the kernel kills this process first
        Path("/proc/self/oom_score_adj").write_text("1000")
    try:
        connection.send(("ok", measure(name, argparse.Namespace(**options), state)))
    except Exception as exc:  # reported as the stage's result; the other stages still run
        connection.send(("error", f"{type(exc).__name__}: {exc}".split("\n")[0]))


def run_isolated(
    measure: Measure, name: str, opt: argparse.Namespace, state: dict | None = None, in_process: bool = False
) -> dict:
    """`measure(name, opt, state)` in a fresh spawned process (in this one with `in_process`); an error
    or a killed child gives {"error": ...}. `measure` must be a module-level function (it is pickled)."""
    state = dict(state or {})
    if in_process:
        return measure(name, opt, state)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(measure, name, vars(opt), state, sender))
    process.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        status, payload = "error", "the stage's process died (out of memory?)"
    process.join()
    return payload if status == "ok" else {"error": payload}
