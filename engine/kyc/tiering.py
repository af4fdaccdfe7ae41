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
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from engine.conditions import compile_condition
from engine.errors import PolicyError
from engine.kyc.ruleset import TIER_RANK, TIERS, FactorRule, FloorRule, KycRuleset

KEY = "customer_id"
# One bit per factor and floor; the pattern shares an Int64 with 26 bits of stability facts.
MAX_RULES = 36


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


@dataclass(frozen=True)
class Scored:
    """Per customer: score, computed_tier, the pattern of matched rules (`_mask`) and its
    `factors_key`; per distinct pattern: the reason lists (joined back at the end, once)."""

    table: pl.DataFrame
    patterns: pl.DataFrame  # _mask, reasons, reason_codes, factors


def score_tiers(facts: pl.DataFrame, ruleset: KycRuleset) -> Scored:
    """Score and computed tier for every customer.

    Each customer's matched rules become one bit pattern (one vectorised pass over the
    compiled conditions). Score, tier and reasons depend only on that pattern, so they are
    worked out once per *distinct* pattern (a few hundred, however many customers) and
    joined back: per-row list building in Polars is an order of magnitude slower.
    """
    schema = facts.schema
    rules: list[FactorRule | FloorRule] = [*ruleset.factors, *ruleset.floors]
    if len(rules) > MAX_RULES:
        raise PolicyError(
            f"kyc ruleset has {len(rules)} factors and floors; at most {MAX_RULES} supported",
            reasons=["kyc.ruleset_too_large"],
        )
    hits = [compile_condition(rule.condition, schema) for rule in rules]
    bits = [
        pl.when(h).then(pl.lit(1 << i, pl.Int64)).otherwise(pl.lit(0, pl.Int64))
        for i, h in enumerate(hits)
    ]
    mask = (pl.sum_horizontal(bits) if bits else pl.lit(0, pl.Int64)).alias("_mask")
    keep = [c for c in (KEY, "jurisdiction", "persona_id", "persona_name") if c in facts.columns]
    masked = facts.lazy().select(*keep, mask).collect()
    explained = [_explain(int(m), rules, ruleset) for m in masked["_mask"].unique().sort()]
    lookup = pl.DataFrame(
        explained,
        schema={
            "_mask": pl.Int64,
            "score": pl.Int64,
            "computed_tier": pl.String,
            "factors_key": pl.String,
            "reasons": pl.List(pl.String),
            "reason_codes": pl.List(pl.String),
            "factors": pl.List(pl.String),
        },
        orient="row",
    )
    table = masked.join(
        lookup.select("_mask", "score", "computed_tier", "factors_key"), on="_mask", how="left"
    ).sort(KEY)
    return Scored(
        table=table, patterns=lookup.select("_mask", "reasons", "reason_codes", "factors")
    )


def _explain(
    mask: int, rules: list[FactorRule | FloorRule], ruleset: KycRuleset
) -> tuple[int, int, str, str, list[str], list[str], list[str]]:
    """Score, tier and reasons for one pattern of matched rules (EBA GL 2021/02: points add
    up; a floor raises the minimum tier, weighting never lowers it)."""
    score, floor_rank = 0, 0
    reasons: list[str] = []
    codes: list[str] = []
    ids: list[str] = []
    for i, rule in enumerate(rules):
        if not mask >> i & 1:
            continue
        if isinstance(rule, FactorRule):
            score += rule.points
            sign = "+" if rule.points >= 0 else ""
            reasons.append(f"{rule.reason_code}({sign}{rule.points})")
            ids.append(rule.id)
        else:
            floor_rank = max(floor_rank, TIER_RANK[rule.min_tier])
            reasons.append(f"{rule.reason_code}(floor:{rule.min_tier})")
            ids.append(rule.id or f"floor.{rule.reason_code.lower()}")
        if rule.reason_code not in codes:
            codes.append(rule.reason_code)
    th = ruleset.thresholds
    score_tier = "EDD" if score >= th["EDD"] else "CDD" if score >= th["CDD"] else "SDD"
    rank = max(TIER_RANK[score_tier], floor_rank)
    if not reasons:
        # Every customer carries at least one reason: a bare tier is what analysts hate.
        reasons, codes = ["NO_RISK_FACTORS(+0)"], ["NO_RISK_FACTORS"]
    return mask, score, TIERS[rank], _SEP.join(sorted(ids)), reasons, codes, ids


