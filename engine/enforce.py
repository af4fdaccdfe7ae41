"""Enforcement: the EnforcementPlan compiled into Polars expressions over the source frames.

Contract (owned here):
    enforce(sources: SourceFrames, plan: EnforcementPlan, pseudonymiser) -> GovernedFrames
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class SourceRowAccounting:
    source: str
    input_rows: int
    quarantined: int
    excluded: int  # distinct rows excluded by any rule
    kept: int
    # reason code -> rows excluded by that rule (a row can count under several reasons)
    excluded_by_reason: dict[str, int] = field(default_factory=dict)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.input_rows == self.kept + self.excluded + self.quarantined


@dataclass(frozen=True)
class GovernedFrames:
    jurisdiction: str
    purpose: str
    # Governed rows per source: dropped columns absent, identifiers replaced by tokens
    # (the subject column `customer_id` holds the pseudonym in every source, so they join),
    # quasi-identifiers generalised, excluded rows removed. `_row` is removed.
    frames: dict[str, pl.DataFrame]
    accounting: dict[str, SourceRowAccounting]
    plan_digest: str
    # Which pseudonymisation domain `customer_id` tokens belong to ("marketing" or "kyc").
    subject_domain: str
    # Per output column: what happened to it (for column-level lineage):
    # {"source.column": {"action": "pseudonymise", "domain": "kyc", "method": "aes_siv", ...}}
    column_actions: dict[str, dict[str, str]] = field(default_factory=dict)
