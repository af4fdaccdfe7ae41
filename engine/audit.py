"""The engine's one door to the audit log: every decision and action becomes a leaf.

Events carry actors, reason codes, digests and counts; never a raw identifier (customer
references are tokens).

Refreshes sign a checkpoint when they end. Actions that happen one at a time and matter on
their own (re-identification, KYC overrides and approvals, key lifecycle) sign a checkpoint
at once, so each is covered by a signature the moment it is recorded, not at the next
refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.errors import KeyMaterialError, PolicyDenied
from engine.workspace import Workspace
from lineage.canonical import canonical_json
from lineage.checkpoint import log_origin

# Every event type the engine writes. `pgov audit query --type` refuses a type that is
# neither here nor in the log (a typo must not read as "no such events");
# tests/test_exit_codes.py checks that every literal type in engine/ and lineage/ is listed.
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "access_denied",
        "activation_delivered",
        "activation_denied",
        "activation_failed",
        "actor_enrolled",
        "actor_request",
        "actor_unauthenticated",
        "audit_log_repaired",
        "checkpoint_signed",
        "erasure_honoured",
        "experiment_analysed",
        "experiment_denied",
        "experiment_designed",
        "experiment_refused",
        "key_change_refused",
        "key_initialised",
        "key_revocation",
        "key_rotation",
        "kyc_customer_viewed",
        "kyc_delivery_failed",
        "kyc_override_approved",
        "kyc_override_refused",
        "kyc_override_requested",
        "kyc_queue_viewed",
        "kyc_routing_delivered",
        "openlineage_emit_failed",
        "quarantine_written",
        "refresh_allowed",
        "refresh_denied",
        "refresh_failed",
        "refresh_placement",
        "refresh_refused",
        "refresh_requested",
        "reidentification",
        "report_generated",
        "report_refused",
        "rows_excluded",
        "rows_unscoped",
        "version_approved",
        "version_published",
        "version_publishing",
        "version_rolled_back",
        "version_validated",
        "version_validation_refused",
        "vault_erased",
        "vault_written",
    }
)

SIGNED_AT_ONCE: tuple[str, ...] = (
    "reidentification",
    "kyc_override_",
    "key_rotation",
    "key_revocation",
    "key_initialised",
    "version_approved",
    "access_denied",
    "vault_erased",
)

DENIED = "access_denied"


def record(ws: Workspace, event_type: str, actor: str, **details: Any) -> int:
    """Append one audit event; returns its leaf index in the log."""
    from engine.actors import current_request
    from lineage.auditlog import AuditLog  # lineage owns the log format

    rid = current_request.get()
    if rid is not None and "request" not in details:
        # The signed request this action runs under (engine/actors.py).
        details = {**details, "request": rid}
    entry = {
        "type": event_type,
        "actor": actor,
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "details": details,
    }
    index = AuditLog(ws.audit_dir).append(canonical_json(entry))
    if event_type.startswith(SIGNED_AT_ONCE):
        checkpoint(ws)
    return index


def checkpoint(ws: Workspace) -> bool:
    """Sign a checkpoint over the whole log; False when the workspace has no signing key yet
    (the entries stay in the log and the next checkpoint covers them)."""
    from lineage.auditlog import AuditLog
    from lineage.signing import SigningKeyring

    keys = ws.config.keys
    trust_file = ws.path(keys.trust_file)
    if not trust_file.is_file():
        return False
    try:
        signer = SigningKeyring(ws.path(keys.signing_dir), trust_file).signer()
    except KeyMaterialError:
        return False
    AuditLog(ws.audit_dir).checkpoint(signer, origin=log_origin(ws.config.name))
    return True


def authorize(ws: Workspace, actor: str, action: str, resource: dict[str, Any]) -> None:
    """The policy decides one action; a denial is recorded in the log before it is raised.

    Every governed action goes through here (or records its own refusal event), so no
    refusal is silent: the exit code says 3 and the log says who tried what, where, and why.
    The policy layer is imported lazily: a missing one refuses (fail closed), and that
    refusal is recorded too.
    """
    try:
        from engine.policy.decide import authorize as decide

        decide(ws, actor, action, resource)
    except ImportError:
        exc = PolicyDenied(
            f"'{action}' refused: the policy layer is not available",
            reasons=["policy_unavailable"],
        )
        deny(ws, actor, action, resource, exc)
        raise exc from None
    except PolicyDenied as exc:
        deny(ws, actor, action, resource, exc)
        raise


def deny(
    ws: Workspace, actor: str, action: str, resource: dict[str, Any], exc: PolicyDenied
) -> int:
    """Record one refused action (policy or a rule beside it, e.g. four eyes)."""
    return record(
        ws,
        DENIED,
        actor,
        action=action,
        resource={k: v for k, v in sorted(resource.items()) if v is not None},
        reasons=list(exc.reasons),
    )
