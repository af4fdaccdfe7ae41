"""What every segmentation strategy shares: the interface, the fitting sample, model selection.

    feature_matrix(features, columns) -> float64 matrix of the cluster columns
    informative(features, columns) -> (kept, {dropped: why})
    sample_indices(n, size, seed) -> the deterministic fitting sample
    selection_rows(n, seed) -> the rows of that sample model selection and stability use
    BaseStrategy._choose(order, labels, xs) -> k: stability-aware model selection

The strategies themselves live in engine.segment.kmeans, .mixture and .rules;
engine.segment.strategies picks one from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, Self

import numpy as np
import polars as pl

from engine.errors import BadInputError
from engine.features import FeatureFrame
from engine.segment.silhouette import Scored, scored
from engine.segment.stability import FIT_THREADS, StabilityCheck
from engine.segment.threads import threads_for

# Silhouette is O(n^2): k selection scores it on at most this many rows of the sample.
SILHOUETTE_ROWS = 5_000
# KMeans restarts: fixed so the result depends on the seed only.
KMEANS_N_INIT = 8
# Stability-aware k selection: the best candidates by the strategy's own score (silhouette,
# BIC) are checked in that order with bootstrap refits, and the first whose every cluster
# has mean Jaccard >= the stability threshold wins. At most this many are checked.
STABILITY_CANDIDATES = 3
# Model selection (candidate fits, silhouettes, bootstrap refits) and the stability gates
# work on at most this many rows of the fitting sample; the chosen k is then fitted on the
# whole sample from the chosen candidate's centroids. Below it nothing changes. Why 20,000
# and what it does to stability: docs/segmentation.md, "Selection rows".
SELECTION_ROWS = 20_000


def feature_matrix(features: FeatureFrame, columns: list[str] | None = None) -> np.ndarray:
    cols = columns if columns is not None else features.features
    missing = [c for c in cols if c not in features.frame.columns]
    if missing:
        raise BadInputError(f"segment: feature column(s) {', '.join(missing)} not in frame")
    if not cols:
        unavailable = "; ".join(f"{n}: {why}" for n, why in features.unavailable.items())
        raise BadInputError(
            "segment: expected at least one feature with role 'cluster' available under this "
            f"purpose; found none (declared but unavailable: {unavailable or 'none declared'})"
        )
    return features.frame.select(cols).to_numpy().astype(np.float64, copy=False)


# Relative near-constant cut: a column whose spread is float rounding around its level (a
# coefficient of variation ~1e-9 from summing cents) carries no information, however far
# its absolute std is above zero; clustering on it splits noise into personas.
NEAR_CONSTANT_RTOL = 1e-9


def informative(features: FeatureFrame, columns: list[str]) -> tuple[list[str], dict[str, str]]:
    """The columns worth clustering on, and why each of the others was dropped."""
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for c in columns:
        col = features.frame[c].cast(pl.Float64)
        mean = float(col.mean() or 0.0)  # type: ignore[arg-type]
        std = float(col.std(ddof=0) or 0.0)  # type: ignore[arg-type]
        if not _two_values(col) and col.n_unique() < 2:
            dropped[c] = "constant: a single value for every customer"
        elif std <= NEAR_CONSTANT_RTOL * max(1.0, abs(mean)):
            dropped[c] = f"near-constant: std {std:.3g} <= {NEAR_CONSTANT_RTOL:g} x max(1, |mean|)"
        else:
            kept.append(c)
    return kept, dropped


def _two_values(col: pl.Series) -> bool:
    """True when the column surely holds two distinct values: a minimum below its maximum
    (a comparison pass, where n_unique hashes every value). False means: ask n_unique."""
    low, high = col.min(), col.max()
    return low is not None and high is not None and bool(low < high)  # type: ignore[operator]


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A deterministic, sorted sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def selection_rows(n: int, seed: int) -> np.ndarray:
    """Positions, within a fitting sample of n rows, of the rows selection and gates use."""
    return sample_indices(n, SELECTION_ROWS, seed)


def scale_columns(
    x: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    # Weighted by multiplicity: the same mean and std as the rows repeated `weights` times.
    mean = np.average(x, axis=0, weights=weights)
    # (x - mean) ** 2 squared in place (the same products, one temporary instead of two: a
    # bootstrap refit's fresh 2 MB arrays cost more in page faults than in arithmetic).
    sq = x - mean
    sq *= sq
    std = np.sqrt(np.average(sq, axis=0, weights=weights))
    # A constant column carries no information; scale 1 keeps it at zero instead of NaN.
    return mean, np.where(std > NEAR_CONSTANT_RTOL * np.maximum(1.0, np.abs(mean)), std, 1.0)


def candidate_silhouettes(
    z: np.ndarray,
    labels: dict[int, np.ndarray],
    seed: int,
    kept: dict[int, Scored] | None = None,
) -> dict[int, float]:
    """Silhouette of each candidate's labels on the same rows, one distance pass for all.
    `kept` receives each scored candidate's per-row sums (silhouette.rescore reuses them)."""
    out = {k: -1.0 for k, lab in labels.items() if not 2 <= len(np.unique(lab)) < len(lab)}
    rest = {k: lab for k, lab in labels.items() if k not in out}
    if rest:
        size = min(SILHOUETTE_ROWS, len(z))
        # One thread, as the gate's silhouette: BLAS threads on a few thousand rows cost more
        # CPU than they save (measured 0.42 -> 0.20 CPU s for five candidates at load 10).
        with threads_for(size):
            done = scored(z, rest, size, seed)
        out |= {k: s.value for k, s in done.items()}
        if kept is not None:
            kept.update(done)
    return out


