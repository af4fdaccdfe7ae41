"""Mean silhouette on a sample, as scikit-learn's `silhouette_score(..., sample_size, random_state)`
computes it, in a fraction of the time.

    silhouettes(z, {key: labels}, sample_size, seed) -> {key: float}
    silhouette(z, labels, sample_size, seed) -> float

Same rows (scikit-learn's own draw: `RandomState(seed).permutation(n)[:sample_size]`), same
Euclidean distances, same definition (a: mean distance to the own cluster without the point
itself, b: smallest mean distance to another cluster, 0 for a point alone in its cluster).
The difference: model selection scores five candidate k on the same rows, and the gate
scores the chosen one again; scikit-learn recomputes the distance matrix each time. Here
the distances are computed once, a block of rows at a time (memory stays at tens of MB), and
each block is multiplied by the one-hot label matrices of every labelling at once. Results
agree with scikit-learn to floating-point rounding (the test checks 1e-9).

The gate scores the published personas, which are the chosen candidate's partition refined
on the whole fitting sample: on the scored rows they differ from it by a few points, if any.
`scored(...)` keeps, for a labelling, each scored row's summed distance to every cluster
(rows x clusters, about 0.2 MB); `rescore(kept, labels)` scores another labelling of the same
rows from those sums plus the distances to the rows that changed cluster only, the same
figure (to rounding) without a second pass over the distance matrix.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

# Rows per block of the silhouette sum (the order the per-row terms are added in).
BLOCK = 1_000
# Rows of the distance matrix computed at a time: 125 x 5,000 float64 = 5 MB, which the
# in-place passes of _to_distances find in cache (a 40 MB block went to memory on each of its
# five passes: 0.16 -> 0.12 CPU s for five candidates). Every distance and per-row sum is the
# same number whatever the block (one row's dot products and sums never span two blocks).
DIST_BLOCK = 125
# rescore() is worth it while the rows that changed cluster are a minority; beyond this share
# of the scored rows a full pass costs about as much (and is then made instead).
RESCORE_MAX_MOVED = 0.25
# Threads the distance pass runs on (one per core, at most 2, as the refits' pool), from
# this many scored rows on (below it a pass takes a few milliseconds).
PASS_THREADS = max(1, min(2, os.cpu_count() or 1))
PASS_THREADS_FROM = 1_000


@dataclass(frozen=True)
class Scored:
    """One labelling's silhouette with what rescoring another labelling of its rows needs."""

    value: float
    z: np.ndarray  # the scored rows (after the sample draw)
    rows: np.ndarray | None  # their positions in the labelled rows (None: every row)
    codes: np.ndarray  # cluster index (0..k-1) of each scored row
    sums: np.ndarray  # scored rows x clusters: summed distance to each cluster's rows


def sample_rows(n: int, sample_size: int | None, seed: int) -> np.ndarray | None:
    """The rows scikit-learn's silhouette_score draws (None: every row, no draw)."""
    if sample_size is None:
        return None
    return np.random.RandomState(seed).permutation(n)[:sample_size]


def silhouettes(
    z: np.ndarray, labelings: dict[int, np.ndarray], sample_size: int | None, seed: int
) -> dict[int, float]:
    """The mean silhouette of each labelling of the same rows `z`, sharing one pass over the
    distance matrix (the expensive part) between all of them."""
    return {key: kept.value for key, kept in scored(z, labelings, sample_size, seed).items()}


