"""Monthly sums and subject grouping of the features stage: the same numbers whatever the
row order, the column's time type or the source's shape; window edges; empty sources."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.enforce import GovernedFrames
from engine.features import build_features
from engine.features.aggregate import SourceAggregates
from engine.features.compile import Window, month_index
from engine.features.groups import hashed, runs_of
from engine.features.spec import FeatureSpec
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed

AS_OF = date(2026, 10, 31)


def _shuffled(governed: GovernedFrames, seed: int) -> GovernedFrames:
    frames = {
        name: f.sample(fraction=1.0, shuffle=True, seed=seed + i)
        for i, (name, f) in enumerate(sorted(governed.frames.items()))
    }
    return replace(governed, frames=frames)


def test_sample_features_are_bit_identical_whatever_the_row_order() -> None:
    """A subject's rows adjacent (the sorted path) or scattered (the hashed path): every
    feature of the sample declaration comes out with the same bits."""
    governed, _ = synthetic_governed(500, seed=11)
    grouped = build_features(governed, AS_OF, sample_config())
    scattered = build_features(_shuffled(governed, 5), AS_OF, sample_config())
    assert runs_of(governed.frames["transactions"]["customer_id"]) is not None
    assert runs_of(_shuffled(governed, 5).frames["transactions"]["customer_id"]) is None
    assert grouped.frame.equals(scattered.frame)
    assert grouped.frame.schema == scattered.frame.schema


def _transactions(rng: np.random.Generator, dtype: pl.DataType, n: int = 3000) -> pl.DataFrame:
    start = datetime(2025, 9, 20)
    minutes = rng.integers(0, 420 * 24 * 60, size=n)
    owners = np.sort(rng.integers(0, 40, size=n))
    ts = pl.Series([start + timedelta(minutes=int(m)) for m in minutes])
    return pl.DataFrame(
        {
            "customer_id": [f"c{o:03d}" for o in owners],
            "ts": ts.cast(dtype) if dtype != pl.Date else ts.dt.date(),
            "amount": np.round(rng.normal(50, 80, size=n), 2),
            "units": rng.integers(0, 9, size=n),
            "credit": rng.random(n) < 0.4,
        }
    )


def _monthly_columns(df: pl.DataFrame, spec: FeatureSpec) -> dict[str, dict[int, list[float]]]:
    """Per subject, the month sums of the feature's series, through SourceAggregates."""
    agg = SourceAggregates(source="t", schema=dict(df.schema), window=Window(AS_OF))
    agg.add("f", spec)
    index = runs_of(df["customer_id"]) or hashed(df["customer_id"])
    cols = agg.monthly.columns(df, index)
    keys = index.keys.to_list()
    out: dict[str, dict[int, list[float]]] = {k: {} for k in keys}
    for s in cols:
        if s.name.startswith("_ms"):
            base, month = s.name.rsplit("_", 1)
            series = int(base[3:])
            for k, v in zip(keys, s.to_list(), strict=True):
                out[k].setdefault(series, [0.0] * 12)[int(month)] = v
    return out


def _reference(df: pl.DataFrame, value: pl.Expr) -> dict[str, list[float]]:
    """Month sums by a plain group_by over (subject, calendar month)."""
    w = Window(AS_OF)
    t = pl.col("ts")
    end = pl.lit(w.end).cast(df.schema["ts"])
    start = pl.lit(w.start(12)).cast(df.schema["ts"])
    sums = (
        df.filter((t < end) & (t >= start))
        .with_columns((pl.lit(w.month) - month_index(t)).alias("m"), value.alias("v"))
        .group_by("customer_id", "m")
        .agg(pl.col("v").sum())
    )
    out: dict[str, list[float]] = {k: [0.0] * 12 for k in df["customer_id"].unique()}
    for k, m, v in sums.iter_rows():
        out[k][m] = v
    return out


@pytest.mark.parametrize(
    "dtype",
    [pl.Datetime("us"), pl.Datetime("ns"), pl.Datetime("ms"), pl.Date, pl.Datetime("us", "UTC")],
    ids=["us", "ns", "ms", "date", "utc"],
)
@pytest.mark.parametrize("shuffle", [False, True], ids=["adjacent", "scattered"])
def test_monthly_sums_match_a_group_by_per_subject_and_month(
    dtype: pl.DataType, shuffle: bool
) -> None:
    df = _transactions(np.random.default_rng(4), dtype)
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=1)
    spec = FeatureSpec(
        source="t",
        column="amount",
        kind="money",
        transform="monthly_cv",
        time_column="ts",
        window_months=12,
        sign_when={"field": "credit", "op": "eq", "value": True},
        scale_when={"field": "credit", "op": "eq", "value": True},
    )
    got = _monthly_columns(df, spec)
    cents = (pl.col("amount") * 100).round().cast(pl.Int64)
    signed = _reference(df, cents * pl.when(pl.col("credit")).then(1).otherwise(-1))
    credit = _reference(df, pl.when(pl.col("credit")).then(cents).otherwise(0))
    for k in signed:
        assert got[k][0] == signed[k], k
        assert got[k][1] == credit[k], k

    units = FeatureSpec(
        source="t", column="units", transform="monthly_peak", time_column="ts", window_months=12
    )
    got_units = _monthly_columns(df, units)
    ref_units = _reference(df, pl.col("units"))
    assert {k: v[0] for k, v in got_units.items()} == ref_units