def repeat_rows(x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Rows repeated by multiplicity, for fits that take no weights (the resample itself)."""
    return x if weights is None else np.repeat(x, weights, axis=0)


class Strategy(Protocol):
    name: str

    def fit(self, features: FeatureFrame) -> Self: ...

    def assign(self, features: FeatureFrame) -> np.ndarray: ...

    def columns(self, features: FeatureFrame) -> list[str]: ...

    # `weights`: row multiplicities (a bootstrap resample as distinct rows + counts).
    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self: ...

    def predict_matrix(self, x: np.ndarray) -> np.ndarray: ...

    def transform(self, x: np.ndarray) -> np.ndarray: ...

    def refit_clone(self, seed: int) -> Strategy: ...

    def fit_threads(self, n_rows: int) -> int: ...

    def params(self) -> dict[str, Any]: ...

    # Bootstrap refit labels of the fitting sample at the chosen k, from model selection
    # (see engine.segment.stability); the gates reuse them. Empty when k was not checked.
    boot_labels_: list[np.ndarray]


@dataclass
class BaseStrategy:
    sample_size: int = 50_000
    seed: int = 7
    # Bootstrap refits per checked candidate k (0: choose by score alone) and the per-cluster
    # mean Jaccard every cluster must reach (the `jaccard` gate's threshold).
    stability_runs: int = 0
    stability_threshold: float = 0.75
    stability_candidates: int = STABILITY_CANDIDATES
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)
    stability_: dict[int, float] = field(default_factory=dict)
    k_choice_: str = ""
    boot_labels_: list[np.ndarray] = field(default_factory=list, repr=False)
    bounded_: list[int] = field(default_factory=list)
    # Rows of the fitting sample model selection worked on (0: no selection was made).
    selection_size_: int = 0

    def columns(self, features: FeatureFrame) -> list[str]:
        return list(features.features)

    def fit_threads(self, n_rows: int) -> int:
        """Fits of `n_rows` rows of this strategy that run side by side (engine.segment.
        stability.run_parallel caps it at FIT_THREADS): fits that release the GIL gain."""
        return FIT_THREADS

    def fit(self, features: FeatureFrame) -> Self:
        return self.fit_matrix(feature_matrix(features, self.columns(features)))

    def _sample(self, x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, Any]:
        if len(x) <= self.sample_size:
            # Every row, in order (what x[sample_indices(...)] would copy): no strategy writes
            # into its sample, and a bootstrap refit's 12,600 rows need no 2 MB copy.
            return x, weights
        idx = sample_indices(len(x), self.sample_size, self.seed)
        return x[idx], None if weights is None else weights[idx]

    def assign(self, features: FeatureFrame) -> np.ndarray:
        return self.predict_matrix(feature_matrix(features, self.columns(features)))

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("strategy is not fitted")
        # In place after the subtraction: the same numbers as (x - mean) / scale, one array.
        z = x - self.mean_
        z /= self.scale_
        return z

    def fit_matrix(
        self, x: np.ndarray, weights: np.ndarray | None = None
    ) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _k_range(self, k: int | None, k_min: int, k_max: int, n: int) -> list[int]:
        if k is not None:
            return [max(1, min(k, n))]
        hi = max(2, min(k_max, n - 1))
        lo = max(2, min(k_min, hi))
        return list(range(lo, hi + 1))

    def _clone_at(self, k: int, seed: int) -> Strategy:  # pragma: no cover - overridden
        raise NotImplementedError

    def _choose(self, order: list[int], labels: dict[int, np.ndarray], xs: np.ndarray) -> int:
        """The first k in `order` (best score first) whose clusters are all stable.

        Each checked k gets `stability_runs` bootstrap refits of `xs` (the selection rows of
        the fitting sample, raw units; `labels[k]` are candidate k's labels of those rows);
        its stability is the smallest per-cluster mean Jaccard. A candidate is dropped as
        soon as its refits so far prove it cannot reach the threshold (its recorded
        stability is then that upper bound, listed in `k_stability_bounded`). If none of
        the first `stability_candidates` passes, the dropped ones are completed and the
        most stable is returned (and the jaccard gate will say so). The chosen k's refits
        are kept for the gates.
        """
        self.stability_ = {}
        self.bounded_ = []
        self.boot_labels_ = []
        self.selection_size_ = len(xs) if len(order) > 1 else 0
        if self.stability_runs <= 0 or len(order) == 1:
            self.k_choice_ = "fixed k" if len(order) == 1 else "best score"
            return order[0]
        checks: dict[int, StabilityCheck] = {}
        for k in order[: max(1, self.stability_candidates)]:
            check = StabilityCheck(
                partial(self._clone_at, k), xs, labels[k], self.stability_runs, self.seed
            )
            checks[k] = check
            self._checking(k)
            if check.can_pass(self.stability_threshold):
                self.stability_[k] = check.stability()
                self.boot_labels_ = check.refits
                self.k_choice_ = "best score with every cluster stable"
                return k
            if len(check.refits) < self.stability_runs:
                self.bounded_.append(k)
            self.stability_[k] = check.upper_bound()
        # Nobody passed: exact figures for all, then the most stable (first on ties).
        self.bounded_ = []
        best: tuple[float, int] | None = None
        for k, check in checks.items():
            self.stability_[k] = check.stability()
            if best is None or self.stability_[k] > best[0]:
                best = (self.stability_[k], k)
        assert best is not None
        self.boot_labels_ = checks[best[1]].refits
        self.k_choice_ = "no candidate stable: the most stable one"
        return best[1]

    def _checking(self, k: int) -> None:
        """Candidate k's stability check starts (it is chosen if it passes)."""

    def _selection_params(self) -> dict[str, Any]:
        return {
            "k_choice": self.k_choice_,
            "k_stability": {str(k): round(v, 6) for k, v in sorted(self.stability_.items())},
            # Candidates dropped early: their k_stability is an upper bound below threshold.
            "k_stability_bounded": sorted(self.bounded_),
            "stability_runs": self.stability_runs,
            "stability_candidates": self.stability_candidates,
            "selection_rows": self.selection_size_,
        }
