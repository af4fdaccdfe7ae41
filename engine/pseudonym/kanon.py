"""k-anonymity for everything published that reports groups (profiles, KPIs, routing summaries).

`suppress_small_cells` nulls a reported row whose count is below k (the count and every other
numeric cell computed from those people), flags it, and returns one lineage record per
suppression. `check_k_anonymity` lists the quasi-identifier groups smaller than k.

Records name the table, the cell key (group-by values, which are already generalised labels
or tokens, never raw identifiers) and the reason; never the suppressed figures.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.errors import UsageError

SUPPRESSED_FLAG = "_suppressed"
REASON = "k_anonymity_below_minimum"


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UsageError(f"k-anonymity minimum must be a positive integer, got {k!r}")


def suppress_small_cells(
    df: pl.DataFrame, count_col: str, k: int, label: str
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Rows with count < k: count and dependent numeric cells nulled, `_suppressed` = True.

    Key columns are the non-numeric columns (group labels); they stay so the table still
    shows that a group exists. A null count is treated as suppressed too (unknown size).
    """
    _check_k(k)
    if count_col not in df.columns:
        raise UsageError(f"{label}: no count column '{count_col}'")
    numeric = [c for c, t in df.schema.items() if t.is_numeric() and c != count_col]
    keys = [c for c in df.columns if c not in numeric and c != count_col and c != SUPPRESSED_FLAG]
    small = pl.col(count_col).is_null() | (pl.col(count_col) < k)
    out = df.with_columns(
        *[pl.when(small).then(None).otherwise(pl.col(c)).alias(c) for c in [count_col, *numeric]],
        small.alias(SUPPRESSED_FLAG),
    )
    hit = df.filter(small).select(keys)
    records = [
        {
            "table": label,
            "cell": {c: (None if v is None else str(v)) for c, v in row.items()},
            "reason": REASON,
            "k": k,
            "columns": [count_col, *numeric],
        }
        for row in hit.iter_rows(named=True)  # one record per suppressed cell, not per person
    ]
    return out, records


def check_k_anonymity(df: pl.DataFrame, quasi_cols: list[str], k: int) -> list[dict[str, Any]]:
    """Groups of rows sharing the same quasi-identifier values with fewer than k members.

    Each item: {"group": {col: value}, "size": n}; values are the (already generalised)
    group keys, nothing else from the rows.
    """
    _check_k(k)
    missing = [c for c in quasi_cols if c not in df.columns]
    if missing:
        raise UsageError(f"k-anonymity check: quasi-identifier columns missing: {missing}")
    if not quasi_cols:
        return [] if df.height >= k or df.height == 0 else [{"group": {}, "size": df.height}]
    groups = (
        df.group_by(quasi_cols)
        .agg(pl.len().alias("_size"))
        .filter(pl.col("_size") < k)
        .sort(quasi_cols, nulls_last=True)
    )
    return [
        {
            "group": {c: (None if row[c] is None else str(row[c])) for c in quasi_cols},
            "size": int(row["_size"]),
        }
        for row in groups.iter_rows(named=True)
    ]
