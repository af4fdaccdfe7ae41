"""The KycRouting value handed from kyc to store and sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl


@dataclass(frozen=True)
class KycRouting:
    ruleset_version: str
    # customer_id (kyc-domain token), score, computed_tier, tier, reasons (list[str]),
    # review_due (date), queue, sla_due (date), tier_change ("new"/"upgrade"/
    # "downgrade"/"downgrade_deferred"/"same"), out_of_cycle_review (bool)
    table: pl.DataFrame
    # queue -> {"count", "sla_days", "tiers": {...}} (k-anonymity applied where published)
    summaries: dict[str, dict[str, Any]]