_SEP = "|"  # never inside a code or id: both are validated without it


def apply_stability(
    scored: Scored,
    previous: pl.DataFrame | None,
    ruleset: KycRuleset,
    as_of: date,
    cooldown_days: int,
) -> pl.DataFrame:
    """Adds system_tier, tier, tier_change, out_of_cycle_review, downgrade_pending_since,
    review_due, ruleset_version and the reason lists. Upgrades apply at once; a downgrade
    waits until it has been computed continuously for `cooldown_days`."""
    if cooldown_days < 0:
        raise ValueError("cooldown_days must be >= 0")
    prev = _previous(previous)
    lf = scored.table.lazy().join(prev, on=KEY, how="left")
    new_rank = tier_to_rank(pl.col("computed_tier"))
    prev_rank = tier_to_rank(pl.col("_prev_tier"))
    is_new = pl.col("_prev_tier").is_null()
    up = new_rank > prev_rank
    down = new_rank < prev_rank
    pending_since = pl.coalesce(pl.col("_prev_pending"), pl.lit(as_of))
    waited = (pl.lit(as_of) - pending_since).dt.total_days() >= cooldown_days
    due = review_dates(ruleset, as_of)
    table = (
        lf.with_columns(
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
                & pl.col("_prev_fkey").is_not_null()
                & (pl.col("factors_key") != pl.col("_prev_fkey"))
            )
            .fill_null(False)
            .alias("out_of_cycle_review"),
        )
        .with_columns(
            pl.when(pl.col("tier_change") == "downgrade_deferred")
            .then(pl.col("_prev_tier"))
            .otherwise(pl.col("computed_tier"))
            .alias("system_tier"),
        )
        .with_columns(
            pl.col("system_tier").alias("tier"),
            pl.col("system_tier")
            .replace_strict(list(due), list(due.values()), return_dtype=pl.Date)
            .alias("review_due"),
            pl.lit(ruleset.version).alias("ruleset_version"),
            pl.lit(None, pl.String).alias("override_id"),
        )
        .collect()
    )
    return _attach_reasons(table, scored.patterns, cooldown_days).sort(KEY)


# The reason lists of a customer depend only on their rule pattern (`_mask`) and a few
# stability facts; both are packed into one Int64 so the lists are built once per distinct
# combination and attached with a single integer join (multi-column joins and per-row list
# concatenation are several times slower in Polars).
_CHANGES: tuple[str, ...] = ("new", "upgrade", "downgrade", "downgrade_deferred", "same")
_EPOCH = date(1970, 1, 1)
_NOTE_BITS = 26  # change 3 | previous tier + 1: 3 | computed tier 3 | out-of-cycle 1 | days 16


def _combo_key() -> pl.Expr:
    change = pl.col("tier_change").replace_strict(
        list(_CHANGES), list(range(len(_CHANGES))), return_dtype=pl.Int64
    )
    prev = (tier_to_rank(pl.col("_prev_tier")).cast(pl.Int64) + 1).fill_null(0)
    comp = tier_to_rank(pl.col("computed_tier")).cast(pl.Int64)
    ooc = pl.col("out_of_cycle_review").cast(pl.Int64)
    days = (pl.col("downgrade_pending_since") - pl.lit(_EPOCH)).dt.total_days().fill_null(0)
    # Bit fields as arithmetic (Polars expressions have no shift operator); none overlaps.
    note = change + prev * 8 + comp * 64 + ooc * 512 + days.cast(pl.Int64) * 1024
    return (pl.col("_mask") * (1 << _NOTE_BITS) + note).alias("_combo")


