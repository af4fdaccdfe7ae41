"""Segmentation strategies behind one scikit-learn-style interface.

    strategy.fit(features) -> strategy
    strategy.assign(features) -> np.ndarray of int labels (one per row of features.frame)

Each strategy standardises inside itself (the FeatureFrame stays in natural units), fits on a
deterministic sample (rows are sorted by token, the sample is drawn with a fixed seed) and
then assigns every row. Same input -> identical labels.

The matrix methods (`fit_matrix`, `predict_matrix`, `transform`) exist so the gates can refit
on bootstrap samples without rebuilding frames; `refit_clone()` returns an unfitted copy with
the chosen k fixed (clusterboot refits at the same k).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol, Self

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from engine.config import SegmentationSpec
from engine.errors import BadInputError
from engine.features import FeatureFrame
from engine.segment.silhouette import silhouettes
from engine.segment.stability import StabilityCheck, run_parallel

# Silhouette is O(n^2): k selection scores it on at most this many rows of the sample.
SILHOUETTE_ROWS = 5_000
# KMeans restarts: fixed so the result depends on the seed only.
KMEANS_N_INIT = 8
# Stability-aware k selection: the best candidates by the strategy's own score (silhouette,
# BIC) are checked in that order with bootstrap refits, and the first whose every cluster
# has mean Jaccard >= the stability threshold wins. At most this many are checked.
STABILITY_CANDIDATES = 3


# Below this many rows (so: every fit on the default 50k sample), OpenMP threads cost more than
# they save when other processes share the cores: measured on a busy 2-core machine, a
# 1,500-row KMeans fit took 11 s threaded vs 0.08 s single-threaded, a 50k x 20 fit 19 s vs
# 3.1 s. Assigning millions of rows keeps the threads.
SINGLE_THREAD_ROWS = 100_000


def threads_for(n_rows: int) -> AbstractContextManager[Any]:
    return threadpool_limits(limits=1) if n_rows < SINGLE_THREAD_ROWS else nullcontext()


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
        distinct = col.n_unique()
        mean = float(col.mean() or 0.0)  # type: ignore[arg-type]
        std = float(col.std(ddof=0) or 0.0)  # type: ignore[arg-type]
        if distinct < 2:
            dropped[c] = "constant: a single value for every customer"
        elif std <= NEAR_CONSTANT_RTOL * max(1.0, abs(mean)):
            dropped[c] = f"near-constant: std {std:.3g} <= {NEAR_CONSTANT_RTOL:g} x max(1, |mean|)"
        else:
            kept.append(c)
    return kept, dropped


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A deterministic, sorted sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def _scale(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    # Weighted by multiplicity: the same mean and std as the rows repeated `weights` times.
    mean = np.average(x, axis=0, weights=weights)
    std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weights))
    # A constant column carries no information; scale 1 keeps it at zero instead of NaN.
    return mean, np.where(std > NEAR_CONSTANT_RTOL * np.maximum(1.0, np.abs(mean)), std, 1.0)


def _silhouettes(z: np.ndarray, labels: dict[int, np.ndarray], seed: int) -> dict[int, float]:
    """Silhouette of each candidate's labels on the same rows, one distance pass for all."""
    out = {k: -1.0 for k, lab in labels.items() if not 2 <= len(np.unique(lab)) < len(lab)}
    rest = {k: lab for k, lab in labels.items() if k not in out}
    if rest:
        out |= silhouettes(z, rest, min(SILHOUETTE_ROWS, len(z)), seed)
    return out