def test_window_edges_count_in_the_right_month() -> None:
    """The first instant of the window's first month and the last of the as-of day are in;
    an instant earlier or the next day are out."""
    first = datetime(2025, 11, 1)
    last = datetime(2026, 10, 31, 23, 59, 59, 999999)
    tick = timedelta(microseconds=1)
    df = pl.DataFrame(
        {
            "customer_id": ["a"] * 4,
            "ts": [first - tick, first, last, last + tick],
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    spec = FeatureSpec(
        source="t", column="amount", kind="money", transform="monthly_peak",
        time_column="ts", window_months=12,
    )  # fmt: skip
    agg = SourceAggregates(source="t", schema=dict(df.schema), window=Window(AS_OF))
    agg.add("f", spec)
    index = runs_of(df["customer_id"])
    assert index is not None
    cols = {s.name: s.to_list() for s in agg.monthly.columns(df, index)}
    months = [cols[f"_ms0_{i}"][0] for i in range(12)]
    assert months == [400] + [0] * 10 + [200]  # cents; offset 0 = October 2026
    assert cols["_n_ts_12"] == [2]


def test_subject_index_runs_hashed_and_slices() -> None:
    keys = pl.Series(["b", "b", "a", "c", "c", "c"])
    idx = runs_of(keys)
    assert idx is not None and idx.keys.to_list() == ["b", "a", "c"]
    assert idx.row_subject.tolist() == [0, 0, 1, 2, 2, 2]
    assert runs_of(pl.Series(["a", "b", "a"])) is None
    h = hashed(pl.Series(["x", "y", "x", None, "y"]))
    assert h.keys.to_list() == ["x", "y", None]
    assert h.row_subject.tolist() == [0, 1, 0, 2, 1]
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 30, size=200)
    many = runs_of(pl.Series(np.repeat(np.arange(200), lengths).astype(str)))
    assert many is not None
    slices = many.slices(64)
    assert slices[0][0] == 0 and slices[-1][1] == lengths.sum()
    for (_, hi), (lo, _) in itertools.pairwise(slices):
        assert hi == lo and many.row_subject[lo] != many.row_subject[lo - 1]


def test_a_source_without_rows_gives_every_subject_its_fill() -> None:
    governed, _ = synthetic_governed(60, seed=2)
    frames = dict(governed.frames)
    frames["transactions"] = frames["transactions"].clear()
    ff = build_features(replace(governed, frames=frames), AS_OF, sample_config())
    assert ff.frame.height == governed.frames["crm"].height
    assert ff.frame["has_transactions"].to_list() == [0] * ff.frame.height
    assert set(ff.frame["cashflow_cv"].to_list()) == {0.0}
    assert set(ff.frame["seasonality"].to_list()) == {1.0}


def _float_source(rows: int, subjects: int, seed: int) -> GovernedFrames:
    rng = np.random.default_rng(seed)
    owners = rng.integers(0, subjects, size=rows)  # scattered: no subject's rows adjacent
    tx = pl.DataFrame(
        {
            "customer_id": [f"s{o:05d}" for o in owners],
            "ts": [datetime(2026, 1, 1) + timedelta(hours=int(h)) for h in owners % 5000],
            "amount": rng.lognormal(3.0, 1.2, size=rows),
            "direction": np.where(rng.random(rows) < 0.5, "credit", "debit"),
        }
    )
    crm = pl.DataFrame({"customer_id": [f"s{o:05d}" for o in range(subjects)]})
    return GovernedFrames(
        jurisdiction="EU-DE",
        purpose="marketing_segmentation",
        frames={"crm": crm, "transactions": tx},
        accounting={},
        plan_digest="0" * 64,
        subject_domain="kyc",
    )


def test_float_std_and_mean_are_bit_identical_run_to_run() -> None:
    """A float std, cv or mean reduced by a threaded hash group_by changes in its last bits
    from run to run; each subject is reduced on its own, in row order, instead."""
    config = sample_config()
    extra = {
        "amount_cv": FeatureSpec(
            source="transactions", column="amount", transform="cv", time_column="ts"
        ),
        "amount_mean": FeatureSpec(source="transactions", column="amount", transform="mean"),
        "amount_std": FeatureSpec(source="transactions", column="amount", transform="std"),
    }
    config = config.model_copy(update={"features": {**config.features, **extra}})
    governed = _float_source(200_000, 4000, seed=8)
    first = build_features(governed, AS_OF, config).frame
    for _ in range(4):
        assert build_features(governed, AS_OF, config).frame.equals(first)
    # Against a reduction of each subject's own rows.
    tx = governed.frames["transactions"]
    some = first.head(5)["customer_id"].to_list()
    for k in some:
        v = tx.filter(pl.col("customer_id") == k)["amount"]
        row = first.filter(pl.col("customer_id") == k)
        assert row["amount_mean"].item() == pytest.approx(v.mean(), rel=1e-12)
        assert row["amount_std"].item() == pytest.approx(v.std(ddof=0), rel=1e-12)
