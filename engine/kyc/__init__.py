"""KYC risk tiers and routing: a policy-defined ruleset compiled to Polars, queues, sinks.

Contract (owned here):
    route(features, governed, segmentation, ruleset, previous, as_of, cooldown_days) -> KycRouting
"""

from __future__ import annotations

from datetime import date

import polars as pl
import structlog

from engine.enforce import GovernedFrames
from engine.features import FeatureFrame
from engine.kyc.facts import build_facts
from engine.kyc.model import KycRouting
from engine.kyc.routing import summarise
from engine.kyc.ruleset import KycRuleset
from engine.kyc.tiering import apply_stability, score_tiers
from engine.segment.model import Segmentation

__all__ = ["KycRouting", "KycRuleset", "route", "route_facts"]

log = structlog.get_logger(__name__)

# Column order of the routing table (see KycRouting).
COLUMNS: tuple[str, ...] = (
    "customer_id",
    "jurisdiction",
    "score",
    "computed_tier",
    "system_tier",
    "tier",
    "reasons",
    "reason_codes",
    "factors",
    "factors_key",
    "ruleset_version",
    "review_due",
    "queue",
    "sla_days",
    "sla_due",
    "tier_change",
    "out_of_cycle_review",
    "downgrade_pending_since",
    "override_id",
    "persona_id",
    "persona_name",
)


def route(
    features: FeatureFrame,
    governed: GovernedFrames,
    segmentation: Segmentation,
    ruleset: KycRuleset,
    previous: pl.DataFrame | None,
    as_of: date,
    cooldown_days: int,
) -> KycRouting:
    """Tier and route every governed customer. The customer set is the governed subjects source."""
    facts = build_facts(features, governed, segmentation, as_of)
    return route_facts(facts, ruleset, previous, as_of, cooldown_days)


def route_facts(
    facts: pl.DataFrame,
    ruleset: KycRuleset,
    previous: pl.DataFrame | None,
    as_of: date,
    cooldown_days: int,
) -> KycRouting:
    """The same as `route`, from an already built facts frame (tests and benchmarks)."""
    scored = score_tiers(facts, ruleset)
    # Queues are a function of the same combinations, so they are routed inside stability
    # (over distinct combinations) rather than over every customer again.
    routed = apply_stability(scored, previous, ruleset, as_of, cooldown_days, with_queues=True)
    summaries = summarise(routed, ruleset)
    table = routed.select([c for c in COLUMNS if c in routed.columns])
    # apply_stability keeps token order; a string sort of every customer is the fallback.
    if not table["customer_id"].is_sorted():
        table = table.sort("customer_id")
    log.info(
        "kyc_routed",
        customers=table.height,
        ruleset_version=ruleset.version,
        queues={q: s["count"] for q, s in summaries.items()},
    )
    return KycRouting(
        ruleset_version=ruleset.version, table=table, summaries=summaries, ruleset=ruleset
    )
