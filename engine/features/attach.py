"""Per-subject parts put beside the subjects' rows by position, not by a hash join.

When every frame carries its rows' subject positions (engine/features/build.py), a part
(one row per subject of a source) meets the subjects' frame on those positions: numbers
below the token list's length. Looking each subject's row up in an array indexed by
position gives a left join's rows (a subject the part lacks gets nulls) without hashing
either side, and keeps the subjects' order.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_NONE = -1


def attach(frame: pl.DataFrame, part: pl.DataFrame, key: str) -> pl.DataFrame | None:
    """`frame` with `part`'s other columns, as `frame.join(part, on=key, how="left",
    maintain_order="left")` gives them when `key` holds distinct non-negative integers in
    both; None when it does not (the caller joins)."""
    if not (frame.schema[key].is_unsigned_integer() and part.schema[key] == frame.schema[key]):
        return None
    ours, theirs = frame.get_column(key), part.get_column(key)
    if ours.null_count() or theirs.null_count():
        return None
    mine, other = ours.to_numpy(), theirs.to_numpy()
    where = np.full(int(max(mine.max(initial=0), other.max(initial=0))) + 1, _NONE, np.int64)
    where[other] = np.arange(part.height)
    if np.count_nonzero(where != _NONE) != part.height:  # a position twice: not one per subject
        return None
    at = where[mine]
    rows = pl.Series(at).scatter(np.flatnonzero(at == _NONE), None)
    return frame.hstack(part.drop(key).select(pl.all().gather(rows)).get_columns())
