"""KycRuleset: the KYC scoring, floor, review and routing rules as the policy returned them.

Rego (policies/kyc/ruleset.rego) answers once per refresh with one document; this module
checks its shape at the edge. Anything malformed is a PolicyError (a deny): a ruleset we
cannot read must never become "everyone is low risk".
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.conditions import Condition, parse_condition
from engine.errors import PolicyError

Tier = Literal["SDD", "CDD", "EDD", "EDD_SENIOR", "PROHIBITED"]
TIERS: tuple[str, ...] = ("SDD", "CDD", "EDD", "EDD_SENIOR", "PROHIBITED")
TIER_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
# Tiers the score alone can reach; EDD_SENIOR and PROHIBITED come only from floors.
SCORED_TIERS: tuple[str, ...] = ("SDD", "CDD", "EDD")
HIGH_RISK_RANK = TIER_RANK["EDD"]
# AMLR Art. 26(2): review at least yearly for higher risk, at least every 5 years otherwise.
REVIEW_CAP_HIGH_MONTHS = 12
REVIEW_CAP_OTHER_MONTHS = 60

Family = Literal["customer", "geography", "product_channel", "transaction", "persona"]

# Reason codes the engine itself adds (stability and overrides); queue rules may use them.
ENGINE_REASON_CODES: tuple[str, ...] = (
    "NO_RISK_FACTORS",
    "TIER_UPGRADE",
    "DOWNGRADE_APPLIED",
    "DOWNGRADE_DEFERRED",
    "OUT_OF_CYCLE_REVIEW",
    "MANUAL_OVERRIDE",
)
# Columns a queue rule may name besides "reason.<CODE>".
ROUTING_FIELDS: tuple[str, ...] = (
    "tier",
    "computed_tier",
    "system_tier",
    "score",
    "out_of_cycle_review",
    "tier_change",
)

_CODE = r"^[A-Z][A-Z0-9_]*$"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _condition(raw: Any, where: str) -> Condition:
    return raw if isinstance(raw, Condition) else parse_condition(raw, where)


_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class FactorRule(_Edge):
    id: str = Field(pattern=_ID)
    family: Family
    points: int = Field(ge=-1000, le=1000)
    reason_code: str = Field(pattern=_CODE)
    condition: Condition

    @field_validator("condition", mode="before")
    @classmethod
    def _cond(cls, raw: Any) -> Condition:
        return _condition(raw, "kyc ruleset factor condition")


class FloorRule(_Edge):
    id: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._-]*$")
    condition: Condition
    min_tier: Tier
    reason_code: str = Field(pattern=_CODE)

    @field_validator("condition", mode="before")
    @classmethod
    def _cond(cls, raw: Any) -> Condition:
        return _condition(raw, "kyc ruleset floor condition")


class QueueRule(_Edge):
    # Queue names become directory names in the outbox: keep them path-safe.
    queue: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    condition: Condition
    sla_days: int = Field(ge=0, le=365)

    @field_validator("condition", mode="before")
    @classmethod
    def _cond(cls, raw: Any) -> Condition:
        return _condition(raw, "kyc ruleset queue condition")


class KycRuleset(_Edge):
    version: str = Field(min_length=1, max_length=100)
    tiers: list[str] = Field(default_factory=lambda: list(TIERS))
    factors: list[FactorRule]
    thresholds: dict[str, int]
    floors: list[FloorRule]
    review_months: dict[str, int]
    queues: list[QueueRule] = Field(min_length=1)
    default_queue: str
    min_cell_size: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _coherent(self) -> KycRuleset:
        if not _SAFE.fullmatch(self.version):
            raise ValueError("version must be path-safe (letters, digits, '.', '_', '-')")
        if list(self.tiers) != list(TIERS):
            raise ValueError(f"tiers must be exactly {list(TIERS)}")
        if set(self.thresholds) != set(SCORED_TIERS):
            raise ValueError(f"thresholds must name exactly {list(SCORED_TIERS)}")
        if self.thresholds["SDD"] != 0:
            raise ValueError("thresholds.SDD must be 0 (every score has a tier)")
        if not self.thresholds["SDD"] < self.thresholds["CDD"] < self.thresholds["EDD"]:
            raise ValueError("thresholds must increase SDD < CDD < EDD")
        if set(self.review_months) != set(TIERS):
            raise ValueError(f"review_months must name every tier {list(TIERS)}")
        for tier, months in self.review_months.items():
            cap = (
                REVIEW_CAP_HIGH_MONTHS
                if TIER_RANK[tier] >= HIGH_RISK_RANK
                else REVIEW_CAP_OTHER_MONTHS
            )
            if not 0 < months <= cap:
                raise ValueError(f"review_months.{tier} must be 1..{cap} (AMLR Art. 26(2))")
        ids = [f.id for f in self.factors]
        if len(ids) != len(set(ids)):
            raise ValueError("factor ids must be unique")
        names = [q.queue for q in self.queues]
        if len(names) != len(set(names)):
            raise ValueError("queue names must be unique")
        if self.default_queue not in names:
            raise ValueError("default_queue must be one of the declared queues")
        known = set(ROUTING_FIELDS) | {f"reason.{c}" for c in self.reason_codes()}
        for q in self.queues:
            unknown = q.condition.fields() - known
            if unknown:
                raise ValueError(
                    f"queue '{q.queue}' names unknown fields {sorted(unknown)}; "
                    f"known: {sorted(known)}"
                )
        return self

    @classmethod
    def from_policy(cls, raw: Any) -> KycRuleset:
        """Parse the policy's `kyc_ruleset` document; any defect is a deny."""
        if not isinstance(raw, dict):
            raise PolicyError(
                "kyc ruleset from policy is not an object; refusing",
                reasons=["kyc.malformed_ruleset"],
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            # Locations and messages only: the policy document holds no personal data, but we
            # keep the habit of never echoing inputs.
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:5]
            )
            raise PolicyError(
                f"kyc ruleset from policy is malformed ({detail}); refusing",
                reasons=["kyc.malformed_ruleset"],
            ) from None

    def reason_codes(self) -> list[str]:
        """Every reason code a routing row can carry, in a stable order."""
        seen: dict[str, None] = {}
        for code in [
            *(f.reason_code for f in self.factors),
            *(f.reason_code for f in self.floors),
            *ENGINE_REASON_CODES,
        ]:
            seen.setdefault(code, None)
        return list(seen)

    def queue_sla(self) -> dict[str, int]:
        return {q.queue: q.sla_days for q in self.queues}

    def to_json(self) -> dict[str, Any]:
        """The canonical document (conditions in their wire form), for storage and hashing."""
        return {
            "version": self.version,
            "tiers": list(self.tiers),
            "factors": [
                {
                    "id": f.id,
                    "family": f.family,
                    "points": f.points,
                    "reason_code": f.reason_code,
                    "condition": f.condition.to_json(),
                }
                for f in self.factors
            ],
            "thresholds": dict(self.thresholds),
            "floors": [
                {
                    "id": f.id,
                    "condition": f.condition.to_json(),
                    "min_tier": f.min_tier,
                    "reason_code": f.reason_code,
                }
                for f in self.floors
            ],
            "review_months": dict(self.review_months),
            "queues": [
                {"queue": q.queue, "condition": q.condition.to_json(), "sla_days": q.sla_days}
                for q in self.queues
            ],
            "default_queue": self.default_queue,
            "min_cell_size": self.min_cell_size,
        }