def _decode(key: int) -> tuple[int, dict[str, object]]:
    note = key & ((1 << _NOTE_BITS) - 1)
    prev = note >> 3 & 7
    days = note >> 10
    return key >> _NOTE_BITS, {
        "tier_change": _CHANGES[note & 7],
        "_prev_tier": TIERS[prev - 1] if prev else None,
        "computed_tier": TIERS[note >> 6 & 7],
        "out_of_cycle_review": bool(note >> 9 & 1),
        "downgrade_pending_since": _EPOCH + timedelta(days=days) if days else None,
    }


def _attach_reasons(
    table: pl.DataFrame, patterns: pl.DataFrame, cooldown_days: int
) -> pl.DataFrame:
    by_mask = {int(r["_mask"]): r for r in patterns.iter_rows(named=True)}
    keyed = table.with_columns(_combo_key())
    rows = []
    for key in keyed["_combo"].unique().sort():  # distinct combinations, not customers
        mask, facts = _decode(int(key))
        p = by_mask[mask]
        notes, codes = _notes(facts, cooldown_days)
        all_codes = [*p["reason_codes"], *codes]
        rows.append((key, [*p["reasons"], *notes], all_codes, p["factors"], _SEP.join(all_codes)))
    lookup = pl.DataFrame(
        rows,
        schema={
            "_combo": pl.Int64,
            "reasons": pl.List(pl.String),
            "reason_codes": pl.List(pl.String),
            "factors": pl.List(pl.String),
            "_reason_key": pl.String,
        },
        orient="row",
    )
    return keyed.join(lookup, on="_combo", how="left").drop(
        "_combo", "_mask", "_prev_tier", "_prev_fkey", "_prev_pending"
    )


def _notes(c: dict[str, object], cooldown_days: int) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    codes: list[str] = []
    change = c["tier_change"]
    if change == "upgrade":
        notes.append(f"TIER_UPGRADE(from {c['_prev_tier']})")
        codes.append("TIER_UPGRADE")
    elif change == "downgrade":
        notes.append(f"DOWNGRADE_APPLIED(from {c['_prev_tier']})")
        codes.append("DOWNGRADE_APPLIED")
    elif change == "downgrade_deferred":
        since = c["downgrade_pending_since"]
        assert isinstance(since, date)
        until = (since + timedelta(days=cooldown_days)).isoformat()
        notes.append(f"DOWNGRADE_DEFERRED(computed {c['computed_tier']}, until {until})")
        codes.append("DOWNGRADE_DEFERRED")
    if c["out_of_cycle_review"]:
        notes.append("OUT_OF_CYCLE_REVIEW(factors changed)")
        codes.append("OUT_OF_CYCLE_REVIEW")
    return notes, codes


def _previous(previous: pl.DataFrame | None) -> pl.LazyFrame:
    """The previous version's routing reduced to what stability needs. Compares against the
    system tier (before overrides): an override is a human decision, not the model's state."""
    empty = pl.LazyFrame(
        schema={
            KEY: pl.String,
            "_prev_tier": pl.String,
            "_prev_fkey": pl.String,
            "_prev_pending": pl.Date,
        }
    )
    if previous is None or previous.height == 0:
        return empty
    cols = previous.columns
    tier_col = "system_tier" if "system_tier" in cols else "tier"
    if KEY not in cols or tier_col not in cols:
        return empty
    if "factors_key" in cols:
        fkey = pl.col("factors_key")
    elif "factors" in cols:  # older tables: slower, same meaning
        fkey = pl.col("factors").list.sort().list.join(_SEP)
    else:
        fkey = pl.lit(None, pl.String)
    return previous.lazy().select(
        pl.col(KEY).cast(pl.String),
        pl.col(tier_col).cast(pl.String).alias("_prev_tier"),
        fkey.alias("_prev_fkey"),
        (
            pl.col("downgrade_pending_since").cast(pl.Date)
            if "downgrade_pending_since" in cols
            else pl.lit(None, pl.Date)
        ).alias("_prev_pending"),
    )
