"""`pgov activate VERSION --destination NAME`: one decision, one re-checked audience, one
idempotent delivery, one signed receipt; every outcome in the audit log.

Flow: resolve the version -> is it approved (the chain's current one) and valid, is it
validated -> today's marketing plan (consent, objections, erasure) -> ONE Rego decision
(purpose x destination x jurisdiction) -> if denied: audit, write nothing, exit 3 ->
audience = version customers kept by today's plan (minus channel-suppressed customers) ->
deliver per persona (file drop: Parquet/CSV; HTTP: JSON POST with Standard Webhooks
headers, signed when the destination has a secret) -> signed receipt. The activation id is
a digest of the version, the destination and the audience, so running the same activation
twice delivers once; a changed audience is a new activation. A destination that fails is
audited and exits 10.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine.activation.audience import audience, content_key, marketing_plan, recheck
from engine.audit import checkpoint, record
from engine.config import FileDestination, HttpDestination
from engine.errors import BadInputError, DeliveryFailed, PolicyDenied
from engine.features import KEY
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

log = structlog.get_logger(__name__)

RECEIPT_TYPE = "https://personagov.dev/activation/receipt/v1"
PROFILE_FIELDS = ("persona_id", "name", "size", "share", "traits", "kpis", "descriptors")


@dataclass
class ActivationReport:
    activation_id: str
    destination: str
    version: dict[str, str]
    audience: dict[str, int]  # persona_id -> customers delivered
    removed_by_recheck: int
    channel_suppressed: int
    delivered: list[str] = field(default_factory=list)  # persona ids sent in this run
    skipped: list[str] = field(default_factory=list)  # already delivered earlier

    def to_json(self) -> dict[str, Any]:
        return {
            "activation_id": self.activation_id,
            "destination": self.destination,
            "version": self.version,
            "audience": self.audience,
            "removed_by_recheck": self.removed_by_recheck,
            "channel_suppressed": self.channel_suppressed,
            "delivered": self.delivered,
            "skipped": self.skipped,
        }


def _state_dir(ws: Workspace, destination: str) -> Path:
    return ws.root / "activations" / destination


def _destination_doc(name: str, dest: FileDestination | HttpDestination) -> dict[str, Any]:
    return {
        "name": name,
        "type": dest.type,
        "region": dest.region,
        "channel": dest.channel,
        "transfer_mechanism": dest.transfer_mechanism or "",
        "purposes": list(dest.purposes),
        "require_validated": dest.require_validated,
    }


def _payloads(
    frame: pl.DataFrame, personas: dict[str, Any], head: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """One JSON document per persona with customers: profile, content key, tokens."""
    v = head["version"]
    by_id = {int(p["persona_id"]): p for p in personas.get("personas", [])}
    grouped = frame.group_by("persona_id").agg(pl.col(KEY).sort()).sort("persona_id")
    out: dict[str, dict[str, Any]] = {}
    for pid, tokens in grouped.iter_rows():  # one row per persona
        p = by_id[int(pid)]
        out[str(pid)] = {
            **head,
            "persona": {k: p.get(k) for k in PROFILE_FIELDS},
            "content_key": content_key(v["jurisdiction"], v["purpose"], p),
            "customers": len(tokens),
            "audience": list(tokens),
        }
    return out


def _post(dest: HttpDestination, secret: bytes | None, body: bytes, key: str) -> str | None:
    """None when delivered; otherwise the last error (status or exception class). Standard
    Webhooks headers (signed when the destination has a secret), retries with jittered
    backoff honouring Retry-After: the same sender as the KYC webhooks (engine/kyc/webhook.py).
    """
    from engine.kyc.webhook import post_signed, signer

    hook = signer(secret) if secret is not None else None
    return post_signed(dest.url, body, key, hook, dest.max_attempts, 0.2, dest.timeout_seconds)


def _write_file(dest: FileDestination, base: Path, name: str, frame: pl.DataFrame) -> None:
    base.mkdir(parents=True, exist_ok=True)
    final = base / name
    tmp = base / f".{name}.tmp"
    if dest.format == "parquet":
        frame.write_parquet(tmp, compression="zstd")
    else:
        frame.write_csv(tmp)
    os.replace(tmp, final)


def activate(
    ws: Workspace, version_ref: str, destination: str, actor: str, as_of: date
) -> ActivationReport:
    from engine.activation.policy import activation_decision
    from engine.approval import current_version
    from engine.experiment.promote import is_validated
    from engine.segment.io import read_assignments, read_personas
    from engine.versions import resolve_version

    dest = ws.config.destinations.get(destination)
    if dest is None:
        known = ", ".join(sorted(ws.config.destinations)) or "none declared"
        raise BadInputError(f"destination '{destination}' is not declared in pgov.toml ({known})")
    vdir = resolve_version(ws, version_ref)
    manifest = json.loads((vdir / "manifest.json").read_bytes())
    j, p, vid = manifest["jurisdiction"], manifest["purpose"], manifest["version_id"]
    statement = sha256_hex((vdir / "statement.dsse.json").read_bytes())
    approved = current_version(ws, j, p)
    where = {"jurisdiction": j, "purpose": p, "version_id": vid, "destination": destination}
    try:
        plan = marketing_plan(ws, actor, j, as_of)
        resource = {
            "jurisdiction": j,
            "purpose": p,
            "destination": _destination_doc(destination, dest),
            "version": {
                "validity": manifest.get("validity", ""),
                "approved": approved is not None
                and approved.version_id == vid
                and approved.statement_sha256 == statement,
                "validated": is_validated(ws, j, p, vid),
            },
            "consent_rechecked": True,  # the audience below is re-derived under `plan`
            "obligations": list(plan.obligations),
        }
        decision = activation_decision(ws, actor, resource)
        if not decision["allow"]:
            raise PolicyDenied(
                f"policy denies activating {j}/{p}/{vid} to '{destination}': "
                f"{', '.join(decision['deny'])}",
                reasons=decision["deny"],
            )
    except PolicyDenied as exc:
        record(ws, "activation_denied", actor, **where, reasons=exc.reasons)
        checkpoint(ws)
        raise
    check = recheck(ws, plan, as_of, list(decision["suppress_reasons"]))
    personas = read_personas(vdir)
    assigned = read_assignments(vdir)
    frame = audience(assigned, personas, check.eligible)
    digest = hashlib.sha256(canonical_json(frame.select(KEY, "persona_id").rows())).hexdigest()
    ident = {"statement": statement, "destination": _destination_doc(destination, dest)}
    activation_id = sha256_hex(canonical_json({**ident, "audience": digest}))[:32]
    version = {"jurisdiction": j, "purpose": p, "version_id": vid, "statement_sha256": statement}
    head = {"activation_id": activation_id, "version": version, "destination": destination}
    payloads = _payloads(frame, personas, head)
    report = ActivationReport(
        activation_id=activation_id,
        destination=destination,
        version=version,
        audience={pid: doc["customers"] for pid, doc in payloads.items()},
        removed_by_recheck=assigned.height - frame.height,
        channel_suppressed=check.channel_suppressed,
    )
    _deliver(ws, dest, destination, payloads, frame, report, actor, where)
    _receipt(ws, destination, report, check.plan.digest())
    record(
        ws,
        "activation_delivered",
        actor,
        **where,
        activation_id=activation_id,
        audience=report.audience,
        delivered=report.delivered,
        skipped=report.skipped,
        removed_by_recheck=report.removed_by_recheck,
        channel_suppressed=report.channel_suppressed,
        marketing_plan_digest=check.plan.digest(),
    )
    checkpoint(ws)
    return report


def _deliver(
    ws: Workspace,
    dest: FileDestination | HttpDestination,
    name: str,
    payloads: dict[str, dict[str, Any]],
    frame: pl.DataFrame,
    report: ActivationReport,
    actor: str,
    where: dict[str, Any],
) -> None:
    state = _state_dir(ws, name)
    ledger = state / f"{report.activation_id}.delivered"
    done = set(ledger.read_text("ascii").split()) if ledger.is_file() else set()
    failures: dict[str, str] = {}
    secret = None
    if isinstance(dest, HttpDestination) and dest.secret:
        from engine.kyc.webhook import resolve_secret

        secret = resolve_secret(ws, dest.secret)
    for pid, doc in payloads.items():
        if pid in done:
            report.skipped.append(pid)
            continue
        try:
            if isinstance(dest, HttpDestination):
                error = _post(dest, secret, canonical_json(doc), f"{report.activation_id}:{pid}")
            else:
                v = report.version
                base = ws.path(dest.path) / v["jurisdiction"] / v["purpose"] / v["version_id"]
                rows = frame.filter(pl.col("persona_id") == int(pid)).with_columns(
                    pl.lit(doc["persona"]["name"]).alias("persona_name"),
                    pl.lit(doc["content_key"]).alias("content_key"),
                )
                ext = "parquet" if dest.format == "parquet" else "csv"
                _write_file(dest, base, f"{report.activation_id}-{pid}.{ext}", rows)
                profile = {k: v for k, v in doc.items() if k != "audience"}
                (base / f"{report.activation_id}-{pid}.json").write_bytes(canonical_json(profile))
                error = None
        except OSError as exc:
            error = type(exc).__name__
        if error is None:
            state.mkdir(parents=True, exist_ok=True)
            with ledger.open("a", encoding="ascii") as fh:
                fh.write(pid + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            report.delivered.append(pid)
        else:
            failures[pid] = error
    if failures:
        record(
            ws,
            "activation_failed",
            actor,
            **where,
            activation_id=report.activation_id,
            failed_personas=sorted(failures),
            errors=sorted(set(failures.values())),
            delivered=report.delivered,
        )
        checkpoint(ws)
        raise DeliveryFailed(
            f"destination '{name}' failed for {len(failures)} persona(s) "
            f"({', '.join(sorted(set(failures.values())))}); delivered ones are kept and a "
            "re-run sends only the rest"
        )


def _receipt(ws: Workspace, name: str, report: ActivationReport, plan_digest: str) -> None:
    from engine.experiment.signed import sign_document

    state = _state_dir(ws, name)
    state.mkdir(parents=True, exist_ok=True)
    path = state / f"{report.activation_id}.json"
    if path.is_file():
        return
    doc = {
        "format": "pgov.activation_receipt/1",
        **{k: v for k, v in report.to_json().items() if k not in ("delivered", "skipped")},
        "marketing_plan_digest": plan_digest,
    }
    path.write_bytes(canonical_json(doc) + b"\n")
    sign_document(ws, state / f"{report.activation_id}.dsse.json", RECEIPT_TYPE, doc, [path])
