"""Which privacy roles the rules need for one jurisdiction and purpose, and whether this
workspace provides them (`pgov policy explain`).

Asked of the bundle itself: the decision is evaluated once with an empty role map, and its
`missing_roles` lists every (role, rule) pair the rules read. No Python list of rules to
keep in step with the Rego.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import PolicyError
from engine.policy.decide import DECISION_PATH, build_input, role_fields
from engine.policy.engines import PolicyEngine
from engine.request import RefreshRequest
from engine.workspace import Workspace


@dataclass(frozen=True)
class RoleNeed:
    role: str  # "a|b": one of these roles
    rule: str
    provided_by: str | None  # the column (or derived fact) that provides it, if any

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "rule": self.rule, "provided_by": self.provided_by}


def role_needs(ws: Workspace, request: RefreshRequest, engine: PolicyEngine) -> list[RoleNeed]:
    doc = build_input(ws, request)
    provided = role_fields(ws)
    probe = {**doc, "roles": {}}
    decision = engine.query(DECISION_PATH, probe)
    raw = decision.get("missing_roles") if isinstance(decision, dict) else None
    if not isinstance(raw, list):
        raise PolicyError(
            "the bundle's decision has no missing_roles list", reasons=["policy.malformed_decision"]
        )
    needs = []
    for item in raw:
        role, rule = str(item.get("role", "")), str(item.get("rule", ""))
        have = [provided[r] for r in role.split("|") if r in provided]
        needs.append(RoleNeed(role=role, rule=rule, provided_by=", ".join(have) or None))
    return sorted(needs, key=lambda n: (n.rule, n.role))
