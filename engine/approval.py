"""Approval: a compliance officer makes one verified, valid version the chain's current one.

`versions/<j>/<purpose>/CURRENT.json` names the approved version and its statement digest.
The file is a convenience pointer, not the record: the record is the signed
`version_approved` audit entry, and `current_version` checks the pointer against the
latest such entry and against the statement on disk, refusing any mismatch.

Rules: the approver needs the `approve_version` action in the access policy for that
jurisdiction; the version must have passed every validation gate and verify (signature,
digests, inputs, audit entry); and the approver must not be the actor who ran the refresh
(four eyes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.audit import record
from engine.errors import GateFailed, PolicyDenied, VerificationFailed
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

CURRENT = "CURRENT.json"


@dataclass(frozen=True)
class Approval:
    jurisdiction: str
    purpose: str
    version_id: str
    statement_sha256: str
    approved_by: str
    approved_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "purpose": self.purpose,
            "version_id": self.version_id,
            "statement_sha256": self.statement_sha256,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
        }


def _verify(ws: Workspace, version_dir: Path) -> None:
    from lineage.auditlog import AuditLog
    from lineage.signing import TrustStore
    from lineage.statement import verify_version

    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    report = verify_version(
        version_dir, trust, workspace_root=ws.root, audit=AuditLog(ws.audit_dir)
    )
    if not report.ok:
        failed = [c.name for c in report.checks if not c.ok]
        raise VerificationFailed(
            f"{version_dir.name}: lineage does not verify ({', '.join(failed)}); "
            "run 'pgov lineage verify' for details; not approved"
        )


def approve_version(ws: Workspace, ref: str, actor: str) -> Approval:
    from engine.audit import authorize, deny
    from engine.versions import resolve_version

    version_dir = resolve_version(ws, ref)
    manifest = json.loads((version_dir / "manifest.json").read_bytes())
    j, p, vid = manifest["jurisdiction"], manifest["purpose"], manifest["version_id"]
    authorize(ws, actor, "approve_version", {"jurisdiction": j, "purpose": p})
    if actor == manifest.get("actor"):
        exc = PolicyDenied(
            f"{j}/{p}/{vid} was produced by '{actor}'; a second person must approve it",
            reasons=["approval.four_eyes"],
        )
        deny(ws, actor, "approve_version", {"jurisdiction": j, "purpose": p, "version": vid}, exc)
        raise exc
    if manifest.get("validity") != "valid":
        reasons = "; ".join(manifest.get("invalid_reasons") or []) or "gates failed"
        raise GateFailed(
            f"{j}/{p}/{vid} failed its validation gates ({reasons}); cannot be current"
        )
    _verify(ws, version_dir)
    statement = sha256_hex((version_dir / "statement.dsse.json").read_bytes())
    approval = Approval(
        jurisdiction=j,
        purpose=p,
        version_id=vid,
        statement_sha256=statement,
        approved_by=actor,
        approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    pointer = ws.versions_dir(j, p) / CURRENT
    tmp = pointer.with_suffix(".tmp")
    tmp.write_bytes(canonical_json(approval.to_json()) + b"\n")
    os.replace(tmp, pointer)
    record(ws, "version_approved", actor, **approval.to_json())
    return approval


def current_version(ws: Workspace, jurisdiction: str, purpose: str) -> Approval | None:
    """The approved version of a chain, cross-checked; None if nothing was ever approved."""
    from lineage.auditlog import AuditLog

    pointer = ws.versions_dir(jurisdiction, purpose) / CURRENT
    approvals = [
        e["details"]
        for e in AuditLog(ws.audit_dir).query(type="version_approved")
        if e["details"].get("jurisdiction") == jurisdiction
        and e["details"].get("purpose") == purpose
    ]
    if not pointer.is_file():
        if approvals:
            raise VerificationFailed(
                f"{jurisdiction}/{purpose}: the audit log records an approval but {CURRENT} is "
                "missing"
            )
        return None
    data = json.loads(pointer.read_bytes())
    # The entry also names the signed request it ran under (engine/actors.py); the pointer
    # carries the approval itself.
    latest = {k: v for k, v in approvals[-1].items() if k != "request"} if approvals else None
    if latest != data:
        raise VerificationFailed(
            f"{pointer}: does not match the latest version_approved entry in the audit log"
        )
    statement = ws.versions_dir(jurisdiction, purpose) / data["version_id"] / "statement.dsse.json"
    if not statement.is_file() or sha256_hex(statement.read_bytes()) != data["statement_sha256"]:
        raise VerificationFailed(
            f"{jurisdiction}/{purpose}/{data['version_id']}: statement differs from the "
            "approved one"
        )
    return Approval(**data)


POLICY_ACTOR_PREFIX = "policy:"


def auto_approve(ws: Workspace, version_dir: Path) -> Approval | None:
    """Approve a just-published version if a declared `[[approval.auto]]` class covers it.

    Only valid versions that verify are approved; the approval is recorded exactly like a
    person's, with `approved_by = "policy:<name>"`, so the audit log shows who decided.
    """
    manifest = json.loads((version_dir / "manifest.json").read_bytes())
    j, p, vid = manifest["jurisdiction"], manifest["purpose"], manifest["version_id"]
    rule = next(
        (
            r
            for r in ws.config.approval.auto
            if p in [x.value for x in r.purposes] and (not r.jurisdictions or j in r.jurisdictions)
        ),
        None,
    )
    if rule is None or manifest.get("validity") != "valid":
        return None
    _verify(ws, version_dir)
    approval = Approval(
        jurisdiction=j,
        purpose=p,
        version_id=vid,
        statement_sha256=sha256_hex((version_dir / "statement.dsse.json").read_bytes()),
        approved_by=f"{POLICY_ACTOR_PREFIX}{rule.name}",
        approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    pointer = ws.versions_dir(j, p) / CURRENT
    tmp = pointer.with_suffix(".tmp")
    tmp.write_bytes(canonical_json(approval.to_json()) + b"\n")
    os.replace(tmp, pointer)
    record(ws, "version_approved", approval.approved_by, **approval.to_json())
    return approval
