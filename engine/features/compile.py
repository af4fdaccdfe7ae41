"""Declared features compiled to Polars expressions.

Row transforms become one expression over the subjects frame. Aggregations of one source
become routed columns (the value where the row is in the feature's window and matches its
condition, else null) plus one aggregate expression each, so a source is read in a single
group_by whatever the number of features on it. Money is summed in integer cents: exact, so
a threaded group_by cannot change the last bits between identical runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from engine.features.spec import FeatureSpec, OutcomeKind, Transform


def cents(expr: pl.Expr) -> pl.Expr:
    return (expr.cast(pl.Float64) * 100).round().cast(pl.Int64)


def month_index(expr: pl.Expr) -> pl.Expr:
    return expr.dt.year().cast(pl.Int32) * 12 + expr.dt.month().cast(pl.Int32) - 1


def banded(expr: pl.Expr, bands: list[float], labels: list[str]) -> pl.Expr:
    out: pl.Expr = pl.lit(labels[-1])
    # From the highest threshold down so the lowest matching band wins.
    for upper, label in reversed(list(zip(bands, labels, strict=False))):
        out = pl.when(expr < upper).then(pl.lit(label)).otherwise(out)
    return pl.when(expr.is_null()).then(pl.lit(None, dtype=pl.String)).otherwise(out)


def age_years(dob: pl.Expr, as_of: date) -> pl.Expr:
    return (pl.lit(as_of.year) - dob.dt.year()) - (
        pl.lit(as_of.month * 100 + as_of.day) < (dob.dt.month() * 100 + dob.dt.day())
    ).cast(pl.Int32)


@dataclass(frozen=True)
class Window:
    as_of: date

    @property
    def end(self) -> date:  # exclusive
        return self.as_of + timedelta(days=1)

    @property
    def month(self) -> int:
        return self.as_of.year * 12 + self.as_of.month - 1

    def start(self, months: int) -> date:
        first = self.month - months + 1
        return date(first // 12, first % 12 + 1, 1)


def post(spec: FeatureSpec, expr: pl.Expr) -> pl.Expr:
    """The declared steps after the transform, in a fixed order: per_month, scale, clip,
    log1p, bands."""
    if spec.per_month and spec.window_months:
        expr = expr / spec.window_months
    if spec.scale is not None:
        expr = expr * spec.scale
    if spec.clip is not None and spec.transform not in (
        Transform.MONTHLY_CV,
        Transform.MONTHLY_PEAK,
    ):
        expr = expr.clip(spec.clip[0], spec.clip[1])
    if spec.log1p or spec.transform is Transform.LOG1P:
        expr = expr.cast(pl.Float64).log1p()
    if spec.bands is not None and spec.labels is not None:
        expr = banded(expr, spec.bands, spec.labels)
    return expr


def row_expr(spec: FeatureSpec, schema: pl.Schema, w: Window) -> pl.Expr:
    """A row transform over the subjects frame (columns under their declared names)."""
    t = spec.transform
    if t is Transform.RATIO:
        assert spec.columns is not None
        num, den = (pl.col(c).cast(pl.Float64) for c in spec.columns)
        return post(spec, pl.when(den != 0).then(num / den))
    col = spec.value_column()
    assert col is not None
    e = pl.col(col)
    if schema[col] == pl.String:
        # Text as it stands, or a label the policy generalised the input to (an age band
        # instead of a date of birth): passed through, never re-banded.
        return e if spec.bands is not None or t in (Transform.AGE_YEARS,) else post(spec, e)
    if t is Transform.AGE_YEARS:
        e = age_years(e.cast(pl.Date), w.as_of).cast(pl.Float64)
    elif t is Transform.DAYS_SINCE:
        e = (pl.lit(w.as_of) - e.cast(pl.Date)).dt.total_days().cast(pl.Int64)
    elif t is Transform.MONTHS_SINCE:
        e = (pl.lit(w.month) - month_index(e)).cast(pl.Float64)
    elif spec.kind is OutcomeKind.MONEY:
        e = cents(e) / 100
    return post(spec, e)
