"""The work after a k-means fit, started for a candidate while its stability is checked.

    early = Early(strategy, x, k_min, finish)   # strategy.ahead = early
    with early.window():
        strategy.fit_matrix(x)
        after = early.taken(strategy.k_)        # AfterFit, or None: do the usual path

Model selection checks candidates' stability in order of their silhouette with bootstrap
refits, and the first that passes is chosen. The refits hold the GIL on one core (a quarter
of a second at 1M customers). What follows the fit depends on the chosen model alone: the
final Lloyd run on the whole fitting sample, labelling every row, merging clusters below k,
canonical labels and whatever `finish` makes of them (the profiles but their per-persona
stability). Most of it is GIL-free (Lloyd, predict, Polars group-bys), so it runs on another
thread meanwhile, for the candidate being checked; a candidate that fails its check hands
over to the next (its work stops at its next step). When the chosen k is not the last one
checked (no candidate passed: the most stable is kept), the caller runs the usual path.
Each step is the usual path's own call on the same inputs, so the numbers are the same
either way (tested).

Measured on the 1M EU-DE marketing refresh (2026-12-02, Intel Xeon, 2 cores): the sample's
best-silhouette k fails its check and the next passes; the segment stage 0.665 -> 0.61 s,
same digests. Started for the best-scoring candidate alone, the work was always dropped
there and the stage was 0.05 s slower (the early work competes for the GIL with the refits).

BLAS thread counts are process-wide and scikit-learn sets and restores them around its
k-means steps; two threads doing so at once could restore a stale count. `window()` holds
BLAS at one thread (what every fit here runs with) until the early work has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from engine.segment.gates import Merge, canonical_labels, merge_small
from engine.segment.kmeans import KMeansStrategy
from engine.segment.threads import single_thread


@dataclass(frozen=True)
class AfterFit:
    k: int
    model: KMeans
    merges: list[Merge]
    labels: np.ndarray  # canonical, after merging
    finished: Any  # what `finish(labels)` returned


class Early:
    """Strategy.ahead for one fit: see the module docstring."""

    def __init__(
        self,
        strategy: KMeansStrategy,
        x: np.ndarray,
        k_min: int,
        finish: Callable[[np.ndarray], Any],
    ) -> None:
        self.strategy, self.x, self.k_min, self.finish = strategy, x, k_min, finish
        self.k: int | None = None
        self._job: Future[AfterFit | None] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, k: int, final: Callable[[int], KMeans]) -> Callable[[], KMeans]:
        """Candidate k's check starts: its work replaces any earlier candidate's (which
        stops at its next step: that candidate failed its check)."""
        self.k = k
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pgov-ahead")
        job = self._job = self._pool.submit(self._run, k, final)
        return lambda: _made(job).model

    def _run(self, k: int, final: Callable[[int], KMeans]) -> AfterFit | None:
        model = final(k)
        if self.k != k:
            return None
        raw = self.strategy.predict_with(model, self.x)
        if self.k != k:
            return None
        merged, merges = merge_small(raw, self.x, self.k_min, to_space=self.strategy.transform)
        labels = canonical_labels(merged)
        if self.k != k:
            return None
        return AfterFit(k, model, merges, labels, self.finish(labels))

    @contextmanager
    def window(self) -> Iterator[None]:
        """BLAS at one thread from the fit until the early work has ended (however)."""
        with single_thread("blas"):
            try:
                yield
            finally:
                self._settle()

    def taken(self, k: int) -> AfterFit | None:
        """The early work when it was made for `k` (its error, if it failed, raised here as
        the usual path would have raised it); None otherwise."""
        if self._job is None or self.k != k:
            return None
        return _made(self._job)

    def _settle(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a dropped job ends before BLAS is restored


def _made(job: Future[AfterFit | None]) -> AfterFit:
    after = job.result()
    # Only a job whose candidate was replaced stops early, and its result is never asked for.
    assert after is not None
    return after
