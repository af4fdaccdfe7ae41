"""KYC override events checked against the audit log: the log is the record, the JSONL file
only carries the reason text. A line without its matching entry never takes effect
(engine.kyc.overrides.load_overrides) and is reported by `pgov lineage verify --all`, as is an
entry whose line is gone."""

from __future__ import annotations

from typing import Any

from engine.kyc.overrides import (
    OVERRIDES_FILE,
    OverrideApproved,
    OverrideRequested,
    _read_events,
    _reason_digest,
)
from engine.workspace import Workspace


def logged_events(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(event kind, override id) -> the audit entry that records it."""
    kinds = {"kyc_override_requested": "requested", "kyc_override_approved": "approved"}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        kind = kinds.get(str(e.get("type")))
        if kind is not None:
            d = e.get("details") or {}
            out[(kind, str(d.get("override_id")))] = e
    return out


def matches(event: OverrideRequested | OverrideApproved, entry: dict[str, Any]) -> bool:
    d = entry.get("details") or {}
    if entry.get("actor") != event.actor:
        return False
    if isinstance(event, OverrideApproved):
        return True
    return (
        d.get("customer") == event.customer
        and d.get("jurisdiction") == event.jurisdiction
        and d.get("from_tier") == event.from_tier
        and d.get("tier") == event.tier
        and d.get("requires_approval") == event.requires_approval
        and d.get("reason_sha256") == _reason_digest(event.reason)
        and d.get("expires") == (event.expires.isoformat() if event.expires else None)
    )


def backing_problems(ws: Workspace, entries: list[dict[str, Any]]) -> list[str]:
    """Override lines without their audit entry, and audit entries without their line."""
    logged = logged_events(entries)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    where = f"{ws.kyc_dir.name}/{OVERRIDES_FILE}"
    for n, event in _read_events(ws):
        key = (event.event, event.id)
        seen.add(key)
        entry = logged.get(key)
        if entry is None:
            problems.append(
                f"{where}:{n}: {event.event} event for {event.id} by '{event.actor}' has no "
                "audit entry (forged or written outside pgov); it does not take effect"
            )
        elif not matches(event, entry):
            problems.append(
                f"{where}:{n}: {event.event} event for {event.id} differs from audit entry "
                f"{entry['index']} (edited); it does not take effect"
            )
    for logged_key, entry in sorted(logged.items()):
        if logged_key not in seen:
            problems.append(
                f"audit entry {entry['index']} records override "
                f"{logged_key[0]} {logged_key[1]} but "
                f"{where} has no such line (deleted)"
            )
    return problems


def audit_entries(ws: Workspace) -> list[dict[str, Any]]:
    from lineage.auditlog import AuditLog

    if not ws.audit_dir.is_dir():
        return []
    return [
        e for e in AuditLog(ws.audit_dir).query() if str(e.get("type")).startswith("kyc_override_")
    ]
