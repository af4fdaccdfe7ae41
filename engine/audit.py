"""The engine's one door to the audit log: every decision and action becomes a leaf.

Events carry actors, reason codes, digests and counts; never a raw identifier (customer
references are tokens).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.workspace import Workspace
from lineage.canonical import canonical_json


def record(ws: Workspace, event_type: str, actor: str, **details: Any) -> int:
    """Append one audit event; returns its leaf index in the log."""
    from lineage.auditlog import AuditLog  # lineage owns the log format

    entry = {
        "type": event_type,
        "actor": actor,
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "details": details,
    }
    return AuditLog(ws.audit_dir).append(canonical_json(entry))
