"""Promotion: a persona version becomes "validated" only when its experiment met the criteria
declared at design time.

The record is the signed `version_validated` audit entry (plus a signed promotion.json in the
experiment directory); `is_validated` reads the audit log and checks the version's statement
is still the one the experiment ran on. A refusal is audited and exits with the gate code.
"""

from __future__ import annotations

from typing import Any

from engine.audit import checkpoint, record
from engine.errors import GateFailed, PolicyDenied, VerificationFailed
from engine.experiment.signed import sign_document
from engine.experiment.store import (
    PROMOTION,
    PROMOTION_SIG,
    PROMOTION_TYPE,
    experiment_dir,
    latest_analysis,
    load_design,
)
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex


def promote_experiment(ws: Workspace, name: str, actor: str) -> dict[str, Any]:
    from engine.activation.policy import authorize_action

    design = load_design(ws, name)
    v = design["version"]
    resource = {
        "jurisdiction": v["jurisdiction"],
        "purpose": v["purpose"],
        "version_id": v["version_id"],
        "experiment": name,
        "designed_by": design["designed_by"],
    }
    try:
        authorize_action(ws, actor, "experiment_promote", resource)
    except PolicyDenied as exc:
        record(ws, "experiment_denied", actor, step="promote", reasons=exc.reasons, **resource)
        checkpoint(ws)
        raise
    found = latest_analysis(ws, name)

    def refuse(reason: str, message: str) -> GateFailed:
        record(ws, "version_validation_refused", actor, reason=reason, **resource)
        checkpoint(ws)
        return GateFailed(message)

    if found is None:
        raise refuse("no_analysis", f"experiment '{name}' has no analysis yet; not validated")
    path, analysis = found
    crit = analysis.get("criteria", {})
    if crit.get("met") is not True:
        why = "; ".join(crit.get("reasons") or ["criteria not met"])
        raise refuse(
            "criteria_not_met",
            f"experiment '{name}' did not meet its declared criteria ({why}); "
            f"{v['jurisdiction']}/{v['purpose']}/{v['version_id']} is not validated",
        )
    statement = ws.versions_dir(v["jurisdiction"], v["purpose"]) / v["version_id"]
    statement = statement / "statement.dsse.json"
    if not statement.is_file() or sha256_hex(statement.read_bytes()) != v["statement_sha256"]:
        raise VerificationFailed(
            f"{v['version_id']}: its statement differs from the one the experiment ran on"
        )
    doc = {
        "format": "pgov.experiment_promotion/1",
        "experiment": name,
        "version": v,
        "analysis": path.name,
        "analysis_sha256": sha256_hex(path.read_bytes()),
        "validated_by": actor,
    }
    d = experiment_dir(ws, name)
    if (d / PROMOTION).exists():
        raise GateFailed(f"experiment '{name}' has already promoted its version")
    (d / PROMOTION).write_bytes(canonical_json(doc) + b"\n")
    sign_document(ws, d / PROMOTION_SIG, PROMOTION_TYPE, doc, [d / PROMOTION, path])
    record(
        ws,
        "version_validated",
        actor,
        **resource,
        statement_sha256=v["statement_sha256"],
        analysis_sha256=doc["analysis_sha256"],
    )
    checkpoint(ws)
    return doc


def is_validated(ws: Workspace, jurisdiction: str, purpose: str, version_id: str) -> bool:
    """True when the audit log records a validation of exactly this version's statement."""
    from lineage.auditlog import AuditLog

    statement = ws.versions_dir(jurisdiction, purpose) / version_id / "statement.dsse.json"
    if not statement.is_file():
        return False
    digest = sha256_hex(statement.read_bytes())
    for entry in AuditLog(ws.audit_dir).query(type="version_validated"):
        d = entry.get("details", {})
        if (
            d.get("jurisdiction") == jurisdiction
            and d.get("purpose") == purpose
            and d.get("version_id") == version_id
            and d.get("statement_sha256") == digest
        ):
            return True
    return False
