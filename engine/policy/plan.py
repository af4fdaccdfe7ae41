"""EnforcementPlan: what the policy decided for one refresh, as pure data.

Built from the Rego decision document, checked on the way in (pydantic, extra keys
forbidden), hashed into lineage via canonical JSON. Rules are sorted so two engines that
return the same sets in different orders produce the same bytes and the same digest.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_serializer,
    model_validator,
)

from engine.conditions import Condition
from lineage.canonical import canonical_json, sha256_hex

# Per-customer facts enforce derives on the subjects frame; subject-level conditions may name
# these and any declared column of the subjects source.
SUBJECT_FACTS: dict[str, str] = {
    "age_years": "int",
    "erasure_requested": "bool",
    "deletion_requested": "bool",
    "opt_out_requested": "bool",
    "days_since_last_activity": "int",
}

Action = Literal["keep", "drop", "pseudonymise", "generalise"]
DOMAINS = ("marketing", "kyc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnAction(_Strict):
    action: Action
    domain: str | None = None
    normaliser: str | None = None
    method: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None  # output column name; None = the input name
    reason: str = ""
    article: str = ""

    @model_validator(mode="after")
    def _complete(self) -> ColumnAction:
        if self.action == "pseudonymise" and self.domain not in DOMAINS:
            raise ValueError(f"pseudonymise needs a domain in {DOMAINS}")
        if self.action == "generalise" and not self.method:
            raise ValueError("generalise needs a method")
        return self

    def output_name(self, column: str) -> str:
        return self.output or column


class RowRule(_Strict):
    reason: str
    article: str = ""
    condition: Condition

    @field_serializer("condition")
    def _cond(self, c: Condition) -> dict[str, Any]:
        return c.to_json()


class ColumnNulling(_Strict):
    """Per-customer nulling: where `condition` holds for the subject, `columns` become null."""

    reason: str
    article: str = ""
    condition: Condition
    columns: list[str]

    @field_serializer("condition")
    def _cond(self, c: Condition) -> dict[str, Any]:
        return c.to_json()


class SourcePlan(_Strict):
    subject_column: str = "customer_id"
    columns: dict[str, ColumnAction]
    # Per-source rules evaluated on the source's own rows (e.g. retention on its date).
    row_rules: list[RowRule] = Field(default_factory=list)
    # Subject-level conditions (evaluated on the subject facts), applied per subject.
    nullings: list[ColumnNulling] = Field(default_factory=list)

    def kept_columns(self) -> dict[str, ColumnAction]:
        return {c: a for c, a in self.columns.items() if a.action != "drop"}


def _rule_key(rule: RowRule | ColumnNulling) -> tuple[str, bytes]:
    return (rule.reason, canonical_json(rule.condition.to_json()))


class EnforcementPlan(_Strict):
    allowed: bool
    deny_reasons: list[str] = Field(default_factory=list)
    actor: str
    jurisdiction: str
    purpose: str
    as_of: date
    regime: str = ""
    subject_domain: Literal["marketing", "kyc"]
    sources: dict[str, SourcePlan]
    # Subject-level exclusions: evaluated on the subjects source + subject facts, propagated
    # by subject.
    subject_exclusions: list[RowRule] = Field(default_factory=list)
    obligations: list[str] = Field(default_factory=list)
    k_anonymity_min: int = Field(ge=1)
    kyc_ruleset: dict[str, Any] | None = None
    bundle_revision: str
    bundle_digest: str
    # sha256 of the canonical decision input: replaying it must give the same plan.
    input_digest: str = ""
    # The decision input itself (not part of the plan's bytes or digest): written beside
    # plan.json in a version so an auditor can replay it (`pgov policy eval --input`).
    _input: dict[str, Any] = PrivateAttr(default_factory=dict)

    def with_input(self, doc: dict[str, Any]) -> EnforcementPlan:
        self._input = doc
        return self

    def decision_input(self) -> dict[str, Any]:
        return self._input

    @model_validator(mode="after")
    def _sorted(self) -> EnforcementPlan:
        # Sets from Rego have no order we can rely on across engines: fix one here.
        object.__setattr__(
            self, "subject_exclusions", sorted(self.subject_exclusions, key=_rule_key)
        )
        object.__setattr__(self, "deny_reasons", sorted(set(self.deny_reasons)))
        object.__setattr__(self, "obligations", sorted(set(self.obligations)))
        for sp in self.sources.values():
            object.__setattr__(sp, "row_rules", sorted(sp.row_rules, key=_rule_key))
            object.__setattr__(sp, "nullings", sorted(sp.nullings, key=_rule_key))
        return self

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def canonical_json(self) -> bytes:
        return canonical_json(self.document())

    def digest(self) -> str:
        return sha256_hex(self.canonical_json())
