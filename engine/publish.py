"""One publish: a version's directory, its audit record and its delivery obligation become
visible together, or not at all.

    version_publishing   intent, logged before the rename (run id, chain, id, statement digest)
    rename               the staged directory becomes versions/<j>/<p>/<id>
    version_published    completion, logged after the rename
    after_publish        the delivery obligation (KYC routing to the sinks), recorded in turn

A crash (kill -9, power cut) can stop this anywhere. The next refresh of the chain, under the
chain's lock, calls `recover_chain` first: an intent whose directory is on disk with the
intended statement is completed (and delivered); an intent without its directory is rolled
back (`version_rolled_back`; the staging leftovers are removed); a completed kyc_aml version
never delivered is delivered. So a crash leaves either no version or a verified, delivered
one. A full disk is the same story with an error instead of a kill: the rename is undone if
the completion cannot be logged, and the refresh exits 9.

`after_publish` is the seam the delivery lifecycle hangs on: it receives the workspace, the
published version and who published it, and is called exactly when a version completes
(first time, or at recovery).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from engine.audit import record
from engine.errors import VerificationFailed, storage_error
from engine.store import PersonaVersion, commit, load_version
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

log = structlog.get_logger(__name__)

INTENT = "version_publishing"
PUBLISHED = "version_published"
ROLLED_BACK = "version_rolled_back"
DELIVERED = "kyc_routing_delivered"


def crash_point(stage: str) -> None:
    """Test hook: PGOV_CRASH_AT=<stage> kills the process here, as a power cut would."""
    if os.environ.get("PGOV_CRASH_AT") == stage:
        os._exit(137)


@dataclass(frozen=True)
class Publication:
    jurisdiction: str
    purpose: str
    version_id: str
    run_id: str
    actor: str
    details: dict[str, Any]  # extra fields for the completion entry (validity, gates, ...)


AfterPublish = Callable[[Workspace, PersonaVersion, str], dict[str, int]]


def deliver_routing(ws: Workspace, version: PersonaVersion, actor: str) -> dict[str, int]:
    """The delivery obligation of a completed kyc_aml version, through the delivery lifecycle
    (engine/kyc/delivery.py: risk increases now, routine changes after approval). Idempotent
    deltas, so recovery may call it again safely; each delivery is its own audit entry."""
    from datetime import UTC, datetime

    from engine.kyc.delivery import raise_if_dead_lettered, sync
    from engine.kyc.io import ROUTING_FILE

    if not (version.path / ROUTING_FILE).is_file():
        return {}
    reports = sync(ws, version.jurisdiction, actor, "recovery", datetime.now(UTC).date())
    raise_if_dead_lettered(reports)
    counts: dict[str, int] = {}
    for r in reports:
        for q, n in r.counts.items():
            counts[q] = counts.get(q, 0) + n
    return counts


# engine/kyc/delivery.py owns what delivering means; tests may swap the seam.
after_publish: AfterPublish = deliver_routing


def publish(ws: Workspace, stage: Path, final: Path, pub: Publication) -> PersonaVersion:
    """Intent, rename, completion; the rename is undone if the completion cannot be logged."""
    statement = sha256_hex((stage / "statement.dsse.json").read_bytes())
    base = {
        "jurisdiction": pub.jurisdiction,
        "purpose": pub.purpose,
        "run_id": pub.run_id,
        "version_id": pub.version_id,
        "statement_sha256": statement,
    }
    record(ws, INTENT, pub.actor, **base)
    crash_point("publish_after_intent")
    commit(stage, final)
    crash_point("store_after_rename")
    try:
        record(ws, PUBLISHED, pub.actor, **base, **pub.details)
    except OSError as exc:
        # Not logged as published: take the version out of sight again. Recovery at the next
        # start rolls the intent back (no directory) or completes it (directory still here).
        try:
            os.rename(final, stage)
        except OSError:
            log.error("publish_unrename_failed", version=pub.version_id)
        raise storage_error(exc) from None
    crash_point("publish_after_record")
    return load_version(final)


# The entry types recovery reads (a chain's publishes and deliveries), and each as its
# entry's bytes spell it: entries are canonical JSON (checked when appended), so an entry of
# one of these types holds that exact run of bytes.
_CHAIN_TYPES = (INTENT, PUBLISHED, ROLLED_BACK, DELIVERED)
_CHAIN_MARKS = tuple(canonical_json({"type": t})[1:-1] for t in _CHAIN_TYPES)


def _chain_entries(ws: Workspace, j: str, p: str) -> list[dict[str, Any]]:
    """The chain's publish and delivery entries, in log order, each with its index.

    Every refresh reads the whole log here, so only entries whose bytes can be of one of
    these types are parsed (a refresh appends about nine entries, two of them such): the
    log grows by every refresh of every chain, and parsing all of it cost 12-40 ms at
    1,900 entries (2026-12-02), growing without end."""
    from lineage.auditlog import AuditLog

    out = []
    for i, raw in enumerate(AuditLog(ws.audit_dir).entries()):
        if not any(mark in raw for mark in _CHAIN_MARKS):
            continue
        e = json.loads(raw)
        d = e.get("details") or {}
        if e.get("type") in _CHAIN_TYPES and d.get("jurisdiction") == j and d.get("purpose") == p:
            out.append({"index": i, **e})
    return out


def recover_chain(ws: Workspace, j: str, p: str, actor: str) -> list[str]:
    """Finish or roll back interrupted publishes of one chain; call under its refresh lock.

    Returns one line per repair, for the caller to show."""
    if not ws.audit_dir.is_dir():
        return []
    entries = _chain_entries(ws, j, p)
    done = {
        str(e["details"].get("run_id")) for e in entries if e["type"] in (PUBLISHED, ROLLED_BACK)
    }
    repairs: list[str] = []
    chain = ws.versions_dir(j, p)
    for e in entries:
        if e["type"] != INTENT or str(e["details"].get("run_id")) in done:
            continue
        d = e["details"]
        vid = str(d["version_id"])
        final = chain / vid
        statement = final / "statement.dsse.json"
        base = {k: d[k] for k in ("jurisdiction", "purpose", "run_id", "version_id")}
        if not final.is_dir():
            record(ws, ROLLED_BACK, actor, **base, reason="interrupted before the rename")
            repairs.append(f"{j}/{p}/{vid}: interrupted publish rolled back (never visible)")
            continue
        if not statement.is_file() or sha256_hex(statement.read_bytes()) != d["statement_sha256"]:
            raise VerificationFailed(
                f"{j}/{p}/{vid}: an interrupted publish left a directory whose statement is not "
                f"the intended one (intent at audit entry {e['index']}); not completing it"
            )
        manifest = json.loads((final / "manifest.json").read_bytes())
        record(
            ws,
            PUBLISHED,
            str(e.get("actor")),
            **base,
            statement_sha256=d["statement_sha256"],
            validity=manifest.get("validity"),
            recovered=True,
        )
        repairs.append(f"{j}/{p}/{vid}: interrupted publish completed")
        entries.append({"type": PUBLISHED, "details": {**base}})
    repairs.extend(_deliver_missing(ws, j, p, entries, actor))
    for line in repairs:
        log.warning("publish_recovered", detail=line)
    return repairs


def _deliver_missing(
    ws: Workspace, j: str, p: str, entries: list[dict[str, Any]], actor: str
) -> list[str]:
    delivered = {str(e["details"].get("version_id")) for e in entries if e["type"] == DELIVERED}
    rolled = {str(e["details"].get("run_id")) for e in entries if e["type"] == ROLLED_BACK}
    out = []
    for e in entries:
        d = e["details"]
        vid = str(d.get("version_id"))
        if e["type"] != PUBLISHED or vid in delivered or str(d.get("run_id")) in rolled:
            continue
        vdir = ws.versions_dir(j, p) / vid
        if not (vdir / "routing.parquet").is_file():
            continue
        after_publish(ws, load_version(vdir), actor)
        delivered.add(vid)
        out.append(f"{j}/{p}/{vid}: undelivered routing delivered")
    return out
