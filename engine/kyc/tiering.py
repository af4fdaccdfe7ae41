"""Tiering: score, tier, floors, reasons and review dates, then stability against the previous
version. All of it is Polars expressions over the facts frame; the ruleset's conditions are
compiled once (engine.conditions), never evaluated per row in Python.

Order of operations (EBA GL 2021/02):
  score      = sum of the points of every matched factor
  score tier = highest tier whose threshold the score reaches (SDD / CDD / EDD)
  computed   = max(score tier, every matched floor's min_tier): weighting never stops a
               customer being rated high risk
  system     = computed, except a downgrade against the previous version waits the cooldown
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date

import polars as pl

from engine.conditions import compile_condition
from engine.kyc.ruleset import TIER_RANK, TIERS, KycRuleset

KEY = "customer_id"


def add_months(d: date, months: int) -> date:
    """Calendar months, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    idx = d.month - 1 + months
    year, month = d.year + idx // 12, idx % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def review_dates(ruleset: KycRuleset, as_of: date) -> dict[str, date]:
    return {t: add_months(as_of, ruleset.review_months[t]) for t in TIERS}


def rank_to_tier(rank: pl.Expr) -> pl.Expr:
    return rank.replace_strict(list(range(len(TIERS))), list(TIERS), return_dtype=pl.String)


def tier_to_rank(tier: pl.Expr) -> pl.Expr:
    return tier.cast(pl.String).replace_strict(TIER_RANK, default=None, return_dtype=pl.Int8)


def score_tiers(facts: pl.DataFrame, ruleset: KycRuleset) -> pl.DataFrame:
    """customer_id, jurisdiction, score, computed_tier, reasons, reason_codes, factors."""
    schema = facts.schema
    factor_hits = [
        (f, compile_condition(f.condition, schema).alias(f"_f{i}"))
        for i, f in enumerate(ruleset.factors)
    ]
    floor_hits = [
        (f, compile_condition(f.condition, schema).alias(f"_l{i}"))
        for i, f in enumerate(ruleset.floors)
    ]
    hit_cols = [e for _, e in factor_hits] + [e for _, e in floor_hits]
    keep = [c for c in (KEY, "jurisdiction", "persona_id", "persona_name") if c in facts.columns]
    lf = facts.lazy().select(*keep, *hit_cols)

    f_cols = [(f, pl.col(f"_f{i}")) for i, (f, _) in enumerate(factor_hits)]
    l_cols = [(f, pl.col(f"_l{i}")) for i, (f, _) in enumerate(floor_hits)]
    score = (
        pl.sum_horizontal([pl.when(c).then(pl.lit(f.points)).otherwise(0) for f, c in f_cols])
        if f_cols
        else pl.lit(0)
    ).cast(pl.Int64)
    th = ruleset.thresholds
    score_rank = (
        pl.when(pl.col("score") >= th["EDD"])
        .then(pl.lit(TIER_RANK["EDD"]))
        .when(pl.col("score") >= th["CDD"])
        .then(pl.lit(TIER_RANK["CDD"]))
        .otherwise(pl.lit(TIER_RANK["SDD"]))
    )
    floor_rank = [
        pl.when(c).then(pl.lit(TIER_RANK[f.min_tier])).otherwise(pl.lit(0)) for f, c in l_cols
    ]
    rank = pl.max_horizontal(score_rank, *floor_rank).cast(pl.Int8)

    reason_parts = [
        pl.when(c).then(
            pl.lit(
                f"{f.reason_code}(+{f.points})" if f.points >= 0 else f"{f.reason_code}({f.points})"
            )
        )
        for f, c in f_cols
    ] + [pl.when(c).then(pl.lit(f"{f.reason_code}(floor:{f.min_tier})")) for f, c in l_cols]
    code_parts = [pl.when(c).then(pl.lit(f.reason_code)) for f, c in f_cols + l_cols]
    id_parts = [pl.when(c).then(pl.lit(f.id)) for f, c in f_cols] + [
        pl.when(c).then(pl.lit(f.id or f"floor.{f.reason_code.lower()}")) for f, c in l_cols
    ]
    out = (
        lf.with_columns(score.alias("score"))
        .with_columns(
            rank.alias("_rank"),
            _list(reason_parts).alias("reasons"),
            _list(code_parts).alias("reason_codes"),
            _list(id_parts).alias("factors"),
        )
        .with_columns(
            rank_to_tier(pl.col("_rank")).alias("computed_tier"),
            # Every customer carries at least one reason: a bare tier is what analysts hate.
            pl.when(pl.col("reasons").list.len() == 0)
            .then(pl.lit(["NO_RISK_FACTORS(+0)"]))
            .otherwise(pl.col("reasons"))
            .alias("reasons"),
            pl.when(pl.col("reason_codes").list.len() == 0)
            .then(pl.lit(["NO_RISK_FACTORS"]))
            .otherwise(pl.col("reason_codes").list.unique(maintain_order=True))
            .alias("reason_codes"),
        )
        .drop([c.meta.output_name() for c in hit_cols] + ["_rank"])
    )
    return out.sort(KEY).collect()


def _list(parts: Sequence[pl.Expr]) -> pl.Expr:
    if not parts:
        return pl.lit([], dtype=pl.List(pl.String))
    return pl.concat_list(parts).list.drop_nulls()


