"""Recovery reads a chain's publish and delivery entries from the audit log: only the
entries whose bytes can be of those types are parsed, and the answer is the one a parse of
every entry gives (same entries, same indices, log order)."""

from __future__ import annotations

from pathlib import Path

from engine.audit import record
from engine.publish import _CHAIN_TYPES, DELIVERED, INTENT, PUBLISHED, ROLLED_BACK, _chain_entries
from engine.workspace import Workspace
from lineage.auditlog import AuditLog


def _every_entry_parsed(ws: Workspace, j: str, p: str) -> list[dict[str, object]]:
    return [
        e
        for e in AuditLog(ws.audit_dir).query()
        if e["type"] in _CHAIN_TYPES
        and (e.get("details") or {}).get("jurisdiction") == j
        and (e.get("details") or {}).get("purpose") == p
    ]


def test_chain_entries_are_those_a_parse_of_every_entry_finds(workspace_copy: Path) -> None:
    ws = Workspace.open(workspace_copy)
    mkt, kyc = "marketing_segmentation", "kyc_aml"
    for i, (kind, j, p) in enumerate(
        [
            (INTENT, "EU-DE", mkt),
            ("refresh_started", "EU-DE", mkt),  # another type of the same chain
            (PUBLISHED, "EU-DE", mkt),
            (INTENT, "EU-FR", mkt),  # another chain
            (ROLLED_BACK, "EU-DE", kyc),
            (DELIVERED, "EU-DE", mkt),
            (INTENT, "EU-DE", mkt),
            (ROLLED_BACK, "EU-DE", mkt),
        ]
    ):
        record(ws, kind, "tester", jurisdiction=j, purpose=p, run_id=f"r{i}", version_id=f"v{i}")
    # An entry of another type whose details carry a field spelled like a chain type.
    record(ws, "note", "tester", jurisdiction="EU-DE", purpose=mkt, type=PUBLISHED)
    found = _chain_entries(ws, "EU-DE", mkt)
    assert found == _every_entry_parsed(ws, "EU-DE", mkt)
    assert [e["type"] for e in found][-5:] == [INTENT, PUBLISHED, DELIVERED, INTENT, ROLLED_BACK]
    assert _chain_entries(ws, "EU-DE", kyc) == _every_entry_parsed(ws, "EU-DE", kyc) != []
    assert _chain_entries(ws, "EU-FR", mkt) == _every_entry_parsed(ws, "EU-FR", mkt) != []
