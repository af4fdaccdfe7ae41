"""Plain integer and time reductions over runs of adjacent subject rows (numpy's reduceat)
give exactly what Polars' group_by gives: values, nulls and dtypes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.features.aggregate import _reduce_runs


def _runs(seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, size=200)
    gid = np.repeat(np.arange(len(lengths)), lengths)
    n = len(gid)
    # Every third run has only nulls; other rows are null one time in four.
    null = (rng.random(n) < 0.25) | (gid % 3 == 0)
    values = rng.integers(-(10**12), 10**12, size=n)
    base = datetime(2025, 1, 1)
    frame = pl.DataFrame(
        {
            "gid": gid,
            "i64": pl.Series(values).scatter(np.flatnonzero(null), None),
            "i32": pl.Series(values % 1000, dtype=pl.Int32).scatter(np.flatnonzero(null), None),
            "ts": pl.Series([base + timedelta(minutes=int(v % 10**6)) for v in values]).scatter(
                np.flatnonzero(null), None
            ),
            "day": pl.Series(
                [date(2024, 1, 1) + timedelta(days=int(v % 900)) for v in values]
            ).scatter(np.flatnonzero(null), None),
        }
    )
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
    return frame, starts


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("op", "column"),
    [
        ("sum", "i64"),
        ("min", "i64"),
        ("max", "i64"),
        ("min", "i32"),
        ("max", "i32"),
        ("max", "ts"),
        ("min", "ts"),
        ("max", "day"),
    ],
)
def test_run_reductions_equal_the_group_by(seed: int, op: str, column: str) -> None:
    frame, starts = _runs(seed)
    want = (
        frame.group_by("gid", maintain_order=True)
        .agg(getattr(pl.col(column), op)())
        .get_column(column)
    )
    got = _reduce_runs(op, frame.get_column(column), starts)
    assert got.dtype == want.dtype
    assert got.null_count() == want.null_count()
    assert got.equals(want)
