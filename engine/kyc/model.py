"""The KycRouting value handed from kyc to store and sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.kyc.ruleset import KycRuleset


@dataclass(frozen=True)
class KycRouting:
    ruleset_version: str
    # One row per customer, sorted by customer_id:
    #   customer_id (kyc-domain token), jurisdiction, score, computed_tier (score + floors,
    #   this run), system_tier (after downgrade cooldown), tier (effective: system_tier or
    #   an active override), reasons (list[str] "CODE(+points)" / "CODE(floor:TIER)" / engine
    #   notes), reason_codes (list[str], codes only), factors (list[str], matched factor and
    #   floor ids), factors_key (the ids sorted and joined by "|": compared between versions),
    #   ruleset_version, review_due (date), queue, sla_days, sla_due (date),
    #   tier_change ("new"/"upgrade"/"downgrade"/"downgrade_deferred"/"same"),
    #   out_of_cycle_review (bool), downgrade_pending_since (date, null unless deferred),
    #   override_id (null unless an override applies), persona_id, persona_name
    table: pl.DataFrame
    # queue -> {"count", "sla_days", "tiers": {...}, "reasons": {...}, "suppressed": [...]}
    # (cells smaller than the ruleset's min_cell_size are suppressed: these are published)
    summaries: dict[str, dict[str, Any]]
    # The ruleset that produced the table: lets overrides re-route without asking policy again.
    ruleset: KycRuleset | None = None
