"""Value KPIs per persona: customer lifetime value (CLTV) in integer cents, its distribution,
and application / approval rates where the workspace declares them.

    value_kpis(assignments, governed, spec, k) -> (document, suppressed cells)

CLTV per row of the declared source: interest (amount x annual rate x tenure / 12) + fees
- expected loss (amount x loss_given_default when the declared loss condition holds); each
term is rounded to cents before any sum, and sums are integer, so the figures do not depend
on the order a threaded aggregation adds them (FIELD-NOTES, determinism). Customers without a
row have no CLTV (not zero): the distribution covers customers with observed value, and a
persona with fewer than k of them is suppressed (k-anonymity), as every other KPI cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from engine.conditions import compile_condition
from engine.config import ValueSpec
from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import KEY


def _cents(expr: pl.Expr) -> pl.Expr:
    return (expr.cast(pl.Float64) * 100).round().cast(pl.Int64)


def customer_cltv(governed: GovernedFrames, spec: ValueSpec) -> pl.DataFrame:
    """customer_id, cltv_cents (Int64) for customers with at least one row, in no set order
    (every figure drawn from it is a sorted distribution or an integer sum)."""
    frame = governed.frames.get(spec.source)
    needed = [c for c in (spec.amount, spec.rate, spec.tenure_months, spec.fees) if c]
    if frame is None or any(c not in frame.columns for c in [KEY, *needed]):
        missing = [c for c in needed if frame is None or c not in frame.columns]
        raise BadInputError(
            f"value KPIs: {spec.source} column(s) {', '.join(missing) or '(source)'} not "
            "available under this purpose"
        )
    amount = pl.col(spec.amount).cast(pl.Float64).fill_null(0.0)
    interest: pl.Expr = pl.lit(0, dtype=pl.Int64)
    if spec.rate and spec.tenure_months:
        years = pl.col(spec.tenure_months).cast(pl.Float64).fill_null(0.0) / 12.0
        interest = _cents(amount * pl.col(spec.rate).cast(pl.Float64).fill_null(0.0) * years)
    fees = _cents(pl.col(spec.fees).fill_null(0.0)) if spec.fees else pl.lit(0, dtype=pl.Int64)
    loss: pl.Expr = pl.lit(0, dtype=pl.Int64)
    if spec.loss_when is not None:
        hit = compile_condition(spec.loss_when, frame.schema)
        loss = pl.when(hit).then(_cents(amount * spec.loss_given_default)).otherwise(0)
    return (
        frame.lazy()
        .select(KEY, (interest + fees - loss).alias("cltv_cents"))
        .group_by(KEY)
        .agg(pl.col("cltv_cents").sum())
        .collect()
    )


def _applications(
    assignments: pl.DataFrame, governed: GovernedFrames, spec: ValueSpec
) -> pl.DataFrame | None:
    if not spec.applications_source or not spec.approved_column:
        return None
    apps = governed.frames.get(spec.applications_source)
    if apps is None or spec.approved_column not in apps.columns or KEY not in apps.columns:
        raise BadInputError(
            f"value KPIs: {spec.applications_source}.{spec.approved_column} not available "
            "under this purpose"
        )
    per = apps.group_by(KEY).agg(
        pl.len().alias("applications"),
        pl.col(spec.approved_column).cast(pl.Int64).sum().alias("approved"),
    )
    return assignments.select(KEY, "persona_id").join(per, on=KEY, how="left")


def value_kpis(
    assignments: pl.DataFrame,
    governed: GovernedFrames,
    spec: ValueSpec,
    k: int,
    per_customer: Callable[[], pl.DataFrame] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`per_customer`: customer_cltv(governed, spec) made elsewhere (it does not depend on
    the personas: the segment stage starts it before the fits)."""
    customers = per_customer() if per_customer is not None else customer_cltv(governed, spec)
    cltv = assignments.select(KEY, "persona_id").join(customers, on=KEY, how="inner")
    apps = _applications(assignments, governed, spec)
    personas: dict[str, Any] = {}
    suppressed: list[dict[str, Any]] = []
    # One column read per frame, then a mask per persona (a handful), not a frame filter.
    ids = assignments.get_column("persona_id").to_numpy()
    with_value = cltv.get_column("persona_id").to_numpy()
    cents = cltv.get_column("cltv_cents").to_numpy()
    for pid in sorted(int(p) for p in np.unique(ids)):
        size = int((ids == pid).sum())
        values = np.sort(cents[with_value == pid])
        row: dict[str, Any] = {"customers": size, "with_value": len(values)}
        if len(values) >= k:
            q = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9], method="inverted_cdf")
            row["cltv_cents"] = {
                "total": int(values.sum()),
                "mean": int(values.sum() // len(values)),
                **{
                    f"p{int(p * 100)}": int(v)
                    for p, v in zip((0.1, 0.25, 0.5, 0.75, 0.9), q, strict=True)
                },
            }
        else:
            row["cltv_cents"] = None
            suppressed.append(
                {
                    "table": "value",
                    "cell": {"persona_id": str(pid)},
                    "reason": "k_anonymity_below_minimum",
                    "k": k,
                    "columns": ["cltv_cents"],
                }
            )
        if apps is not None:
            mine = apps.filter(pl.col("persona_id") == pid)
            n_apps = int(mine.get_column("applications").fill_null(0).sum())
            applied = int(mine.get_column("applications").is_not_null().sum())
            approved = int(mine.get_column("approved").fill_null(0).sum())
            row["application_rate"] = round(applied / size, 6) if size else None
            row["approval_rate"] = round(approved / n_apps, 6) if n_apps >= k else None
        personas[str(pid)] = row
    doc = {
        "format": "pgov.value/1",
        "source": spec.source,
        "formula": "interest (amount x rate x tenure/12) + fees - amount x LGD when loss_when",
        "loss_given_default": spec.loss_given_default,
        "personas": personas,
    }
    return doc, suppressed
