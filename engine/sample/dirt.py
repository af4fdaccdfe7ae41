"""Planted dirt: the faults a real feed has, at a known rate, in known rows.

Each kind maps to the quarantine reason the contract checks must give it, so tests can
check that every planted row lands in quarantine for the right reason. Rows are chosen
without replacement per source, so one row carries one planted fault (a crm fault also
makes that customer's child rows orphans: they reference no valid customer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from engine.sample.people import _digits, _perm

# kind -> reason code prefix given by the contract checks in engine.sources
REASON: dict[str, str] = {
    "null_required": "required",
    "malformed_email": "format",
    "duplicate_id": "duplicate_key",
    "out_of_range": "range",
    "future_date": "future",
    "orphan": "orphan",
    "wrong_type": "type",
    "not_allowed": "not_allowed",
}

# source -> [(kind, field, bad value for out_of_range / not_allowed)]
PLAN: dict[str, list[tuple[str, str, Any]]] = {
    "crm": [
        ("null_required", "email", None),
        ("malformed_email", "email", None),
        ("duplicate_id", "customer_id", None),
        ("future_date", "signup_date", None),
        ("out_of_range", "annual_income", -1250.0),
        ("wrong_type", "annual_income", None),
    ],
    "bureau": [
        ("null_required", "credit_score", None),
        ("out_of_range", "credit_score", 9999),
        ("future_date", "report_date", None),
        ("orphan", "customer_id", None),
        ("wrong_type", "credit_score", None),
    ],
    "loans": [
        ("null_required", "amount", None),
        ("out_of_range", "amount", -500.0),
        ("future_date", "originated_at", None),
        ("orphan", "customer_id", None),
        ("not_allowed", "status", "pending"),
        ("wrong_type", "tenure_months", None),
    ],
    "transactions": [
        ("null_required", "direction", None),
        ("out_of_range", "amount", -42.5),
        ("future_date", "ts", None),
        ("orphan", "customer_id", None),
        ("wrong_type", "amount", None),
    ],
    "app_events": [
        ("orphan", "customer_id", None),
        ("out_of_range", "logins", -3),
        ("wrong_type", "logins", None),
    ],
    "wallets": [("orphan", "customer_id", None), ("out_of_range", "active_days_90d", 120)],
    "screening": [("orphan", "customer_id", None), ("null_required", "pep", None)],
    "surveys": [("orphan", "customer_id", None), ("out_of_range", "financial_literacy", 9)],
    "privacy_requests": [
        ("orphan", "customer_id", None),
        ("future_date", "requested_at", None),
    ],
    "outcomes": [("orphan", "customer_id", None)],
}


@dataclass(frozen=True)
class PlantedDirt:
    kind: str
    source: str
    field: str
    reason: str  # the reason code the row must carry in quarantine, e.g. "range:credit_score"
    rows: tuple[int, ...]  # 1-based row numbers in the written file

    @property
    def count(self) -> int:
        return len(self.rows)


def _counts(n_rows: int, n_kinds: int, rate: float) -> list[int]:
    if rate <= 0 or n_rows == 0:
        return [0] * n_kinds
    each = max(1, round(rate * n_rows / n_kinds))
    out, left = [], n_rows
    for _ in range(n_kinds):
        take = min(each, left)
        out.append(take)
        left -= take
    return out


def plant(
    df: pl.DataFrame,
    source: str,
    rng: np.random.Generator,
    rate: float,
    fmt: str,
    as_of: date,
    orphan_base: int,
) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """Plant dirt in `df`; returns the frame with a `_dirt` plan-index column and the plan.

    `orphan_base`: first customer number never issued (ids from there on exist nowhere).

    Rows are drawn for every kind in every format, so CSV and Parquet samples of one seed
    share their clean rows; `wrong_type` is applied only to CSV (Parquet is typed).
    """
    plan = PLAN.get(source, [])
    counts = _counts(df.height, len(plan), rate)
    picked = (
        rng.choice(df.height, size=sum(counts), replace=False)
        if sum(counts)
        else np.array([], dtype=np.int64)
    )
    marker = np.full(df.height, -1, dtype=np.int64)
    dup_rows: np.ndarray | None = None
    exprs: dict[str, pl.Expr] = {}
    applied: list[tuple[int, str, str]] = []
    start = 0
    for i, ((kind, field, bad), count) in enumerate(zip(plan, counts, strict=True)):
        rows = np.sort(picked[start : start + count])
        start += count
        if count == 0 or (kind == "wrong_type" and fmt != "csv"):
            continue
        applied.append((i, kind, field))
        marker[rows] = i
        mask = np.zeros(df.height, dtype=bool)
        mask[rows] = True
        hit = pl.lit(pl.Series(mask))
        # Several kinds may hit one field (null and malformed e-mails): chain, never replace.
        col = exprs.get(field, pl.col(field))
        if kind == "null_required":
            new = pl.when(hit).then(None).otherwise(col)
        elif kind == "malformed_email":
            new = pl.when(hit).then(col.str.replace("@", "_at_", literal=True)).otherwise(col)
        elif kind in ("out_of_range", "not_allowed"):
            new = pl.when(hit).then(pl.lit(bad, dtype=df.schema[field])).otherwise(col)
        elif kind == "future_date":
            later = as_of + timedelta(days=int(rng.integers(30, 400)))
            new = pl.when(hit).then(pl.lit(later).cast(df.schema[field])).otherwise(col)
        elif kind == "orphan":
            ghost = _perm(np.arange(orphan_base, orphan_base + count), 7_919_993, 123_457, 10**9)
            ghost_ids = pl.select(pl.repeat(None, df.height, dtype=pl.String)).to_series()
            ghost_ids = ghost_ids.scatter(rows, pl.Series(["CUS"] * count) + _digits(ghost, 9))
            new = pl.when(hit).then(pl.lit(ghost_ids)).otherwise(col)
        elif kind == "wrong_type":
            new = pl.when(hit).then(pl.lit("n/a")).otherwise(col.cast(pl.String))
        elif kind == "duplicate_id":
            dup_rows = rows
            continue
        else:  # pragma: no cover - PLAN and this switch are edited together
            raise AssertionError(kind)
        exprs[field] = new.alias(field)
    out = df.with_columns(list(exprs.values()), _dirt=pl.Series(marker)).with_columns(
        pl.when(pl.col("_dirt") >= 0).then(pl.col("_dirt")).otherwise(None)
    )
    if dup_rows is not None:
        # An exact copy of the row: both copies share the key, so both are ambiguous.
        out = pl.concat([out, out[dup_rows.tolist()]])
    return out, applied
