"""What a persona version's stored files say, read only after the version verifies.

Every value a report shows comes from here: the signed statement's predicate, the version's
signed output files (manifest, plan, accounting, personas, KYC routing and queues), the
predecessor version (verified too, for the diff) and the audit log entries that belong to
the version (with inclusion proofs checked against the latest signed checkpoint). Nothing
is recomputed from the input data, and no customer token leaves this module: KYC figures
are aggregates with cells below the policy's k suppressed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import PgovError, VerificationFailed
from engine.workspace import Workspace

SUPPRESSED = None  # a cell below k: shown as "<k", never as a number


@dataclass(frozen=True)
class AuditProof:
    index: int
    type: str
    actor: str
    time: str
    tree_size: int
    leaf_hash: str
    proof_hashes: int
    verified: bool
    detail: str


@dataclass(frozen=True)
class Governance:
    approvals: list[dict[str, Any]]
    reidentifications: list[dict[str, Any]]
    denials: list[dict[str, Any]]
    verification: dict[str, Any]
    proofs: list[AuditProof]


@dataclass(frozen=True)
class KycSummary:
    k: int
    ruleset_version: str | None
    tiers: dict[str, int | None]
    reasons: list[tuple[str, int | None]]
    queues: list[dict[str, Any]]


@dataclass(frozen=True)
class VersionEvidence:
    ref: str
    path: Path
    manifest: dict[str, Any]
    predicate: dict[str, Any]
    plan: dict[str, Any]
    accounting: dict[str, Any]
    personas: dict[str, Any]
    kyc: KycSummary | None
    diff: dict[str, Any] | None
    previous: str | None
    governance: Governance
    suppressions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(
            self.plan.get("k_anonymity_min") or self.personas["params"].get("k_anonymity", 1)
        )


def _json(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError) as exc:
        raise VerificationFailed(f"{path}: unreadable after verification ({exc})") from None
    return doc


def verify_or_refuse(ws: Workspace, version_dir: Path) -> dict[str, Any]:
    """Full lineage verification (signature, file digests, inputs, bundle, audit entry);
    a version that does not verify is refused: nothing unverified reaches a report."""
    from lineage.auditlog import AuditLog
    from lineage.signing import TrustStore
    from lineage.statement import verify_version

    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    rep = verify_version(version_dir, trust, workspace_root=ws.root, audit=AuditLog(ws.audit_dir))
    rep.raise_if_failed()
    return rep.to_dict()


def _predicate(version_dir: Path) -> dict[str, Any]:
    from lineage.statement import read_statement_unverified

    # Read after verify_or_refuse checked the signature over these same bytes.
    return read_statement_unverified(version_dir).predicate.model_dump(mode="json")


def kyc_summary(version_dir: Path, k: int) -> KycSummary | None:
    from engine.kyc.io import QUEUES_FILE, ROUTING_FILE

    routing_path = version_dir / ROUTING_FILE
    if not routing_path.is_file():
        return None
    routing = pl.read_parquet(routing_path, columns=["tier", "reason_codes", "queue", "sla_days"])

    def cell(n: int) -> int | None:
        return n if n >= k else SUPPRESSED

    tiers = {
        str(r["tier"]): cell(int(r["len"]))
        for r in routing.group_by("tier").len().sort("tier").iter_rows(named=True)
    }
    reasons_df = (
        routing.select(pl.col("reason_codes").explode().alias("reason"))
        .drop_nulls()
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    reasons = [(str(r["reason"]), cell(int(r["len"]))) for r in reasons_df.iter_rows(named=True)]
    queues_doc = _json(version_dir / QUEUES_FILE) if (version_dir / QUEUES_FILE).is_file() else {}
    per_queue = (
        routing.group_by("queue")
        .agg(pl.len().alias("items"), pl.col("sla_days").first())
        .sort("queue")
    )
    queues = []
    for r in per_queue.iter_rows(named=True):
        items = cell(int(r["items"]))
        sla = int(r["sla_days"]) if r["sla_days"] is not None else None
        per_day = None if items is None or not sla else round(items / sla, 1)
        queues.append({"queue": r["queue"], "items": items, "sla_days": sla, "per_day": per_day})
    return KycSummary(
        k=k,
        ruleset_version=queues_doc.get("ruleset_version"),
        tiers=tiers,
        reasons=reasons,
        queues=queues,
    )


def _version_entries(
    events: list[dict[str, Any]], manifest: dict[str, Any], statement_sha: str
) -> list[dict[str, Any]]:
    """Audit entries that belong to this version: its refresh run (found through the
    version_published entry carrying the statement digest), its approvals and deliveries."""
    j, p, vid = manifest["jurisdiction"], manifest["purpose"], manifest["version_id"]
    run_ids = {
        (e.get("details") or {}).get("run_id")
        for e in events
        if e.get("type") == "version_published"
        and (e.get("details") or {}).get("statement_sha256") == statement_sha
    }
    run_ids.discard(None)
    out = []
    for e in events:
        d = e.get("details") or {}
        same_run = d.get("run_id") in run_ids
        approval = (
            e.get("type") == "version_approved" and d.get("statement_sha256") == statement_sha
        )
        delivery = (
            e.get("type", "").startswith("kyc_routing")
            and d.get("jurisdiction") == j
            and d.get("purpose", p) == p
            and d.get("version_id") == vid
        )
        if same_run or approval or delivery:
            out.append(e)
    return out


def _proofs(ws: Workspace, entries: list[dict[str, Any]]) -> list[AuditProof]:
    from lineage.auditlog import AuditLog, verify_inclusion_proof
    from lineage.signing import TrustStore

    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    log = AuditLog(ws.audit_dir)
    out = []
    for e in entries:
        idx = int(e["index"])
        try:
            proof = log.prove_inclusion(idx)
            verify_inclusion_proof(proof, trust)
            ok, detail = True, "included in the signed checkpoint"
            size, leaf, n = int(proof["tree_size"]), str(proof["leaf_hash"]), len(proof["proof"])
        except PgovError as exc:
            ok, detail, size, leaf, n = False, exc.message, 0, "", 0
        out.append(
            AuditProof(
                idx, str(e["type"]), str(e["actor"]), str(e["time"]), size, leaf, n, ok, detail
            )
        )
    return out


def _governance(
    ws: Workspace, manifest: dict[str, Any], statement_sha: str, verification: dict[str, Any]
) -> Governance:
    from lineage.auditlog import AuditLog

    events = AuditLog(ws.audit_dir).query()
    j, p = manifest["jurisdiction"], manifest["purpose"]
    published = next(
        (
            e
            for e in events
            if e.get("type") == "version_published"
            and (e.get("details") or {}).get("statement_sha256") == statement_sha
        ),
        None,
    )
    since = str(published["time"]) if published else ""
    approvals = [
        {"actor": e["actor"], "time": (e.get("details") or {}).get("approved_at", e["time"])}
        for e in events
        if e.get("type") == "version_approved"
        and (e.get("details") or {}).get("statement_sha256") == statement_sha
    ]
    # Re-identification entries carry no version: the report shows those recorded while this
    # version existed, which is when its tokens could have been looked up.
    reids = [
        {
            "actor": e["actor"],
            "time": e["time"],
            "count": (e.get("details") or {}).get("count"),
            "outcome": (e.get("details") or {}).get("outcome"),
            "reason": (e.get("details") or {}).get("reason") or "-",
            "column": (e.get("details") or {}).get("column"),
        }
        for e in events
        if e.get("type") == "reidentification" and str(e["time"]) >= since
    ]
    denials = [
        {
            "actor": e["actor"],
            "time": e["time"],
            "reasons": ", ".join((e.get("details") or {}).get("reasons") or []) or "-",
        }
        for e in events
        if e.get("type") == "refresh_denied"
        and (e.get("details") or {}).get("jurisdiction") == j
        and (e.get("details") or {}).get("purpose") == p
    ]
    proofs = _proofs(ws, _version_entries(events, manifest, statement_sha))
    bad = [x for x in proofs if not x.verified]
    if bad:
        raise VerificationFailed(
            f"audit entry {bad[0].index} of this version has no valid inclusion proof: "
            f"{bad[0].detail}"
        )
    return Governance(approvals, reids, denials, verification, proofs)


def _previous(ws: Workspace, predicate: dict[str, Any], version_dir: Path) -> Path | None:
    pred = predicate.get("predecessor")
    if not pred:
        return None
    prev = version_dir.parent / str(pred["version"])
    if not prev.is_dir():
        raise VerificationFailed(f"predecessor {pred['version']} of {version_dir.name} is missing")
    return prev


def _unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for r in records:
        key = json.dumps(r, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def load_evidence(ws: Workspace, version_dir: Path, *, with_diff: bool = True) -> VersionEvidence:
    """Verify, then read; raises VerificationFailed (exit 4) when anything does not verify."""
    from engine.segment.diff import diff_versions
    from engine.segment.io import read_personas
    from lineage.statement import statement_sha256

    verification = verify_or_refuse(ws, version_dir)
    predicate = _predicate(version_dir)
    manifest = _json(version_dir / "manifest.json")
    plan = _json(version_dir / "plan.json")
    accounting = _json(version_dir / "accounting.json")
    personas = read_personas(version_dir)
    k = int(plan.get("k_anonymity_min") or personas["params"].get("k_anonymity", 1))
    diff = None
    prev = _previous(ws, predicate, version_dir) if with_diff else None
    if prev is not None:
        verify_or_refuse(ws, prev)  # the diff's other half must verify too
        diff = diff_versions(prev, version_dir).as_dict()
    statement_sha = statement_sha256(version_dir)
    suppressions = _unique(
        list(personas.get("suppressed") or [])
        + list(predicate.get("suppression") or [])
        + list((diff or {}).get("suppressed") or [])
    )
    ref = f"{manifest['jurisdiction']}/{manifest['purpose']}/{manifest['version_id']}"
    return VersionEvidence(
        ref=ref,
        path=version_dir,
        manifest=manifest,
        predicate=predicate,
        plan=plan,
        accounting=accounting,
        personas=personas,
        kyc=kyc_summary(version_dir, k),
        diff=diff,
        previous=None if prev is None else prev.name,
        governance=_governance(ws, manifest, statement_sha, verification),
        suppressions=suppressions,
    )
