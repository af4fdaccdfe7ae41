"""Replay a recorded decision input (`pgov policy eval --input`): the same bundle, the same
document, the same decision and plan digest as when it was recorded.

The input's as_of is checked as a real calendar date in the engine's range here, before any
Rego sees it; the bundle checks it again (personagov.validate) for callers that go to OPA
directly.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError

from engine.errors import PolicyDenied, PolicyError
from engine.policy.decide import (
    DECISION_PATH,
    _bundle_for,
    check_as_of,
    engine_for,
    plan_from_decision,
)
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.canonical import digest_of


def valid_as_of(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        check_as_of(date.fromisoformat(value))
    except (ValueError, PolicyDenied):
        return False
    return True


def _request_of(doc: dict[str, Any]) -> RefreshRequest | None:
    actor = doc.get("actor")
    try:
        return RefreshRequest.model_validate(
            {
                "actor": actor.get("id") if isinstance(actor, dict) else None,
                "jurisdiction": doc.get("jurisdiction"),
                "purpose": doc.get("purpose"),
                "as_of": doc.get("as_of"),
            }
        )
    except ValidationError:
        return None


def replay(ws: Workspace, doc: dict[str, Any], query: str = DECISION_PATH) -> dict[str, Any]:
    engine = engine_for(ws)
    bundle = _bundle_for(ws, engine)
    path = query.removeprefix("data.")
    out: dict[str, Any] = {
        "query": f"data.{path}",
        "input_digest": digest_of(doc),
        "bundle_revision": bundle.revision,
        "bundle_digest": bundle.digest,
    }
    if path == DECISION_PATH and not valid_as_of(doc.get("as_of")):
        out["result"] = {"allow": False, "deny": ["input.invalid:as_of"]}
        return out
    result = engine.query(path, doc)
    out["result"] = result
    req = _request_of(doc) if path == DECISION_PATH else None
    if req is not None:
        try:
            out["plan_digest"] = plan_from_decision(ws, req, result, bundle, doc).digest()
        except PolicyError as exc:
            out["plan_refused"] = exc.reasons
    return out
