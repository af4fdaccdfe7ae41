"""The workspace's records checked against the audit log, in both directions.

A version directory, an override line or a quarantine report is a file anyone with write
access can copy, delete, replay or forge; the audit log is append-only and covered by signed
checkpoints. So the log is the record and each file must match an entry in it:

- versions: every ``version_published`` entry has its version at the recorded chain and id
  with the recorded statement digest; every version on disk has exactly one such entry;
  each chain's ids are gapless from v0001 and logged in order; the manifest and the signed
  statement name the chain's jurisdiction and purpose and the version's id;
- approvals: a chain's CURRENT.json matches its latest ``version_approved`` entry;
- overrides: every line of kyc/overrides.jsonl has its ``kyc_override_requested`` or
  ``kyc_override_approved`` entry and every such entry its line;
- quarantine: every ``quarantine_written`` entry's report and sealed files hash as recorded.

Each failure is one readable line. The per-version checks (signature, file digests, inputs)
stay in lineage.statement; this module only cross-checks.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.workspace import Workspace
from lineage.report import VerificationReport

INTENT = "version_publishing"
PUBLISHED = "version_published"
ROLLED_BACK = "version_rolled_back"


@dataclass(frozen=True)
class Logged:
    index: int
    jurisdiction: str
    purpose: str
    version_id: str
    statement_sha256: str


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _disk_versions(ws: Workspace) -> dict[tuple[str, str, str], Path]:
    root = ws.versions_root
    out: dict[tuple[str, str, str], Path] = {}
    if not root.is_dir():
        return out
    for d in sorted(root.glob("*/*/*")):
        rel = d.relative_to(root).parts
        if d.is_dir() and not any(p.startswith(".") for p in rel):
            out[(rel[0], rel[1], rel[2])] = d
    return out


def _statement_claims(vdir: Path) -> dict[str, str] | None:
    from lineage.statement import read_statement_unverified

    try:
        p = read_statement_unverified(vdir).predicate
    except Exception:  # an unreadable statement is reported by the signature check
        return None
    return {"jurisdiction": p.jurisdiction, "purpose": p.purpose, "version_id": p.persona_version}


def check_versions(ws: Workspace, entries: list[dict[str, Any]], rep: VerificationReport) -> None:
    logged: list[Logged] = []
    rolled_back: set[str] = set()
    completed: set[str] = set()
    for e in entries:
        d = e.get("details") or {}
        if e.get("type") == ROLLED_BACK:
            rolled_back.add(str(d.get("run_id")))
        if e.get("type") == PUBLISHED:
            completed.add(str(d.get("run_id")))
    for e in entries:
        d = e.get("details") or {}
        run = str(d.get("run_id"))
        if e.get("type") == INTENT and run not in rolled_back | completed:
            rep.failed(
                "chain-log",
                f"{d.get('jurisdiction')}/{d.get('purpose')}/{d.get('version_id')}: publish "
                f"interrupted (intent at entry {e['index']}, never completed or rolled back); "
                "run 'pgov versions recover'",
            )
    for e in entries:
        d = e.get("details") or {}
        if e.get("type") != PUBLISHED or str(d.get("run_id")) in rolled_back:
            continue
        logged.append(
            Logged(
                int(e["index"]),
                str(d.get("jurisdiction")),
                str(d.get("purpose")),
                str(d.get("version_id")),
                str(d.get("statement_sha256")),
            )
        )
    disk = _disk_versions(ws)
    by_key: dict[tuple[str, str, str], list[Logged]] = defaultdict(list)
    chains: dict[tuple[str, str], list[Logged]] = defaultdict(list)
    for entry in logged:
        by_key[(entry.jurisdiction, entry.purpose, entry.version_id)].append(entry)
        chains[(entry.jurisdiction, entry.purpose)].append(entry)
    before = len(rep.failures)
    for key, hits in sorted(by_key.items()):
        name = "/".join(key)
        if len(hits) > 1:
            rep.failed(
                "chain-log",
                f"{name}: published {len(hits)} times in the audit log (entries "
                f"{', '.join(str(h.index) for h in hits)})",
            )
        entry = hits[-1]
        vdir = disk.get(key)
        if vdir is None:
            rep.failed(
                "chain-log",
                f"{name}: logged as published at entry {entry.index} but missing on disk (deleted)",
            )
            continue
        actual = _sha256(vdir / "statement.dsse.json")
        if actual != entry.statement_sha256:
            rep.failed(
                "chain-log",
                f"{name}: statement sha256 {(actual or 'absent')[:16]} is not the one logged at "
                f"entry {entry.index} ({entry.statement_sha256[:16]}): replaced, replayed or "
                "swapped",
            )
    for key, vdir in sorted(disk.items()):
        name = "/".join(key)
        if key not in by_key:
            rep.failed(
                "chain-log",
                f"{name}: on disk but no version_published entry in the audit log (copied "
                "in, replayed or forged)",
            )
        claims = _statement_claims(vdir)
        want = {"jurisdiction": key[0], "purpose": key[1], "version_id": key[2]}
        if claims is not None and claims != want:
            diff = ", ".join(f"{k} {claims[k]!r}" for k in want if claims[k] != want[k])
            rep.failed("chain-log", f"{name}: the signed statement says {diff}")
        try:
            manifest = json.loads((vdir / "manifest.json").read_bytes())
        except (OSError, ValueError):
            rep.failed("chain-log", f"{name}: manifest.json missing or unreadable")
            continue
        if any(manifest.get(k) != v for k, v in want.items()):
            rep.failed("chain-log", f"{name}: manifest names another chain or id")
        refs = manifest.get("replay")
        if isinstance(refs, dict):
            from engine.errors import PgovError
            from engine.replay import get

            for what, digest in sorted(refs.items()):
                try:
                    get(ws, str(digest), f"{name} {what}")
                except PgovError as exc:
                    rep.failed("replay-store", exc.message)
    for (j, p), hits in sorted(chains.items()):
        ids = [h.version_id for h in hits]
        expected = [f"v{n:04d}" for n in range(1, len(ids) + 1)]
        if ids != expected and len(set(ids)) == len(ids):
            rep.failed(
                "chain-log",
                f"{j}/{p}: ids logged in the order {', '.join(ids[:8])}; expected a gapless "
                "v0001, v0002, ...",
            )
    if len(rep.failures) == before:
        rep.passed(
            "chain-log",
            f"{len(disk)} version(s) on disk and {len(logged)} version_published entries match "
            f"one to one across {len(chains)} chain(s)",
        )


def check_approvals(ws: Workspace, rep: VerificationReport) -> None:
    from engine.approval import CURRENT, current_version
    from engine.errors import PgovError

    root = ws.versions_root
    chains = sorted({p.parent for p in root.glob(f"*/*/{CURRENT}")}) if root.is_dir() else []
    before = len(rep.failures)
    for chain in chains:
        try:
            current_version(ws, chain.parent.name, chain.name)
        except PgovError as exc:
            rep.failed("approvals", exc.message)
    if len(rep.failures) == before:
        rep.passed("approvals", f"{len(chains)} CURRENT pointer(s) match their approvals")


def check_overrides(ws: Workspace, entries: list[dict[str, Any]], rep: VerificationReport) -> None:
    from engine.kyc.override_audit import backing_problems

    problems = backing_problems(ws, entries)
    for line in problems:
        rep.failed("overrides", line)
    if not problems:
        rep.passed("overrides", "every override event is in the audit log and vice versa")


def check_quarantine(ws: Workspace, entries: list[dict[str, Any]], rep: VerificationReport) -> None:
    before = len(rep.failures)
    n = 0
    for e in entries:
        if e.get("type") != "quarantine_written":
            continue
        d = e.get("details") or {}
        n += 1
        for rel, want in sorted((d.get("files") or {}).items()):
            path = ws.root / str(d.get("directory", "")) / rel
            got = _sha256(path)
            if got != want:
                what = "missing" if got is None else "altered"
                rep.failed(
                    "quarantine",
                    f"{Path(str(d.get('directory', ''))) / rel}: {what} since entry {e['index']} "
                    "recorded it",
                )
    if len(rep.failures) == before:
        rep.passed("quarantine", f"{n} quarantine report(s) hash as recorded")


def check_requests(entries: list[dict[str, Any]], trust: Any, rep: VerificationReport) -> None:
    from engine.actors import unsigned_actions, verify_requests

    problems = verify_requests(entries, trust) + unsigned_actions(entries)
    for line in problems:
        rep.failed("actor-requests", line)
    if not problems:
        n = sum(1 for e in entries if e.get("type") == "actor_request")
        rep.passed("actor-requests", f"{n} signed actor request(s) verify under enrolled keys")


def crosscheck(
    ws: Workspace, entries: list[dict[str, Any]], trust: Any = None
) -> VerificationReport:
    """Every cross-check, from log entries already read (dicts with their ``index``); actor
    enrolments are held to ``trust`` (the verifier's pinned store; default the workspace's)."""
    from engine.actors import _workspace_trust

    rep = VerificationReport(subject=f"workspace {ws.root} against its audit log")
    check_versions(ws, entries, rep)
    check_approvals(ws, rep)
    check_overrides(ws, entries, rep)
    check_quarantine(ws, entries, rep)
    check_requests(entries, trust if trust is not None else _workspace_trust(ws), rep)
    return rep
