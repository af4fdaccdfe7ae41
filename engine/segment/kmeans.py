"""k-means: full KMeans on a deterministic sample, then `predict` on every row.

k is fixed or chosen in [k_min, k_max] by silhouette among stable candidates
(engine.segment.base). With a choice to make, candidates, silhouettes and bootstrap refits
run on the selection rows of the fitting sample (at most SELECTION_ROWS), and the chosen k
is refined on the whole fitting sample from the chosen candidate's centroids. Every fit on
more than RESTART_FROM rows runs its restarts on a subsample (engine.segment.restarts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Self

import numpy as np
from sklearn.cluster import KMeans

from engine.segment import restarts
from engine.segment.base import (
    KMEANS_N_INIT,
    BaseStrategy,
    candidate_silhouettes,
    scale_columns,
    selection_rows,
)
from engine.segment.lloyd import lloyd_from
from engine.segment.silhouette import Scored
from engine.segment.stability import run_parallel
from engine.segment.threads import threads_for

# (a candidate k whose check starts, the call making its final model) -> the call giving
# that model.
Ahead = Callable[[int, Callable[[int], KMeans]], Callable[[], KMeans]]


@dataclass
class KMeansStrategy(BaseStrategy):
    """Full KMeans on a deterministic sample, then `predict` on every row.

    k is chosen in [k_min, k_max] by silhouette among stable candidates unless k is fixed.
    """

    name: str = "kmeans"
    k: int | None = None
    k_min: int = 4
    k_max: int = 8
    n_init: int = KMEANS_N_INIT
    model_: KMeans | None = field(default=None, repr=False)
    k_: int = 0
    scores_: dict[int, float] = field(default_factory=dict)
    # The chosen candidate's labels of the selection rows (the gate's silhouette reuses its
    # score when the published personas are the same partition of those rows).
    selection_labels_: np.ndarray | None = field(default=None, repr=False)
    # ... and its silhouette's per-row cluster sums: the gate rescores the published personas
    # from them when they are a near copy of that partition on those rows.
    selection_scored_: Scored | None = field(default=None, repr=False)
    # k-means++ starts shared by fits of the same rows: the candidates, and the refits of
    # one resample at two k (engine.segment.restarts.Starts); clones share their parent's.
    starts: restarts.Starts = field(default_factory=restarts.Starts, repr=False, compare=False)
    # Told each candidate as its stability check starts, with the call that makes the model
    # it would become; returns the call that gives that model, should it be chosen
    # (engine.segment.ahead: the work after the fit starts beside the check).
    ahead: Ahead | None = field(default=None, repr=False, compare=False)
    _early: tuple[int, Callable[[], KMeans]] | None = field(default=None, repr=False, compare=False)
    _final: Callable[[int], KMeans] | None = field(default=None, repr=False, compare=False)

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        xs, w = self._sample(x, weights)
        self.mean_, self.scale_ = scale_columns(xs, w)
        z = self.transform(xs)
        ks = self._k_range(self.k, self.k_min, self.k_max, len(z))
        # With a k to choose, selection works on the selection rows (all rows when few).
        rows = selection_rows(len(z), self.seed) if len(ks) > 1 else np.arange(len(z))
        # All rows (a fixed k, as every refit has, or few rows): z itself rather than a copy.
        all_rows = len(rows) == len(z)
        zs, ws = (z, w) if all_rows else (z[rows], None if w is None else w[rows])

        def fit_k(k: int) -> KMeans:
            with threads_for(len(zs)):
                return restarts.restarted_kmeans(zs, k, self.n_init, self.seed, ws, self.starts)

        if restarts.restart_rows(len(zs)) < len(zs):
            # Subsampled candidates hold the GIL most of the time (two threads measured no
            # faster than one): one after another, largest k first, so the smaller k of the
            # same k-means++ trial count take their starts from it (restarts.Starts).
            fits = {k: fit_k(k) for k in sorted(ks, reverse=True)}
            models = {k: fits[k] for k in ks}  # every later step sees them in k order
        else:
            # Candidate k are independent fits: the thread pool runs them side by side.
            fitted = run_parallel([partial(fit_k, k) for k in ks])
            models = dict(zip(ks, fitted, strict=True))
        labels = {k: np.asarray(m.labels_, dtype=np.int64) for k, m in models.items()}
        kept: dict[int, Scored] = {}
        self.scores_ = (
            candidate_silhouettes(zs, labels, self.seed, kept) if len(ks) > 1 else {ks[0]: 0.0}
        )
        # Best silhouette first; ties keep the smaller k (simpler model).
        order = sorted(ks, key=lambda k: (-self.scores_[k], k))

        def final(k: int) -> KMeans:
            if len(rows) == len(z):
                return models[k]
            # The chosen k on the whole fitting sample, from the chosen candidate's centroids:
            # the restarts already found the basin, Lloyd iterations refine it on more rows.
            with threads_for(len(z)):
                return lloyd_from(z, models[k].cluster_centers_, self.seed, w)

        self._early, self._final = None, final
        try:
            self.k_ = self._choose(order, labels, xs if all_rows else xs[rows])
        finally:
            self._final = None
        self.selection_labels_ = labels[self.k_]
        self.selection_scored_ = kept.get(self.k_)
        early = self._early
        self.model_ = early[1]() if early is not None and early[0] == self.k_ else final(self.k_)
        return self

    def _checking(self, k: int) -> None:
        if self.ahead is not None and self._final is not None:
            self._early = (k, self.ahead(k, self._final))

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("KMeansStrategy is not fitted")
        return self.predict_with(self.model_, x)

    def predict_with(self, model: KMeans, x: np.ndarray) -> np.ndarray:
        """Labels of the rows `x` (raw units) by `model`, a model of this fit's scaled space."""
        with threads_for(len(x)):
            return np.asarray(model.predict(self.transform(x)), dtype=np.int64)

    def fit_threads(self, n_rows: int) -> int:
        # A fit that restarts on a subsample holds the GIL most of its time (k-means++ in
        # Python, short Lloyd runs): such fits run one after another (engine.segment.stability).
        return 1 if restarts.restart_rows(n_rows) < n_rows else super().fit_threads(n_rows)

    def refit_clone(self, seed: int) -> KMeansStrategy:
        return self._clone_at(self.k_, seed)

    def _clone_at(self, k: int, seed: int) -> KMeansStrategy:
        return KMeansStrategy(
            sample_size=self.sample_size, seed=seed, k=k, n_init=self.n_init, starts=self.starts
        )

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "k": self.k_,
            "k_fixed": self.k,
            "k_range": [self.k_min, self.k_max],
            "k_scores": {str(k): round(v, 6) for k, v in sorted(self.scores_.items())},
            **self._selection_params(),
            "n_init": self.n_init,
            # Fits on more than restart_from rows (candidates, refits) run their n_init
            # restarts on restart_rows of their rows, then Lloyd on all (segment.restarts).
            "restart_rows": restarts.RESTART_ROWS,
            "restart_from": restarts.RESTART_FROM,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
