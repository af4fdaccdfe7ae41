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

The n_init restarts of a subsampled fit are scikit-learn's own steps (`_kmeans_plusplus`,
then `_kmeans_single_lloyd`), called directly: `KMeans(n_init=1).fit` would repeat its
checks, the centring of the rows, their norms and the tolerance (a variance pass) for each
restart on the same 2,000 rows. Done once, the restarts give the same centres bit for bit
(tested against `KMeans.fit`), at about 15 % less CPU per fit.

Shared starts (`Starts`): k-means++ picks its centres one after another, each from the
same random stream and a number of local trials (2 + int(ln k)) that is the same for every
k from 3 to 7; so the first k centres of a k = 7 start *are* the k = 6, 5, 4 and 3 starts
of the same rows and seed. Fits of the same rows (the candidates on the selection rows,
the k = 7 and k = 6 refits of one bootstrap resample) share their starts through a
`Starts` keyed by the rows' bytes, the seed and the trial count: a fit takes the prefix of
a larger start already made, or makes its own. The centres are the ones its own k-means++
gives, bit for bit (tested), whichever fit came first.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.cluster._kmeans import _kmeans_plusplus, _kmeans_single_lloyd, _tolerance
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.extmath import row_norms

from engine.segment.base import sample_indices
from engine.segment.lloyd import lloyd_from

# Fits on more rows than this restart on a subsample: below it a fit is cheap anyway, and a
# subsample would be a large share of the rows.
RESTART_FROM = 10_000
# Rows each restart runs on: about 60 rows of a 3 % persona, enough for k-means++ to seed it
# and Lloyd to find its basin; the final run on every row sets the centres.
RESTART_ROWS = 2_000
# KMeans' default tolerance (relative to the mean column variance), as its fit uses it.
KMEANS_TOL = 1e-4
# KMeans' default iteration cap per run.
KMEANS_MAX_ITER = 300


def restart_rows(n: int) -> int:
    return RESTART_ROWS if n > RESTART_FROM else n


def _spread(zt: np.ndarray, centres: np.ndarray, weights: np.ndarray | None) -> float:
    """Inertia of `centres` on the rows (columns of `zt`) minus the restart-independent
    sum of squared row norms: the same order between restarts, without that pass. Rows as
    columns: the nearest centre is a minimum over k rows, elementwise, not along a short
    axis of each row (measured several times faster at k <= 8)."""
    # In place: (-2 c.z) + |c|^2 is |c|^2 - 2 c.z exactly (a sign and a power of two), with
    # one k x rows array instead of three.
    d = centres @ zt
    d *= -2.0
    d += np.einsum("ij,ij->i", centres, centres)[:, None]
    nearest = d.min(axis=0)
    return float(nearest.sum() if weights is None else nearest @ weights)


def local_trials(k: int) -> int:
    """k-means++ candidates per centre, scikit-learn's default for k centres."""
    return 2 + int(np.log(k))


@dataclass
class Starts:
    """k-means++ starts made so far, per (rows, weights, seed, n_init, trials): the largest.

    Thread-safe (the refits run on a pool); what a fit gets never depends on which fit
    made the start, only whether it had to make it."""

    _kept: dict[tuple[bytes, int], list[np.ndarray]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, key: tuple[bytes, int], k: int) -> list[np.ndarray] | None:
        with self._lock:
            kept = self._kept.get(key)
        # Copies: a Lloyd run writes into its start.
        return None if kept is None or len(kept[0]) < k else [c[:k].copy() for c in kept]

    def put(self, key: tuple[bytes, int], starts: list[np.ndarray]) -> None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or len(kept[0]) < len(starts[0]):
                self._kept[key] = [c.copy() for c in starts]


def restarted_kmeans(
    z: np.ndarray,
    k: int,
    n_init: int,
    seed: int,
    weights: np.ndarray | None = None,
    starts: Starts | None = None,
) -> KMeans:
    """k-means of `z` (rows weighted by `weights`): see the module docstring."""
    if restart_rows(len(z)) >= len(z):
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z, sample_weight=weights)
    # The fitting sample's draw (sorted positions, so content order is kept) of this fit's rows.
    sub = sample_indices(len(z), RESTART_ROWS, seed)
    zt = np.ascontiguousarray(z.T)
    best: tuple[float, np.ndarray] | None = None
    ws = None if weights is None else weights[sub]
    for centres in _restarts(z[sub], ws, k, n_init, seed, starts):
        score = _spread(zt, centres, weights)
        # Strictly better only: ties keep the earlier restart, as scikit-learn's n_init does.
        if best is None or score < best[0]:
            best = (score, centres)
    assert best is not None
    return lloyd_from(z, best[1], seed, weights)


def _restarts(
    zs: np.ndarray,
    ws: np.ndarray | None,
    k: int,
    n_init: int,
    seed: int,
    starts: Starts | None = None,
) -> list[np.ndarray]:
    """The centres of `n_init` single-restart fits of the rows `zs`, restart r with
    random_state seeds[r]: what `KMeans(n_clusters=k, n_init=1, random_state=seeds[r])
    .fit(zs, sample_weight=ws).cluster_centers_` gives, with its per-call preparation
    (float64 copy, tolerance, sample weights, centring, squared norms) done once."""
    x = np.array(zs, dtype=np.float64, order="C", copy=True)
    # The tolerance is computed before centring, as KMeans.fit does (same variances).
    tol = _tolerance(x, KMEANS_TOL)
    w = np.ones(len(x)) if ws is None else np.asarray(ws, dtype=np.float64)
    n_threads = _openmp_effective_n_threads()
    mean = x.mean(axis=0)
    x -= mean
    norms = row_norms(x, squared=True)
    seeds = np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=n_init)
    key = (_digest(zs, ws, seed, n_init), local_trials(k))
    inits = starts.get(key, k) if starts is not None else None
    if inits is None:
        inits = [
            _kmeans_plusplus(
                x,
                k,
                x_squared_norms=norms,
                sample_weight=w,
                random_state=np.random.RandomState(s),
                n_local_trials=key[1],
            )[0]
            for s in seeds
        ]
        if starts is not None:
            starts.put(key, inits)
    out: list[np.ndarray] = []
    for init in inits:
        _, _, centres, _ = _kmeans_single_lloyd(
            x, w, init, max_iter=KMEANS_MAX_ITER, verbose=False, tol=tol, n_threads=n_threads
        )
        out.append(centres + mean)
    return out


def _digest(zs: np.ndarray, ws: np.ndarray | None, seed: int, n_init: int) -> bytes:
    """What a restart's k-means++ start depends on, besides k: rows, weights, seeds."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(zs).tobytes())
    h.update(b"-" if ws is None else np.ascontiguousarray(ws, dtype=np.float64).tobytes())
    h.update(f"{zs.shape}:{seed}:{n_init}".encode())
    return h.digest()