def apply_stability(
    scored: pl.DataFrame,
    previous: pl.DataFrame | None,
    ruleset: KycRuleset,
    as_of: date,
    cooldown_days: int,
) -> pl.DataFrame:
    """Adds system_tier, tier, tier_change, out_of_cycle_review, downgrade_pending_since,
    review_due and ruleset_version. Upgrades apply at once; a downgrade waits until it has
    been computed continuously for `cooldown_days`."""
    if cooldown_days < 0:
        raise ValueError("cooldown_days must be >= 0")
    prev = _previous(previous)
    lf = scored.lazy().join(prev, on=KEY, how="left")
    new_rank = tier_to_rank(pl.col("computed_tier"))
    prev_rank = tier_to_rank(pl.col("_prev_tier"))
    is_new = pl.col("_prev_tier").is_null()
    up = new_rank > prev_rank
    down = new_rank < prev_rank
    pending_since = pl.coalesce(pl.col("_prev_pending"), pl.lit(as_of))
    waited = (pl.lit(as_of) - pending_since).dt.total_days() >= cooldown_days
    lf = lf.with_columns(
        pl.when(is_new)
        .then(pl.lit("new"))
        .when(up)
        .then(pl.lit("upgrade"))
        .when(down & waited)
        .then(pl.lit("downgrade"))
        .when(down)
        .then(pl.lit("downgrade_deferred"))
        .otherwise(pl.lit("same"))
        .alias("tier_change"),
        pl.when(down & ~waited)
        .then(pending_since)
        .otherwise(None)
        .alias("downgrade_pending_since"),
        # A change in the matched factors is a trigger event (AMLR Art. 26(2)).
        (
            ~is_new
            & pl.col("_prev_factors").is_not_null()
            & (pl.col("factors").list.sort().list.join("|") != pl.col("_prev_factors"))
        )
        .fill_null(False)
        .alias("out_of_cycle_review"),
    )
    deferred = pl.col("tier_change") == "downgrade_deferred"
    lf = lf.with_columns(
        pl.when(deferred)
        .then(pl.col("_prev_tier"))
        .otherwise(pl.col("computed_tier"))
        .alias("system_tier"),
    ).with_columns(pl.col("system_tier").alias("tier"))
    notes = [
        pl.when(pl.col("tier_change") == "upgrade").then(
            pl.format("TIER_UPGRADE(from {})", pl.col("_prev_tier"))
        ),
        pl.when(pl.col("tier_change") == "downgrade").then(
            pl.format("DOWNGRADE_APPLIED(from {})", pl.col("_prev_tier"))
        ),
        pl.when(deferred).then(
            pl.format(
                "DOWNGRADE_DEFERRED(computed {}, until {})",
                pl.col("computed_tier"),
                (pl.col("downgrade_pending_since") + pl.duration(days=cooldown_days)).dt.to_string(
                    "%Y-%m-%d"
                ),
            )
        ),
        pl.when(pl.col("out_of_cycle_review")).then(pl.lit("OUT_OF_CYCLE_REVIEW(factors changed)")),
    ]
    codes = [
        pl.when(pl.col("tier_change") == "upgrade").then(pl.lit("TIER_UPGRADE")),
        pl.when(pl.col("tier_change") == "downgrade").then(pl.lit("DOWNGRADE_APPLIED")),
        pl.when(deferred).then(pl.lit("DOWNGRADE_DEFERRED")),
        pl.when(pl.col("out_of_cycle_review")).then(pl.lit("OUT_OF_CYCLE_REVIEW")),
    ]
    due = review_dates(ruleset, as_of)
    lf = lf.with_columns(
        pl.concat_list([pl.col("reasons"), pl.concat_list(notes).list.drop_nulls()]).alias(
            "reasons"
        ),
        pl.concat_list([pl.col("reason_codes"), pl.concat_list(codes).list.drop_nulls()]).alias(
            "reason_codes"
        ),
        pl.col("system_tier")
        .replace_strict(list(due), list(due.values()), return_dtype=pl.Date)
        .alias("review_due"),
        pl.lit(ruleset.version).alias("ruleset_version"),
        pl.lit(None, pl.String).alias("override_id"),
    )
    return lf.drop("_prev_tier", "_prev_factors", "_prev_pending").sort(KEY).collect()


def _previous(previous: pl.DataFrame | None) -> pl.LazyFrame:
    """The previous version's routing reduced to what stability needs. Compares against the
    system tier (before overrides): an override is a human decision, not the model's state."""
    empty = pl.LazyFrame(
        schema={
            KEY: pl.String,
            "_prev_tier": pl.String,
            "_prev_factors": pl.String,
            "_prev_pending": pl.Date,
        }
    )
    if previous is None or previous.height == 0:
        return empty
    cols = previous.columns
    tier_col = "system_tier" if "system_tier" in cols else "tier"
    if KEY not in cols or tier_col not in cols:
        return empty
    return previous.lazy().select(
        pl.col(KEY).cast(pl.String),
        pl.col(tier_col).cast(pl.String).alias("_prev_tier"),
        (
            pl.col("factors").list.sort().list.join("|")
            if "factors" in cols
            else pl.lit(None, pl.String)
        ).alias("_prev_factors"),
        (
            pl.col("downgrade_pending_since").cast(pl.Date)
            if "downgrade_pending_since" in cols
            else pl.lit(None, pl.Date)
        ).alias("_prev_pending"),
    )
