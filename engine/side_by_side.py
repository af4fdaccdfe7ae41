"""Independent per-source jobs run two at a time, their results taken in a fixed order.

Enforcement and features work source by source, and most of each source's work is Polars
and numpy calls that release the GIL but use one core (filters, gathers, a sorted
group_by): run one after the other, a refresh left the second core idle for most of those
stages. Here the jobs run on two threads, the heaviest first so the small ones fill the
other core instead of queueing behind it, and the results are handed back in the caller's
order: what a stage builds from them (its frames, its lineage, its log lines) is what the
sequential loop built. A failure is the first failing job in that order, as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

# Two cores on the project's machine; a source's own Polars calls may use both as well.
THREADS = 2


def run_in_order(
    jobs: Mapping[K, Callable[[], T]],
    weight: Callable[[K], int],
    *,
    threads: int = THREADS,
) -> dict[K, T]:
    """Every job's result, keyed and ordered as `jobs`. `weight(name)` (rows, say) orders
    the start: heaviest first. `threads <= 1` or a single job: one after the other, here."""
    if threads <= 1 or len(jobs) <= 1:
        return {name: job() for name, job in jobs.items()}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgov-side-by-side") as pool:
        started: dict[K, Future[T]] = {
            name: pool.submit(jobs[name]) for name in sorted(jobs, key=weight, reverse=True)
        }
        try:
            return {name: started[name].result() for name in jobs}
        except BaseException:
            for future in started.values():
                future.cancel()
            raise
