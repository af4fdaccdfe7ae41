"""The quarantine is sealed and the unscoped rows counted beside enforcement: the audit log
reads as when they ran first, and a refresh whose enforcement fails still leaves its
quarantine written and audited."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.config import Purpose
from engine.pseudonym.lifecycle import init_keys
from engine.quarantine import REPORT
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

AS_OF = date(2026, 11, 1)


def _ws(workspace_copy: Path) -> Workspace:
    init_keys(Workspace.open(workspace_copy))
    return Workspace.open(workspace_copy)


def _types(ws: Workspace) -> list[str]:
    return [e["type"] for e in AuditLog(ws.audit_dir).query()]


def test_quarantine_and_unscoped_entries_follow_the_decision_as_before(
    workspace_copy: Path,
) -> None:
    ws = _ws(workspace_copy)
    request = RefreshRequest(
        actor="compliance-lead", jurisdiction="EU-DE", purpose=Purpose.KYC_AML, as_of=AS_OF
    )
    result = run_refresh(ws, request)
    types = _types(ws)
    allowed = types.index("refresh_allowed")
    # Nothing is recorded between the decision and the quarantine, and the quarantine comes
    # before anything enforcement leads to (vault filing, exclusions, the version).
    assert types[allowed + 1] == "quarantine_written"
    later = [t for t in types[allowed + 2 :] if t != "rows_unscoped"]
    assert later and all(t != "quarantine_written" for t in later)
    [entry] = AuditLog(ws.audit_dir).query(type="quarantine_written")
    directory = ws.root / entry["details"]["directory"]
    assert (directory / REPORT).is_file()
    assert sum(entry["details"]["counts"].values()) > 0  # the sample has rows to quarantine
    assert result.manifest["unscoped_rows"] == {n: 0 for n in sorted(ws.config.sources)}


def test_a_failed_enforcement_still_writes_and_audits_the_quarantine(
    workspace_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.enforce

    ws = _ws(workspace_copy)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("enforcement broke")

    monkeypatch.setattr(engine.enforce, "enforce", broken)
    request = RefreshRequest(
        actor="analyst-eu",
        jurisdiction="EU-DE",
        purpose=Purpose.MARKETING,
        as_of=AS_OF,
    )
    with pytest.raises(RuntimeError, match="enforcement broke"):
        run_refresh(ws, request)
    types = _types(ws)
    assert types.index("quarantine_written") < types.index("refresh_failed")
    [entry] = AuditLog(ws.audit_dir).query(type="quarantine_written")
    assert (ws.root / entry["details"]["directory"] / REPORT).is_file()
    failed = AuditLog(ws.audit_dir).query(type="refresh_failed")
    assert failed[-1]["details"]["stage"] == "enforce"
