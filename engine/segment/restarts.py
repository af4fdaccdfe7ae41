"""k-means restarts on a subsample, one Lloyd run on every row from the best of them.

    restarted_kmeans(z, k, n_init, seed, weights=None) -> fitted KMeans
    restart_rows(n) -> rows the restarts of a fit on n rows run on (n when not subsampled)

A k-means fit is `n_init` restarts (k-means++ init, Lloyd to convergence), the best kept.
The restarts only have to find the basin; on a fit of more than RESTART_FROM rows they run
on RESTART_ROWS of the fit's own rows (a nested deterministic sample drawn with the fit's
seed), each restart's centres are scored by their inertia on *all* the fit's rows (one
assignment pass), and one Lloyd run on all the rows starts from the best. Every fit draws
its own subsample and starts from scratch: a bootstrap refit restarts on rows of its own
resample, never from the reference solution (the warm start rejected in
docs/segmentation.md). At or below RESTART_FROM rows (every fit of the 50k demo workspace)
the fit is scikit-learn's own `n_init` restarts, unchanged. Why these sizes and what they do
to selection and stability: docs/segmentation.md, "Restart rows".
"""

from __future__ import annotations

import numpy as np
from sklearn import config_context
from sklearn.cluster import KMeans

from engine.segment.base import sample_indices

# Fits on more rows than this restart on a subsample: below it a fit is cheap anyway, and a
# subsample would be a large share of the rows.
RESTART_FROM = 10_000
# Rows each restart runs on: about 60 rows of a 3 % persona, enough for k-means++ to seed it
# and Lloyd to find its basin; the final run on every row sets the centres.
RESTART_ROWS = 2_000


def restart_rows(n: int) -> int:
    return RESTART_ROWS if n > RESTART_FROM else n


def _spread(zt: np.ndarray, centres: np.ndarray, weights: np.ndarray | None) -> float:
    """Inertia of `centres` on the rows (columns of `zt`) minus the restart-independent
    sum of squared row norms: the same order between restarts, without that pass. Rows as
    columns: the nearest centre is a minimum over k rows, elementwise, not along a short
    axis of each row (measured several times faster at k <= 8)."""
    d = np.einsum("ij,ij->i", centres, centres)[:, None] - 2.0 * (centres @ zt)
    nearest = d.min(axis=0)
    return float(nearest.sum() if weights is None else nearest @ weights)


def restarted_kmeans(
    z: np.ndarray, k: int, n_init: int, seed: int, weights: np.ndarray | None = None
) -> KMeans:
    """k-means of `z` (rows weighted by `weights`): see the module docstring."""
    if restart_rows(len(z)) >= len(z):
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z, sample_weight=weights)
    # The fitting sample's draw (sorted positions, so content order is kept) of this fit's rows.
    sub = sample_indices(len(z), RESTART_ROWS, seed)
    zs, ws = z[sub], None if weights is None else weights[sub]
    seeds = np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=n_init)
    zt = np.ascontiguousarray(z.T)
    best: tuple[float, np.ndarray] | None = None
    for s in seeds:
        # The restarts see a subsample of rows the final fit below validates: skipping
        # scikit-learn's per-call checks saves about a third of a 2,000-row restart.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            start = KMeans(n_clusters=k, n_init=1, random_state=int(s)).fit(zs, sample_weight=ws)
        score = _spread(zt, start.cluster_centers_, weights)
        # Strictly better only: ties keep the earlier restart, as scikit-learn's n_init does.
        if best is None or score < best[0]:
            best = (score, start.cluster_centers_)
    assert best is not None
    return KMeans(n_clusters=k, init=best[1], n_init=1, random_state=seed).fit(
        z, sample_weight=weights
    )