def _codes(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster index of each row (0..k-1) and the cluster sizes; refuses fewer than two
    clusters or one per row (no silhouette)."""
    _, c = np.unique(lab, return_inverse=True)
    c = c.ravel()
    k = int(c.max()) + 1 if n else 0
    if k < 2 or k >= n:
        raise ValueError(f"silhouette needs 2 <= clusters < rows (got {k} on {n})")
    return c, np.bincount(c, minlength=k).astype(np.float64)


def _mean_silhouette(sums: np.ndarray, own: np.ndarray, f: np.ndarray) -> float:
    """Sum over rows of s = (b - a) / max(a, b), from each row's summed distances to every
    cluster (`sums` is modified), its cluster `own` and the cluster sizes `f`."""
    rows_i = np.arange(len(own))
    intra = sums[rows_i, own].copy()
    sums[rows_i, own] = np.inf
    inter = (sums / f).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = intra / (f[own] - 1.0)
        s = (inter - a) / np.maximum(a, inter)
    return float(np.nan_to_num(s).sum())


def scored(
    z: np.ndarray, labelings: dict[int, np.ndarray], sample_size: int | None, seed: int
) -> dict[int, Scored]:
    """`silhouettes`, keeping each labelling's per-row cluster sums for `rescore`."""
    rows = sample_rows(len(z), sample_size, seed)
    if rows is not None:
        z = z[rows]
    z = np.ascontiguousarray(z, dtype=np.float64)
    n = len(z)
    keys = list(labelings)
    codes: list[np.ndarray] = []
    freqs: list[np.ndarray] = []
    for key in keys:
        c, f = _codes(labelings[key] if rows is None else labelings[key][rows], n)
        codes.append(c)
        freqs.append(f)
    offsets = np.cumsum([0] + [len(f) for f in freqs])
    onehot = np.zeros((n, int(offsets[-1])), dtype=np.float64)
    for c, off in zip(codes, offsets[:-1], strict=True):
        onehot[np.arange(n), off + c] = 1.0
    all_sums = _cluster_sums(z, onehot)
    out: dict[int, Scored] = {}
    for j, (key, c, f) in enumerate(zip(keys, codes, freqs, strict=True)):
        sums = all_sums[:, offsets[j] : offsets[j + 1]]
        total = 0.0
        for start in range(0, n, BLOCK):  # summed a block at a time, in block order
            part = slice(start, start + BLOCK)
            total += _mean_silhouette(sums[part].copy(), c[part], f)
        out[key] = Scored(float(total / n), z, rows, c, np.ascontiguousarray(sums))
    return out


def _cluster_sums(z: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Each row's summed distance to the rows of each one-hot column (rows x columns).

    The distance blocks are BLAS and large elementwise passes, which release the GIL: with
    enough rows the blocks are split in two halves on PASS_THREADS threads. Every block is
    the same computation whichever thread makes it (same rows, same shapes, one BLAS thread
    each: the caller's limit is process-wide), so the sums are the same bit for bit."""
    n = len(z)
    sq = np.einsum("ij,ij->i", z, z)
    z_t = np.ascontiguousarray(z.T)
    out = np.empty((n, onehot.shape[1]))

    def rows(lo: int, hi: int) -> None:
        # Reused buffer: a fresh array per block goes back to the OS when freed, and the
        # page faults of the next one cost more than the arithmetic (measured 4x per block).
        buf = np.empty((min(DIST_BLOCK, hi - lo), n))
        for start in range(lo, hi, DIST_BLOCK):
            block = z[start : min(start + DIST_BLOCK, hi)]
            m = len(block)
            d = buf[:m]
            np.matmul(block, z_t, out=d)
            _to_distances(d, sq[start : start + m], sq)
            # A point's distance to itself is exactly zero (as scikit-learn enforces).
            d[np.arange(m), np.arange(start, start + m)] = 0.0
            np.matmul(d, onehot, out=out[start : start + m])

    if PASS_THREADS < 2 or n < PASS_THREADS_FROM:
        rows(0, n)
        return out
    # Split on a block boundary: each half's blocks start where a single pass's would.
    mid = min(n, (-(-n // DIST_BLOCK) + 1) // 2 * DIST_BLOCK)
    with ThreadPoolExecutor(PASS_THREADS) as pool:
        for job in [pool.submit(rows, 0, mid), pool.submit(rows, mid, n)]:
            job.result()
    return out


def _to_distances(dot: np.ndarray, sq_rows: np.ndarray, sq_cols: np.ndarray) -> np.ndarray:
    """Euclidean distances, in place, from the dot products of rows with columns."""
    dot *= -2.0
    dot += sq_cols[None, :]
    dot += sq_rows[:, None]
    np.maximum(dot, 0.0, out=dot)
    np.sqrt(dot, out=dot)
    return dot


def rescore(kept: Scored, labels: np.ndarray) -> float | None:
    """The mean silhouette of `labels` (a labelling of the rows `kept` was scored on), from
    kept's per-row sums: each old cluster's sums go to the new cluster most of its rows
    are in, and the distances to the rows that went elsewhere are moved to their new
    cluster. None when that is not cheaper than a full pass, or no silhouette exists."""
    z, n = kept.z, len(kept.z)
    try:
        new, f = _codes(labels if kept.rows is None else labels[kept.rows], n)
    except ValueError:
        return None
    old, k_old, k_new = kept.codes, kept.sums.shape[1], len(f)
    table = np.bincount(old * k_new + new, minlength=k_old * k_new).reshape(k_old, k_new)
    target = table.argmax(axis=1)  # where each old cluster's sums go
    moved = np.flatnonzero(target[old] != new)
    if len(moved) > RESCORE_MAX_MOVED * n:
        return None
    sums = np.zeros((n, k_new))
    for c_old in range(k_old):
        sums[:, target[c_old]] += kept.sums[:, c_old]
    if len(moved):
        sq = np.einsum("ij,ij->i", z, z)
        d = _to_distances(z @ z[moved].T, sq, sq[moved])
        d[moved, np.arange(len(moved))] = 0.0
        shift = np.zeros((len(moved), k_new))
        shift[np.arange(len(moved)), new[moved]] += 1.0
        shift[np.arange(len(moved)), target[old[moved]]] -= 1.0
        sums += d @ shift
    return _mean_silhouette(sums, new, f) / n


def silhouette(z: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int) -> float:
    return silhouettes(z, {0: labels}, sample_size, seed)[0]
