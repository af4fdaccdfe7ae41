"""Bootstrap stability (clusterboot style), shared by model selection and the gates.

    bootstrap_refits(clone_at, x_sample, runs, seed) -> [labels of x_sample per refit]
    jaccard_per_cluster(reference, other) -> best Jaccard of each reference cluster

A refit is an unfitted clone (new seed seed+1+b) fitted on a bootstrap resample (with
replacement, sorted) of the fitting sample, which then labels the whole sample. The resample
of run b depends only on `seed` and b, so the first r refits of a selection check are the
same as the first r refits of the gate: the gate reuses them instead of refitting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics.cluster import contingency_matrix

if TYPE_CHECKING:
    from engine.segment.strategies import Strategy


def jaccard_per_cluster(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each reference cluster (in sorted label order): best Jaccard over `other`."""
    inter = contingency_matrix(reference, other).astype(np.float64)
    size_ref = inter.sum(axis=1, keepdims=True)
    size_other = inter.sum(axis=0, keepdims=True)
    union = size_ref + size_other - inter
    return np.asarray((inter / union).max(axis=1))


def bootstrap_refits(
    clone_at: Callable[[int], Strategy],
    x_sample: np.ndarray,
    runs: int,
    seed: int,
    skip: int = 0,
) -> list[np.ndarray]:
    """Labels of `x_sample` from refits skip..runs-1 (clone_at(seed) gives an unfitted clone)."""
    rng = np.random.default_rng(seed)
    n = len(x_sample)
    out: list[np.ndarray] = []
    for b in range(runs):
        # Drawn even when skipped: run b's resample must not depend on what was cached.
        boot = np.sort(rng.integers(0, n, size=n))
        if b < skip:
            continue
        refit = clone_at(seed + 1 + b).fit_matrix(x_sample[boot])
        out.append(refit.predict_matrix(x_sample))
    return out


def mean_jaccard(reference: np.ndarray, refits: list[np.ndarray]) -> np.ndarray:
    """Per reference cluster (sorted label order): mean over refits of the best Jaccard."""
    return np.mean(np.vstack([jaccard_per_cluster(reference, r) for r in refits]), axis=0)
