"""SubjectIndex: which subject each row of a source belongs to, as a dense integer.

The aggregations of a source group its rows by subject. Hashing the subject key (a token:
a 30-70 byte string) for every row is most of a group_by's cost, and the monthly sums need
the subject of every row as a number anyway. The sources we read mostly list a subject's
rows together (exports by customer): then the runs of equal keys are the subjects, found
by comparing neighbours, and a group_by over the run number takes Polars' sorted path (no
hash table at all). Otherwise the keys are hashed once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class SubjectIndex:
    row_subject: np.ndarray  # int64 per row: the position of the row's subject in `keys`
    keys: pl.Series  # each subject key once (null is a key), in order of first appearance
    runs: bool  # a subject's rows are adjacent: row_subject never decreases
    starts: np.ndarray | None = None  # runs: the first row of each subject

    def column(self, name: str, lo: int = 0, hi: int | None = None) -> pl.Series:
        s = pl.Series(name, self.row_subject[lo:hi])
        return s.set_sorted() if self.runs else s

    def regroup(self) -> np.ndarray:
        """Row positions that bring each subject's rows together (subjects in the order of
        `keys`, a subject's rows in their order)."""
        return np.argsort(self.row_subject, kind="stable")

    def slices(self, rows: int) -> list[tuple[int, int]]:
        """Runs: [lo, hi) row ranges of about `rows` rows that never split a subject."""
        assert self.starts is not None
        n = len(self.row_subject)
        bounds = np.r_[self.starts, n]  # a cut at the first subject starting at or after
        cuts = bounds[np.searchsorted(bounds, np.arange(rows, n, rows))]
        edges = np.unique(np.r_[0, cuts, n])
        return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def runs_of(keys: pl.Series) -> SubjectIndex | None:
    """The index when every subject's rows are adjacent, else None."""
    if keys.len() == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SubjectIndex(empty, keys.clear(), runs=True, starts=empty)
    run = keys.rle_id().to_numpy()
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    first = keys.gather(starts)
    if first.n_unique() != len(starts):
        return None
    return SubjectIndex(run.astype(np.int64), first, runs=True, starts=starts)


def hashed(keys: pl.Series) -> SubjectIndex:
    """The index of any row order (one hash of every key)."""
    distinct = keys.unique(maintain_order=True)
    index = (
        keys.to_frame("k")
        .lazy()
        .join(
            distinct.to_frame("k").with_row_index("i").lazy(),
            on="k",
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
        .select("i")  # the keys are not copied into the result
        .collect()
        .get_column("i")
    )
    return SubjectIndex(index.cast(pl.Int64).to_numpy(), distinct, runs=False)
