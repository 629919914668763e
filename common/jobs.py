"""Run one step over many inputs: a process pool, a progress bar, and the failures (bad inputs)
collected and listed at the end instead of stopping the run."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from common.errors import InputError
from common.progress import get_logger, progress

log = get_logger("jobs")


def _guarded(job: tuple[Callable, object]) -> tuple[object, list[str]]:
    """Run one item; its InputError (a bad input) is returned as a failure, not raised."""
    work, item = job
    try:
        return work(item)
    except InputError as exc:
        return None, [str(exc)]


def run_jobs(
    work: Callable, items: Sequence, workers: int, desc: str, initializer: Callable | None = None, initargs: tuple = ()
) -> tuple[list, list[str]]:
    """work(item) -> (result, [failure messages]) for every item, in `workers` processes (1: in
    this process). Returns the results in item order and all failures; logs the failures.

    `work` and `initializer` must be importable module-level functions: the pool spawns its
    processes, because a fork would copy torch's threads and any detector state of the parent.
    A worker that dies (killed, out of memory) stops the run with an error instead of leaving
    it waiting for results that never come, as `multiprocessing.Pool` would.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    jobs = [(work, item) for item in items]
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        outcomes = list(progress(map(_guarded, jobs), desc=desc, total=len(jobs)))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer, initargs) as pool:
            try:
                outcomes = list(progress(pool.map(_guarded, jobs), desc=desc, total=len(jobs)))
            except BrokenProcessPool:
                raise RuntimeError(
                    f"{desc}: a worker process died (killed or out of memory); "
                    "rerun, with fewer --workers if memory is short"
                ) from None
    results = [result for result, _ in outcomes]
    failures = [message for _, messages in outcomes for message in messages]
    report_failures(failures)
    return results, failures


def report_failures(failures: Iterable[str]) -> None:
    failures = list(failures)
    if failures:
        log.warning("%d skipped:\n  %s", len(failures), "\n  ".join(failures))
