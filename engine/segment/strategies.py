"""Segmentation strategies behind one scikit-learn-style interface.

    strategy.fit(features) -> strategy
    strategy.assign(features) -> np.ndarray of int labels (one per row of features.frame)
    make_strategy(spec, seed) -> the strategy the spec names

Each strategy standardises inside itself (the FeatureFrame stays in natural units), fits on a
deterministic sample (rows in content order, see `engine.segment.content_ordered`; the sample
is drawn with a fixed seed) and then assigns every row. Same input -> identical labels.

The matrix methods (`fit_matrix`, `predict_matrix`, `transform`) exist so the gates can refit
on bootstrap samples without rebuilding frames; `refit_clone()` returns an unfitted copy with
the chosen k fixed (clusterboot refits at the same k). The shared parts (interface, sample,
stability-aware model selection) are in engine.segment.base; one module per strategy:
engine.segment.kmeans, .mixture, .rules.
"""

from __future__ import annotations

from engine.config import SegmentationSpec
from engine.segment.base import (
    KMEANS_N_INIT,
    NEAR_CONSTANT_RTOL,
    SELECTION_ROWS,
    SILHOUETTE_ROWS,
    STABILITY_CANDIDATES,
    BaseStrategy,
    Strategy,
    feature_matrix,
    informative,
    sample_indices,
    selection_rows,
)
from engine.segment.kmeans import KMeansStrategy
from engine.segment.mixture import GaussianMixtureStrategy
from engine.segment.rules import RuleBased
from engine.segment.threads import SINGLE_THREAD_ROWS, threads_for

__all__ = [
    "KMEANS_N_INIT",
    "NEAR_CONSTANT_RTOL",
    "SELECTION_ROWS",
    "SILHOUETTE_ROWS",
    "SINGLE_THREAD_ROWS",
    "STABILITY_CANDIDATES",
    "BaseStrategy",
    "GaussianMixtureStrategy",
    "KMeansStrategy",
    "RuleBased",
    "Strategy",
    "feature_matrix",
    "informative",
    "make_strategy",
    "sample_indices",
    "selection_rows",
    "threads_for",
]


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