def _repeat(x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
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

    def params(self) -> dict[str, Any]: ...

    # Bootstrap refit labels of the fitting sample at the chosen k, from model selection
    # (see engine.segment.stability); the gates reuse them. Empty when k was not checked.
    boot_labels_: list[np.ndarray]


@dataclass
class _Base:
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

    def columns(self, features: FeatureFrame) -> list[str]:
        return list(features.features)

    def fit(self, features: FeatureFrame) -> Self:
        return self.fit_matrix(feature_matrix(features, self.columns(features)))

    def _sample(self, x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, Any]:
        idx = sample_indices(len(x), self.sample_size, self.seed)
        return x[idx], None if weights is None else weights[idx]

    def assign(self, features: FeatureFrame) -> np.ndarray:
        return self.predict_matrix(feature_matrix(features, self.columns(features)))

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("strategy is not fitted")
        return (x - self.mean_) / self.scale_

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

        Each checked k gets `stability_runs` bootstrap refits of the fitting sample `xs`;
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
        if self.stability_runs <= 0 or len(order) == 1:
            self.k_choice_ = "fixed k" if len(order) == 1 else "best score"
            return order[0]
        checks: dict[int, StabilityCheck] = {}
        for k in order[: max(1, self.stability_candidates)]:
            check = StabilityCheck(
                partial(self._clone_at, k), xs, labels[k], self.stability_runs, self.seed
            )
            checks[k] = check
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

    def _selection_params(self) -> dict[str, Any]:
        return {
            "k_choice": self.k_choice_,
            "k_stability": {str(k): round(v, 6) for k, v in sorted(self.stability_.items())},
            # Candidates dropped early: their k_stability is an upper bound below threshold.
            "k_stability_bounded": sorted(self.bounded_),
            "stability_runs": self.stability_runs,
            "stability_candidates": self.stability_candidates,
        }


@dataclass
class KMeansStrategy(_Base):
    """Full KMeans on a deterministic sample, then `predict` on every row.

    k is chosen in [k_min, k_max] by silhouette on the sample unless k is fixed.
    """

    name: str = "kmeans"
    k: int | None = None
    k_min: int = 4
    k_max: int = 8
    n_init: int = KMEANS_N_INIT
    model_: KMeans | None = field(default=None, repr=False)
    k_: int = 0
    scores_: dict[int, float] = field(default_factory=dict)

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        xs, w = self._sample(x, weights)
        self.mean_, self.scale_ = _scale(xs, w)
        z = self.transform(xs)
        ks = self._k_range(self.k, self.k_min, self.k_max, len(z))

        def fit_k(k: int) -> KMeans:
            with threads_for(len(z)):
                return KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed).fit(
                    z, sample_weight=w
                )

        # Candidate k are independent fits: the thread pool runs them side by side.
        fitted = run_parallel([partial(fit_k, k) for k in ks]) if len(ks) > 1 else [fit_k(ks[0])]
        models: dict[int, KMeans] = dict(zip(ks, fitted, strict=True))
        labels = {k: np.asarray(m.labels_, dtype=np.int64) for k, m in models.items()}
        self.scores_ = _silhouettes(z, labels, self.seed) if len(ks) > 1 else {ks[0]: 0.0}
        # Best silhouette first; ties keep the smaller k (simpler model).
        order = sorted(ks, key=lambda k: (-self.scores_[k], k))
        self.k_ = self._choose(order, labels, xs)
        self.model_ = models[self.k_]
        return self

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("KMeansStrategy is not fitted")
        with threads_for(len(x)):
            return np.asarray(self.model_.predict(self.transform(x)), dtype=np.int64)

    def refit_clone(self, seed: int) -> KMeansStrategy:
        return self._clone_at(self.k_, seed)

    def _clone_at(self, k: int, seed: int) -> KMeansStrategy:
        return KMeansStrategy(sample_size=self.sample_size, seed=seed, k=k, n_init=self.n_init)

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "k": self.k_,
            "k_fixed": self.k,
            "k_range": [self.k_min, self.k_max],
            "k_scores": {str(k): round(v, 6) for k, v in sorted(self.scores_.items())},
            **self._selection_params(),
            "n_init": self.n_init,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }


@dataclass
class GaussianMixtureStrategy(_Base):
    """Gaussian mixture on a deterministic sample, then `predict` on every row.

    k is chosen in [k_min, k_max] by BIC on the sample unless fixed.
    """

    name: str = "gmm"
    k: int | None = None
    k_min: int = 4
    k_max: int = 8
    covariance_type: str = "full"
    # Zero-inflated features (no loan, no wallet) make covariances singular without it.
    reg_covar: float = 1e-3
    model_: GaussianMixture | None = field(default=None, repr=False)
    k_: int = 0
    scores_: dict[int, float] = field(default_factory=dict)

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        # No sample weights in GaussianMixture: fit the resample's repeated rows.
        xs = _repeat(*self._sample(x, weights))
        self.mean_, self.scale_ = _scale(xs)
        z = self.transform(xs)
        models: dict[int, GaussianMixture] = {}
        self.scores_ = {}
        ks = self._k_range(self.k, self.k_min, self.k_max, len(z))
        for k in ks:
            with threads_for(len(z)):
                model = GaussianMixture(
                    n_components=k,
                    covariance_type=self.covariance_type,
                    reg_covar=self.reg_covar,
                    random_state=self.seed,
                    max_iter=200,
                ).fit(z)
                bic = float(model.bic(z))
            self.scores_[k] = bic
            models[k] = model
        order = sorted(ks, key=lambda k: (self.scores_[k], k))  # lowest BIC first
        labels: dict[int, np.ndarray] = {}
        if len(order) > 1 and self.stability_runs > 0:
            with threads_for(len(z)):
                for k in order[: self.stability_candidates]:
                    labels[k] = np.asarray(models[k].predict(z), dtype=np.int64)
        self.k_ = self._choose(order, labels, xs)
        self.model_ = models[self.k_]
        return self

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("GaussianMixtureStrategy is not fitted")
        with threads_for(len(x)):
            return np.asarray(self.model_.predict(self.transform(x)), dtype=np.int64)

    def refit_clone(self, seed: int) -> GaussianMixtureStrategy:
        return self._clone_at(self.k_, seed)

    def _clone_at(self, k: int, seed: int) -> GaussianMixtureStrategy:
        return replace(
            self,
            seed=seed,
            k=k,
            stability_runs=0,
            model_=None,
            mean_=None,
            scale_=None,
            scores_={},
            stability_={},
            boot_labels_=[],
        )

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "k": self.k_,
            "k_fixed": self.k,
            "k_range": [self.k_min, self.k_max],
            "bic": {str(k): round(v, 3) for k, v in sorted(self.scores_.items())},
            **self._selection_params(),
            "covariance_type": self.covariance_type,
            "reg_covar": self.reg_covar,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }


