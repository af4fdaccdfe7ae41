"""One-off sensitive actions are covered by a signed checkpoint the moment they are logged."""

from __future__ import annotations

from pathlib import Path

from engine.audit import checkpoint, record
from engine.pseudonym.lifecycle import init_keys
from engine.workspace import Workspace
from lineage.auditlog import AuditLog
from lineage.checkpoint import parse_checkpoint


def _latest_size(ws: Workspace) -> int:
    text = AuditLog(ws.audit_dir).latest_checkpoint_text()
    assert text is not None
    return parse_checkpoint(text, "latest")[0].size


def test_reidentification_is_signed_at_once(workspace_copy: Path) -> None:
    ws = Workspace.open(workspace_copy)
    init_keys(ws)
    index = record(ws, "reidentification", "kyc-ops", column="customer_id", count=1)
    assert _latest_size(ws) > index


def test_routine_events_wait_for_the_next_checkpoint(workspace_copy: Path) -> None:
    ws = Workspace.open(workspace_copy)
    init_keys(ws)
    before = _latest_size(ws)
    record(ws, "refresh_requested", "analyst-uk", jurisdiction="UK")
    assert _latest_size(ws) == before
    assert checkpoint(ws)
    assert _latest_size(ws) > before


def test_without_a_signing_key_events_are_still_logged(workspace_copy: Path) -> None:
    ws = Workspace.open(workspace_copy)
    record(ws, "reidentification", "kyc-ops", column="customer_id", count=1)
    assert AuditLog(ws.audit_dir).size() == 1
    assert checkpoint(ws) is False
