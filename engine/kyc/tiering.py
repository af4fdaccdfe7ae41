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
from typing import Any

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
    """Per customer (in token order): the identity columns and the pattern of matched rules
    (`_mask`); per distinct pattern: score, computed tier, factors_key and the reason lists
    (joined back at the end, once, with everything else that depends on the pattern)."""

    table: pl.DataFrame
    # _mask, score, computed_tier, factors_key, reasons, reason_codes, factors
    patterns: pl.DataFrame


def score_tiers(facts: pl.DataFrame, ruleset: KycRuleset) -> Scored:
    """Score and computed tier for every customer.

    Each customer's matched rules become one bit pattern (one vectorised pass over the
    compiled conditions). Score, tier and reasons depend only on that pattern, so they are
    worked out once per *distinct* pattern (a few hundred, however many customers) and
    joined back by apply_stability: per-row string and list work in Polars is an order of
    magnitude slower than integer keys.
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
    table = facts.lazy().select(*keep, mask).collect()
    # Customers in token order; facts usually arrive sorted, and checking is cheaper than a
    # string sort of millions of tokens.
    if table[KEY].is_sorted():
        # Flagged, the join with the previous version is a merge join (5x less CPU at 1.6M).
        table = table.with_columns(pl.col(KEY).set_sorted())
    else:
        table = table.sort(KEY)
    explained = [_explain(int(m), rules, ruleset) for m in table["_mask"].unique().sort()]
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
    return Scored(table=table, patterns=lookup)


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
    *,
    with_queues: bool = False,
) -> pl.DataFrame:
    """Adds system_tier, tier, tier_change, out_of_cycle_review, downgrade_pending_since,
    review_due, ruleset_version and the reason lists (and, with_queues, queue / sla_days /
    sla_due). Upgrades apply at once; a downgrade waits until it has been computed
    continuously for `cooldown_days`.

    Everything but the customer's identity columns is a function of (rule pattern, previous
    tier, tier change, pending-since date, factor change): those are packed into one Int64,
    every output column is worked out once per distinct combination, and one integer join
    attaches them. Per-row string and list work in Polars is several times slower.
    """
    if cooldown_days < 0:
        raise ValueError("cooldown_days must be >= 0")
    if (as_of - _EPOCH).days >= 1 << 16:
        raise ValueError("as_of beyond 2149-06-06 does not fit the combination key")
    masks = scored.patterns["_mask"]
    # Per pattern: computed tier rank and an integer id of its factors_key, so the per-row
    # work is integer arithmetic; previous factor keys are mapped onto the same ids.
    fkeys = scored.patterns["factors_key"].to_list()
    fkey_id = {k: i for i, k in enumerate(dict.fromkeys(fkeys))}
    new_rank = pl.col("_mask").replace_strict(
        masks, [TIER_RANK[t] for t in scored.patterns["computed_tier"]], return_dtype=pl.Int64
    )
    new_fkey = pl.col("_mask").replace_strict(
        masks, [fkey_id[k] for k in fkeys], return_dtype=pl.Int64
    )
    identity = [
        c for c in scored.table.columns if c in (KEY, "jurisdiction", "persona_id", "persona_name")
    ]
    base = scored.table.lazy()
    prev = _previous(previous)
    if prev is None:
        table = base.select(
            *identity,
            _combo_key(pl.col("_mask"), new_rank),
            pl.lit(None, pl.Date).alias("_prev_review"),
        ).collect()
    else:
        prev_rank = pl.col("_prev_rank")
        is_new = ~pl.col("_prev_seen").fill_null(False)
        up = new_rank > prev_rank
        down = new_rank < prev_rank
        pending_since = pl.coalesce(pl.col("_prev_pending"), pl.lit(as_of))
        waited = (pl.lit(as_of) - pending_since).dt.total_days() >= cooldown_days
        change = (
            pl.when(is_new)
            .then(pl.lit(_CHANGE["new"]))
            .when(up)
            .then(pl.lit(_CHANGE["upgrade"]))
            .when(down & waited)
            .then(pl.lit(_CHANGE["downgrade"]))
            .when(down)
            .then(pl.lit(_CHANGE["downgrade_deferred"]))
            .otherwise(pl.lit(_CHANGE["same"]))
        )
        pending = pl.when(down & ~waited).then(pending_since).otherwise(None)
        prev_fkey = pl.col("_prev_fkey").replace_strict(
            list(fkey_id), list(fkey_id.values()), default=-1, return_dtype=pl.Int64
        )
        # A change in the matched factors is a trigger event (AMLR Art. 26(2)).
        ooc = (~is_new & pl.col("_prev_fkey").is_not_null() & (new_fkey != prev_fkey)).fill_null(
            False
        )
        table = (
            base.join(prev, on=KEY, how="left", maintain_order="left")
            .select(
                *identity,
                _combo_key(pl.col("_mask"), new_rank, change, prev_rank, ooc, pending),
                "_prev_review",
            )
            .collect()
        )
    lookup = _combo_lookup(table["_combo"].unique(), scored.patterns, ruleset, as_of, cooldown_days)
    if with_queues:
        from engine.kyc.routing import assign_queues

        lookup = assign_queues(lookup, ruleset, as_of)
    # scored.table is in token order and both joins keep the left order: no sort needed.
    joined = table.join(lookup, on="_combo", how="left", maintain_order="left")
    return joined.with_columns(_anchored_review()).drop("_combo", "_prev_review")


def _anchored_review() -> pl.Expr:
    """Periodic reviews run on their own calendar (AMLR Art. 26: at least every 1 / 5 years
    by risk), not from each refresh: an unchanged customer keeps the previous version's
    review date, so a refresh never postpones a review. A trigger event (new customer,
    changed factors, applied downgrade) starts a new cycle from the refresh date; an
    upgrade brings the review forward to the shorter interval, never pushes it back."""
    prev = pl.col("_prev_review")
    keep = pl.col("tier_change").is_in(["same", "downgrade_deferred"]) & ~pl.col(
        "out_of_cycle_review"
    )
    return (
        pl.when(prev.is_null())
        .then(pl.col("review_due"))
        .when(keep)
        .then(prev)
        .when(pl.col("tier_change") == "upgrade")
        .then(pl.min_horizontal(prev, pl.col("review_due")))
        .otherwise(pl.col("review_due"))
        .alias("review_due")
    )


_CHANGES: tuple[str, ...] = ("new", "upgrade", "downgrade", "downgrade_deferred", "same")
_EPOCH = date(1970, 1, 1)
_NOTE_BITS = 26  # change 3 | previous tier + 1: 3 | computed tier 3 | out-of-cycle 1 | days 16


_CHANGE = {name: i for i, name in enumerate(_CHANGES)}


def _combo_key(
    mask: pl.Expr,
    comp: pl.Expr,
    change: pl.Expr | None = None,
    prev_rank: pl.Expr | None = None,
    ooc: pl.Expr | None = None,
    pending: pl.Expr | None = None,
) -> pl.Expr:
    """The pattern and everything stability decided, as one Int64 (no previous version:
    every customer is new, nothing pending, nothing out of cycle)."""
    change = pl.lit(_CHANGE["new"], pl.Int64) if change is None else change.cast(pl.Int64)
    prev = pl.lit(0, pl.Int64) if prev_rank is None else (prev_rank.cast(pl.Int64) + 1).fill_null(0)
    flag = pl.lit(0, pl.Int64) if ooc is None else ooc.cast(pl.Int64)
    days = (
        pl.lit(0, pl.Int64)
        if pending is None
        else (pending - pl.lit(_EPOCH)).dt.total_days().fill_null(0).cast(pl.Int64)
    )
    # Bit fields as arithmetic (Polars expressions have no shift operator); none overlaps.
    note = change + prev * 8 + comp.cast(pl.Int64) * 64 + flag * 512 + days * 1024
    return (mask * (1 << _NOTE_BITS) + note).alias("_combo")


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


def _combo_lookup(
    keys: pl.Series,
    patterns: pl.DataFrame,
    ruleset: KycRuleset,
    as_of: date,
    cooldown_days: int,
) -> pl.DataFrame:
    """Every output column for each distinct combination (a loop over combinations, which
    are few, never over customers)."""
    by_mask = {int(r["_mask"]): r for r in patterns.iter_rows(named=True)}
    due = review_dates(ruleset, as_of)
    rows = []
    for key in keys.sort():
        mask, c = _decode(int(key))
        p = by_mask[mask]
        system = c["_prev_tier"] if c["tier_change"] == "downgrade_deferred" else p["computed_tier"]
        assert isinstance(system, str)
        notes, codes = _notes(c, cooldown_days)
        all_codes = [*p["reason_codes"], *codes]
        rows.append(
            {
                "_combo": int(key),
                "score": p["score"],
                "computed_tier": p["computed_tier"],
                "system_tier": system,
                "tier": system,
                "reasons": [*p["reasons"], *notes],
                "reason_codes": all_codes,
                "factors": p["factors"],
                "factors_key": p["factors_key"],
                "ruleset_version": ruleset.version,
                "review_due": due[system],
                "tier_change": c["tier_change"],
                "out_of_cycle_review": c["out_of_cycle_review"],
                "downgrade_pending_since": c["downgrade_pending_since"],
                "override_id": None,
                "_reason_key": _SEP.join(all_codes),
            }
        )
    schema: dict[str, Any] = {
        "_combo": pl.Int64,
        "score": pl.Int64,
        "computed_tier": pl.String,
        "system_tier": pl.String,
        "tier": pl.String,
        "reasons": pl.List(pl.String),
        "reason_codes": pl.List(pl.String),
        "factors": pl.List(pl.String),
        "factors_key": pl.String,
        "ruleset_version": pl.String,
        "review_due": pl.Date,
        "tier_change": pl.String,
        "out_of_cycle_review": pl.Boolean,
        "downgrade_pending_since": pl.Date,
        "override_id": pl.String,
        "_reason_key": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


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


def previous_columns(stored: list[str]) -> list[str]:
    """The columns of a stored routing table that stability reads (see `_previous`)."""
    wanted = [KEY, "system_tier", "tier", "factors_key", "downgrade_pending_since", "review_due"]
    if "factors_key" not in stored:
        wanted.append("factors")  # older tables
    return [c for c in stored if c in wanted]


def _previous(previous: pl.DataFrame | None) -> pl.LazyFrame | None:
    """The previous version's routing reduced to what stability needs (None: nothing to
    compare against). Compares against the system tier (before overrides): an override is a
    human decision, not the model's state."""
    if previous is None or previous.height == 0:
        return None
    cols = previous.columns
    tier_col = "system_tier" if "system_tier" in cols else "tier"
    if KEY not in cols or tier_col not in cols:
        return None
    if "factors_key" in cols:
        fkey = pl.col("factors_key")
    elif "factors" in cols:  # older tables: slower, same meaning
        fkey = pl.col("factors").list.sort().list.join(_SEP)
    else:
        fkey = pl.lit(None, pl.String)
    tier = pl.col(tier_col).cast(pl.String)
    # A stored version is in token order: flag it (merge join) after checking, else sort.
    ordered = previous[KEY].cast(pl.String).is_sorted()
    key = pl.col(KEY).cast(pl.String)
    frame = previous.lazy().select(
        key.set_sorted() if ordered else key,
        tier.is_not_null().alias("_prev_seen"),
        tier_to_rank(tier).cast(pl.Int64).alias("_prev_rank"),
        fkey.alias("_prev_fkey"),
        (
            pl.col("downgrade_pending_since").cast(pl.Date)
            if "downgrade_pending_since" in cols
            else pl.lit(None, pl.Date)
        ).alias("_prev_pending"),
        (
            pl.col("review_due").cast(pl.Date) if "review_due" in cols else pl.lit(None, pl.Date)
        ).alias("_prev_review"),
    )
    return frame if ordered else frame.sort(KEY)
