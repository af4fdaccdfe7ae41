"""Routing: ordered queue rules (first match wins) -> queue, SLA and due date, plus the
per-queue summaries that get published (small cells suppressed for k-anonymity).

Queue conditions see: tier, computed_tier, system_tier, score, out_of_cycle_review,
tier_change, and one boolean column per reason code, `reason.<CODE>`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from engine.conditions import compile_condition
from engine.kyc.ruleset import TIERS, KycRuleset

KEY = "customer_id"


# Everything a queue rule can see; the queue is a function of these alone.
ROUTE_KEY: tuple[str, ...] = (
    "tier",
    "computed_tier",
    "system_tier",
    "score",
    "out_of_cycle_review",
    "tier_change",
    "_reason_key",
)
_SEP = "|"


def with_reason_key(table: pl.DataFrame) -> pl.DataFrame:
    """`_reason_key` (codes joined by "|"), computed only if the table does not carry it."""
    if "_reason_key" in table.columns:
        return table
    return table.with_columns(pl.col("reason_codes").list.join(_SEP).alias("_reason_key"))


def routing_view(combos: pl.DataFrame, ruleset: KycRuleset) -> pl.DataFrame:
    """The columns queue conditions are compiled against, over distinct combinations."""
    codes = pl.col("_reason_key").str.split(_SEP)
    return combos.with_columns(
        codes.list.contains(pl.lit(code)).alias(f"reason.{code}") for code in ruleset.reason_codes()
    )


def queue_expr(ruleset: KycRuleset, schema: pl.Schema) -> pl.Expr:
    """One when/then chain in rule order; a customer no rule matches goes to default_queue,
    so nobody is ever left unrouted."""
    chain: Any = None
    for rule in ruleset.queues:
        cond = compile_condition(rule.condition, schema)
        chain = (pl.when(cond) if chain is None else chain.when(cond)).then(pl.lit(rule.queue))
    return chain.otherwise(pl.lit(ruleset.default_queue))


def assign_queues(table: pl.DataFrame, ruleset: KycRuleset, as_of: date) -> pl.DataFrame:
    """Adds queue, sla_days and sla_due (as_of + sla_days). The rules are evaluated over the
    distinct routing-relevant combinations (tens to hundreds) and joined back."""
    keyed = with_reason_key(table)
    if "system_tier" not in keyed.columns:
        keyed = keyed.with_columns(pl.col("tier").alias("system_tier"))
    combos = routing_view(keyed.select(ROUTE_KEY).unique(), ruleset)
    sla = ruleset.queue_sla()
    routed = combos.with_columns(queue_expr(ruleset, combos.schema).alias("queue")).select(
        *ROUTE_KEY,
        "queue",
        pl.col("queue")
        .replace_strict(list(sla), list(sla.values()), return_dtype=pl.Int64)
        .alias("sla_days"),
    )
    out = keyed.join(routed, on=list(ROUTE_KEY), how="left", nulls_equal=True).with_columns(
        (pl.lit(as_of) + pl.duration(days=pl.col("sla_days"))).alias("sla_due")
    )
    return out.select([*table.columns, "queue", "sla_days", "sla_due"])


def summarise(table: pl.DataFrame, ruleset: KycRuleset) -> dict[str, dict[str, Any]]:
    """Per queue: count, SLA, counts by tier and by reason code; any cell under
    `min_cell_size` is published as null and listed under "suppressed"."""
    from engine.pseudonym.kanon import suppress_small_cells

    k = ruleset.min_cell_size
    totals, tot_rec = suppress_small_cells(
        table.group_by("queue").agg(pl.len().alias("count")).sort("queue"),
        "count",
        k,
        "kyc.queue_totals",
    )
    by_tier, tier_rec = suppress_small_cells(
        table.group_by("queue", "tier").agg(pl.len().alias("count")).sort("queue", "tier"),
        "count",
        k,
        "kyc.queue_tiers",
    )
    # Count per distinct reason set first (small), then split the sets into codes.
    by_set = with_reason_key(table).group_by("queue", "_reason_key").agg(pl.len().alias("n"))
    by_reason, reason_rec = suppress_small_cells(
        by_set.select("queue", pl.col("_reason_key").str.split(_SEP).alias("reason_code"), "n")
        .explode("reason_code")
        .group_by("queue", "reason_code")
        .agg(pl.col("n").sum().cast(pl.UInt32).alias("count"))
        .sort("queue", "reason_code"),
        "count",
        k,
        "kyc.queue_reasons",
    )
    out: dict[str, dict[str, Any]] = {
        q.queue: {
            "count": 0,
            "sla_days": q.sla_days,
            "tiers": {},
            "reasons": {},
            "suppressed": [],
        }
        for q in ruleset.queues
    }
    for row in totals.iter_rows(named=True):
        out[row["queue"]]["count"] = row["count"]
    tier_order = {t: i for i, t in enumerate(TIERS)}
    for row in sorted(by_tier.iter_rows(named=True), key=lambda r: tier_order[r["tier"]]):
        out[row["queue"]]["tiers"][row["tier"]] = row["count"]
    for row in by_reason.iter_rows(named=True):
        out[row["queue"]]["reasons"][row["reason_code"]] = row["count"]
    for rec in [*tot_rec, *tier_rec, *reason_rec]:
        out[str(rec["cell"]["queue"])]["suppressed"].append(
            {"table": rec["table"], "cell": rec["cell"], "reason": rec["reason"], "k": rec["k"]}
        )
    return out
