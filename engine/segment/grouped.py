"""Per-persona means that are bit-for-bit reproducible.

A Polars `group_by(...).agg(mean)` over many rows per group runs on a thread pool and may
add partial sums in a different order from one run to the next, so the last bits of a
centroid or KPI can differ between two identical refreshes (seen on CI: a persona's
utilisation mean ended in ...438 on one run and ...437 on the other). Published profiles
are signed and compared by digest, so these reductions use `np.bincount`, which adds the
rows of each group strictly in row order on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupMeans:
    labels: np.ndarray  # sorted unique labels
    means: np.ndarray  # (groups, columns); NaN where a group has no observed value
    observed: np.ndarray  # (groups, columns) count of non-missing values per cell
    sizes: np.ndarray  # (groups,) rows per group


def group_means(labels: np.ndarray, values: np.ndarray) -> GroupMeans:
    """Mean of each column of `values` per label; NaN entries count as missing."""
    uniq, inv = np.unique(labels, return_inverse=True)
    g = len(uniq)
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    sizes = np.bincount(inv, minlength=g)
    means = np.full((g, matrix.shape[1]), np.nan)
    observed = np.zeros((g, matrix.shape[1]), dtype=np.int64)
    for j in range(matrix.shape[1]):  # one pass per column, never per row
        col = matrix[:, j]
        seen = ~np.isnan(col)
        # A column without gaps is counted as it is: the same rows in the same order as the
        # masked copies would hold, without making them.
        rows, kept = (inv, col) if seen.all() else (inv[seen], col[seen])
        n = np.bincount(rows, minlength=g)
        s = np.bincount(rows, weights=kept, minlength=g)
        observed[:, j] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, j] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return GroupMeans(labels=uniq, means=means, observed=observed, sizes=sizes)
