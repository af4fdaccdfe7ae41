"""Per-subject monthly sums of one source: the input of monthly_cv and monthly_peak.

A monthly feature needs, per subject, one sum per calendar month of its window (a month
without rows sums to 0). Routing every row into one column per month and summing them all
in the subject group_by costs a column per month and series over every row of the source
(24 for the sample's two cash-flow features) and as many sums per group. Instead each row
gets its subject's index and its month, and the sums are accumulated into a (months x
subjects) array: one pass, a few numbers per row, in row order.

Integer (and money, in cents) series are summed in int64: exact, so the result is what an
integer group_by sum gives whatever the order. Float series are summed in row order: the
same bits on every run, which a threaded group_by does not promise.

Each row's subject comes from engine/features/groups.py (SubjectIndex).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from engine.features.groups import SubjectIndex

# Rows per slice: bounds the per-row working set (a few numbers per row) whatever the size.
CHUNK_ROWS = 1 << 21
# Working columns beside the declared ones (the source frames carry no such names).
GID, MONTH = "__pgov_subject", "__pgov_month"


@dataclass
class MonthlyWindow:
    months: int
    mask: pl.Expr  # the row is in the window
    time_column: str
    offset: pl.Expr  # months before the as-of month (0 = the as-of month)
    days: DayMonths | None  # the same offset looked up by day, when the column has no zone
    count: str  # output: rows in the window per subject
    series: dict[str, pl.Expr] = field(default_factory=dict)  # base name -> per-row value

    def columns(self, base: str) -> list[str]:
        return [f"{base}_{i}" for i in range(self.months)]


@dataclass
class MonthlySums:
    windows: dict[str, MonthlyWindow] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)

    def window(self, signature: str, make: Callable[[], MonthlyWindow]) -> MonthlyWindow:
        if signature not in self.windows:
            self.windows[signature] = make()
        return self.windows[signature]

    def series(self, window: MonthlyWindow, signature: str, value: pl.Expr) -> list[str]:
        """The month columns (offset 0, 1, ...) summing `value` (null adds nothing)."""
        if signature not in self._names:
            self._names[signature] = f"_ms{len(self._names)}"
            window.series[self._names[signature]] = value
        return window.columns(self._names[signature])

    def columns(self, df: pl.DataFrame, index: SubjectIndex) -> list[pl.Series]:
        """Every window's count and month columns, one row per subject of `index`."""
        out: list[pl.Series] = []
        for w in self.windows.values():
            out += _window_sums(df, w, index.row_subject, index.keys.len())
        return out


@dataclass(frozen=True)
class DayMonths:
    """The window's month of each of its days, for a time column without a time zone: a
    row's month is then a look-up by its day number, far cheaper than extracting the
    calendar month of every row (and the same month: a day is in one calendar month)."""

    per_day: int  # units of the column's physical integer per day (1 for a date)
    first_day: int  # days since 1970-01-01 of the window's first day
    offsets: np.ndarray  # per day from first_day: months before the as-of month

    def of(self, physical: np.ndarray) -> np.ndarray:
        """Per value, its month offset (-1 outside the window's days)."""
        i = physical.astype(np.int64, copy=True)
        if self.per_day != 1:
            i //= self.per_day
        # In place, then one look-up in the offsets padded with -1 on both sides: three
        # passes over one array instead of six over fresh ones (same numbers).
        i -= self.first_day - 1
        np.clip(i, 0, len(self.offsets) + 1, out=i)
        return np.concatenate(([-1], self.offsets, [-1]))[i]


_UNITS_PER_DAY = {"ns": 86_400_000_000_000, "us": 86_400_000_000, "ms": 86_400_000}


def day_months(dtype: pl.DataType, first_month: int, months: int) -> DayMonths | None:
    """The look-up for a window of `months` from `first_month` (year * 12 + month - 1), or
    None when the column's calendar cannot be read off its integer (a time zone)."""
    if dtype == pl.Date:
        per_day = 1
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        per_day = _UNITS_PER_DAY[dtype.time_unit or "us"]
    else:
        return None
    starts = [date(m // 12, m % 12 + 1, 1) for m in range(first_month, first_month + months + 1)]
    epoch = date(1970, 1, 1)
    lengths = [(b - a).days for a, b in itertools.pairwise(starts)]
    offsets = np.repeat(np.arange(months - 1, -1, -1, dtype=np.int64), lengths)
    return DayMonths(per_day, (starts[0] - epoch).days, offsets)


def _months(sel: pl.DataFrame, w: MonthlyWindow) -> np.ndarray:
    if w.days is None:
        return sel.get_column(MONTH).to_numpy()
    return w.days.of(sel.get_column(w.time_column).to_physical().to_numpy())


def _window_sums(df: pl.DataFrame, w: MonthlyWindow, gid: np.ndarray, n: int) -> list[pl.Series]:
    names = list(w.series)
    schema = df.head(0).select(*[e.alias(b) for b, e in w.series.items()]).schema
    # Integers and booleans sum exactly in int64; anything else (floats) in float64.
    floats = {b: not (schema[b].is_integer() or schema[b] == pl.Boolean) for b in names}
    sums = {b: np.zeros(n * w.months, np.float64 if floats[b] else np.int64) for b in names}
    count = np.zeros(n, np.int64)
    for start in range(0, df.height, CHUNK_ROWS):
        part = df.slice(start, CHUNK_ROWS)
        sel = (
            part.lazy()
            .with_columns(pl.Series(GID, gid[start : start + part.height]))
            .filter(w.mask)
            .select(
                GID,
                pl.col(w.time_column) if w.days is not None else w.offset.alias(MONTH),
                *[
                    e.cast(pl.Float64 if floats[b] else pl.Int64).fill_null(0).alias(b)
                    for b, e in w.series.items()
                ],
            )
            .collect()
        )
        g = sel.get_column(GID).to_numpy()
        count += np.bincount(g, minlength=n)
        m = _months(sel, w)
        # A row whose calendar month falls outside the window's months (a time zone at a
        # month edge) counts as a row in the window but adds to no month, as before.
        ok = (m >= 0) & (m < w.months)
        every = bool(ok.all())  # the usual case: the mask kept the window's days only
        # Month-major: each month's sums are one contiguous run of subjects, so the month
        # columns below are views, not strided copies (the same sums, in the same order).
        k = m * n if every else m[ok] * n
        k += g if every else g[ok]
        for b in names:
            values = sel.get_column(b).to_numpy()
            np.add.at(sums[b], k, values if every else values[ok])
    out = [pl.Series(w.count, count)]
    for b in names:
        grid = sums[b].reshape(w.months, n)
        out += [pl.Series(c, grid[i]) for i, c in enumerate(w.columns(b))]
    return out
