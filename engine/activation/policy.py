"""Policy decisions for experiments and activation (Rego package personagov.activation).

`authorize_action` asks `authz` whether an actor may design, analyse or promote an experiment;
`activation_decision` asks `decision` once per activation. Both fail closed: an unknown
actor, an engine error or a malformed answer is a PolicyDenied with reason codes.
"""

from __future__ import annotations

from typing import Any

import structlog

from engine.errors import PolicyDenied, PolicyError
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

AUTHZ_PATH = "personagov.activation.authz"
DECISION_PATH = "personagov.activation.decision"


def _actor(ws: Workspace, actor_id: str) -> dict[str, Any]:
    from engine.policy.decide import _actor_doc

    doc = _actor_doc(ws, actor_id)
    if doc is None:
        raise PolicyDenied(
            f"actor '{actor_id}' is not declared in pgov.toml: denied",
            reasons=["access.unknown_actor"],
        )
    return doc


def _ask(ws: Workspace, path: str, doc: dict[str, Any]) -> dict[str, Any]:
    from engine.policy.decide import _allow_and_reasons, engine_for

    reply = engine_for(ws).query(path, doc)
    allow, deny = _allow_and_reasons(reply)
    assert isinstance(reply, dict)
    return {**reply, "allow": allow, "deny": deny}


def authorize_action(
    ws: Workspace, actor_id: str, action: str, resource: dict[str, Any]
) -> dict[str, Any]:
    """The allowed decision document, or PolicyDenied with the policy's reasons."""
    doc = {"actor": _actor(ws, actor_id), "action": action, "resource": resource}
    decision = _ask(ws, AUTHZ_PATH, doc)
    log.info("policy.authorize", actor=actor_id, action=action, allowed=decision["allow"])
    if not decision["allow"]:
        raise PolicyDenied(
            f"policy denies '{action}' for actor '{actor_id}': {', '.join(decision['deny'])}",
            reasons=decision["deny"],
        )
    return decision


def activation_decision(ws: Workspace, actor_id: str, resource: dict[str, Any]) -> dict[str, Any]:
    """The decision document (allowed or not; the caller audits and refuses)."""
    doc = {"actor": _actor(ws, actor_id), "action": "activate", "resource": resource}
    decision = _ask(ws, DECISION_PATH, doc)
    if not isinstance(decision.get("suppress_channel"), bool):
        raise PolicyError(
            "policy decision is malformed: 'suppress_channel' is not a boolean; refusing",
            reasons=["policy.malformed_decision"],
        )
    return decision
