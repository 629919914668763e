"""common.jobs: results in item order, bad inputs collected, a dead worker is an error."""

import os

import pytest

from common.errors import InputError
from common.jobs import run_jobs


def square_or_refuse(item):
    if item < 0:
        raise InputError(f"item {item}: negative")
    return item * item, []


def die_on_three(item):
    if item == 3:
        os._exit(1)  # as a worker killed by the OOM killer
    return item, []


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_order_and_failures_listed(workers):
    results, failures = run_jobs(square_or_refuse, [3, -1, 2, -5], workers, "squares")
    assert results == [9, None, 4, None]
    assert failures == ["item -1: negative", "item -5: negative"]


def test_a_dead_worker_stops_the_run_instead_of_hanging():
    with pytest.raises(RuntimeError, match="numbers: a worker process died"):
        run_jobs(die_on_three, [1, 2, 3, 4], 2, "numbers")


def test_workers_must_be_positive():
    with pytest.raises(InputError, match="--workers must be >= 1, got 0"):
        run_jobs(square_or_refuse, [1], 0, "squares")
