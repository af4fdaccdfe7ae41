"""Per-source jobs run two at a time (engine/side_by_side.py): the results come back in the
caller's order whatever order the jobs finish in, the heaviest jobs start first, and a
failure is the first failing job in the caller's order."""

from __future__ import annotations

import threading

import pytest

from engine.side_by_side import run_in_order


def test_results_come_in_the_callers_order_not_the_finishing_order() -> None:
    slow_may_finish = threading.Event()

    def slow() -> str:
        assert slow_may_finish.wait(5)
        return "slow"

    def fast() -> str:
        slow_may_finish.set()  # runs while `slow` waits: two threads
        return "fast"

    got = run_in_order({"a": slow, "b": fast}, lambda name: 0)
    assert list(got.items()) == [("a", "slow"), ("b", "fast")]


def test_the_heaviest_jobs_start_first() -> None:
    started: list[str] = []
    lock = threading.Lock()

    def job(name: str) -> str:
        with lock:
            started.append(name)
        return name

    weights = {"small": 1, "large": 100, "medium": 10, "tiny": 0}
    jobs = {n: (lambda n=n: job(n)) for n in weights}
    got = run_in_order(jobs, weights.__getitem__, threads=1)
    assert list(got) == list(weights)  # one thread: in the caller's order, here
    started.clear()
    run_in_order(jobs, weights.__getitem__)
    assert set(started[:2]) == {"large", "medium"}
    assert set(started) == set(weights)


def test_the_first_failure_in_the_callers_order_is_raised() -> None:
    later_failed = threading.Event()

    def first() -> str:
        assert later_failed.wait(5)  # the later job has failed already
        raise ValueError("first")

    def later() -> str:
        later_failed.set()
        raise KeyError("later")

    with pytest.raises(ValueError, match="first"):
        run_in_order({"a": first, "b": later}, lambda name: 0)