@dataclass
class RuleBased(_Base):
    """Risk band by credit score x value bracket by value proxy.

    Score thresholds are fixed (FICO-style cut points); value brackets are quantiles of
    the value proxy learnt at fit on the sample. When a column is unavailable under the
    purpose, that axis collapses to a single band.
    """

    name: str = "rules"
    # Declared feature names ([segmentation] score_feature / value_feature in pgov.toml).
    score_column: str = ""
    value_column: str = ""
    # Below 580: high risk; 580-669: medium; 670 and above: low.
    score_thresholds: tuple[float, ...] = (580.0, 670.0)
    value_quantiles: tuple[float, ...] = (1 / 3, 2 / 3)
    used_: list[str] = field(default_factory=list)
    value_cuts_: np.ndarray | None = field(default=None, repr=False)

    def columns(self, features: FeatureFrame) -> list[str]:
        cols = [c for c in (self.score_column, self.value_column) if c and c in features.features]
        if not cols:
            raise BadInputError(
                "rules strategy: expected segmentation.score_feature "
                f"('{self.score_column}') or segmentation.value_feature "
                f"('{self.value_column}') among the available features; found: "
                f"{', '.join(features.features) or 'none'}"
            )
        self.used_ = cols
        return cols

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        s = _repeat(*self._sample(x, weights))
        self.mean_, self.scale_ = _scale(s)
        self.value_cuts_ = None
        if self.value_column in self.used_:
            col = s[:, self.used_.index(self.value_column)]
            self.value_cuts_ = np.quantile(col, self.value_quantiles)
        return self

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("RuleBased is not fitted")
        n_value = len(self.value_quantiles) + 1
        risk = np.zeros(len(x), dtype=np.int64)
        if self.score_column in self.used_:
            score = x[:, self.used_.index(self.score_column)]
            # 0 = low risk (high score) ... so band order follows the score descending.
            risk = len(self.score_thresholds) - np.searchsorted(
                np.asarray(self.score_thresholds), score, side="right"
            )
        value = np.zeros(len(x), dtype=np.int64)
        if self.value_cuts_ is not None:
            value = np.searchsorted(
                self.value_cuts_, x[:, self.used_.index(self.value_column)], side="right"
            )
        return (risk * n_value + value).astype(np.int64)

    def refit_clone(self, seed: int) -> RuleBased:
        return RuleBased(
            sample_size=self.sample_size,
            seed=seed,
            score_column=self.score_column,
            value_column=self.value_column,
            score_thresholds=self.score_thresholds,
            value_quantiles=self.value_quantiles,
            used_=list(self.used_),
        )

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "columns": list(self.used_),
            "score_thresholds": list(self.score_thresholds),
            "value_quantiles": [round(q, 6) for q in self.value_quantiles],
            "value_cuts": [round(float(c), 6) for c in self.value_cuts_]
            if self.value_cuts_ is not None
            else [],
            "sample_size": self.sample_size,
            "seed": self.seed,
        }


def make_strategy(spec: SegmentationSpec, seed: int) -> Strategy:
    # Selection checks candidates with as many refits as the gates run, so the chosen k's
    # refits are the gates' refits (reused, not repeated).
    if spec.strategy == "kmeans":
        return KMeansStrategy(
            sample_size=spec.sample_size,
            seed=seed,
            k=spec.k,
            k_min=spec.k_min,
            k_max=spec.k_max,
            stability_runs=spec.bootstrap_runs,
            stability_threshold=spec.stability_threshold,
            n_init=spec.n_init,
        )
    if spec.strategy == "gmm":
        return GaussianMixtureStrategy(
            sample_size=spec.sample_size,
            seed=seed,
            k=spec.k,
            k_min=spec.k_min,
            k_max=spec.k_max,
            stability_runs=spec.bootstrap_runs,
            stability_threshold=spec.stability_threshold,
        )
    return RuleBased(
        sample_size=spec.sample_size,
        seed=seed,
        score_column=spec.score_feature or "",
        value_column=spec.value_feature or "",
        score_thresholds=tuple(spec.score_thresholds),
        value_quantiles=tuple(spec.value_quantiles),
    )
