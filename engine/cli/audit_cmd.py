"""`pgov audit verify|prove|verify-proof|query|checkpoint|repair`: the Merkle audit log.

Verification reads only stored bytes and the trust file; a proof file verifies with nothing
but itself and the trust file (``--trust``), so an auditor can check it away from the
workspace.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    handle_errors,
    open_workspace,
    progress,
)
from engine.errors import BadInputError, UsageError, VerificationFailed
from engine.progress import ProgressEvent
from engine.workspace import Workspace
from lineage.report import VerificationReport

audit_app = typer.Typer(help="The append-only audit log: verify, prove, query, checkpoint.")

TrustOpt = typer.Option(
    None, "--trust", help="Trust file (default: [keys].trust_file of the workspace)."
)


def _trust(ws: Workspace | None, trust_file: Path | None) -> Any:
    from lineage.signing import TrustStore

    if trust_file is not None:
        return TrustStore.load(trust_file)
    if ws is None:
        raise UsageError("give --trust FILE or a workspace (-w) holding pgov.toml")
    return TrustStore.load(ws.path(ws.config.keys.trust_file))


def origin_of(ws: Workspace) -> str:
    """The checkpoint origin line; the same string the refresh uses after each run."""
    from lineage.checkpoint import log_origin

    return log_origin(ws.config.name)


def print_report(rep: VerificationReport) -> None:
    for c in rep.checks:
        mark = "[green]ok[/]  " if c.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {c.name}: {c.detail}", highlight=False)


def finish(rep: VerificationReport, as_json: bool) -> None:
    """Print the report; raise VerificationFailed (exit 4) naming the first failed check."""
    if as_json:
        emit_json(rep.to_dict())
    else:
        print_report(rep)
    rep.raise_if_failed()


@audit_app.command("verify")
@handle_errors
def verify_cmd(
    workspace: Path = WorkspaceOpt, trust: Path | None = TrustOpt, as_json: bool = JsonOpt
) -> None:
    """Recompute the Merkle tree from the stored entries; check every signed checkpoint."""
    from lineage.auditlog import AuditLog

    ws = open_workspace(workspace)
    with progress("audit verify") as hook:
        hook.describe("loading the trust store")
        store = _trust(ws, trust)
        hook.describe("recomputing the Merkle tree and checking every signed checkpoint")
        started = time.perf_counter()
        rep = AuditLog(ws.audit_dir).verify(store)
        hook(ProgressEvent("audit log", "verify", time.perf_counter() - started))
    finish(rep, as_json)
    if not as_json:
        console.print("[bold green]audit log verified[/]")


@audit_app.command("prove")
@handle_errors
def prove_cmd(
    entry: int | None = typer.Option(None, "--entry", help="Leaf index of the entry to prove."),
    consistency: tuple[int, int] | None = typer.Option(
        None,
        "--consistency",
        help="OLD NEW: prove the log of NEW entries extends the log of OLD entries "
        "(C2SP tlog-proof style text, see docs/lineage.md).",
    ),
    fmt: str = typer.Option(
        "json", "--format", help="Inclusion proof format: json or tlog-proof (C2SP)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the proof here (else stdout)."),
    workspace: Path = WorkspaceOpt,
) -> None:
    """An inclusion proof of one entry in the latest signed checkpoint, or a consistency
    proof between two tree sizes; both verifiable offline."""
    from lineage.auditlog import AuditLog

    if (entry is None) == (consistency is None):
        raise UsageError("give exactly one of --entry N or --consistency OLD NEW")
    ws = open_workspace(workspace)
    log = AuditLog(ws.audit_dir)
    if consistency is not None:
        from engine.cli.proofs import consistency_proof_text

        text = consistency_proof_text(log, *consistency)
        summary = f"consistency proof {consistency[0]} -> {consistency[1]}"
    else:
        assert entry is not None
        size = log.size()
        if not 0 <= entry < size:
            raise BadInputError(
                f"entry {entry} does not exist: the log holds {size} entries (0..{size - 1})"
            )
        if fmt not in ("json", "tlog-proof"):
            raise UsageError("--format must be json or tlog-proof")
        proof = log.prove_inclusion(entry)
        if fmt == "tlog-proof":
            from lineage.tlogproof import tlog_proof_text

            text = tlog_proof_text(proof)
        else:
            text = json.dumps(proof, indent=2, sort_keys=True) + "\n"
        summary = (
            f"proof of entry {entry} in tree of size {proof['tree_size']} "
            f"({len(proof['proof'])} hashes)"
        )
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"{summary} written to {out}")


@audit_app.command("verify-proof")
@handle_errors
def verify_proof_cmd(
    proof_file: Path = typer.Argument(..., help="A proof written by 'pgov audit prove'."),
    trust: Path | None = TrustOpt,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check a proof offline: inclusion (JSON or C2SP tlog-proof) or consistency; the
    checkpoint signatures and the Merkle path."""
    from lineage.auditlog import verify_inclusion_proof
    from lineage.tlogproof import (
        CONSISTENCY_PROOF,
        TLOG_PROOF,
        verify_consistency_text,
        verify_tlog_proof,
    )

    ws = None if trust is not None else open_workspace(workspace)
    try:
        raw = proof_file.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{proof_file}: no such proof file") from None
    if raw.startswith((TLOG_PROOF.encode(), CONSISTENCY_PROOF.encode())):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationFailed(f"{proof_file}: not UTF-8 text") from None
        if raw.startswith(CONSISTENCY_PROOF.encode()):
            old, new = verify_consistency_text(text, _trust(ws, trust))
            if as_json:
                emit_json({"ok": True, "old_size": old, "new_size": new})
            else:
                console.print(
                    f"[bold green]consistency verified[/]: the signed log of {new} entries "
                    f"extends the signed log of {old} entries"
                )
            return
        proven = verify_tlog_proof(text, _trust(ws, trust))
        if as_json:
            emit_json(
                {
                    "ok": True,
                    "index": proven.index,
                    "tree_size": proven.tree_size,
                    "entry": proven.entry,
                }
            )
            return
        console.print(
            f"[bold green]proof verified[/]: entry {proven.index} is in the signed log of "
            f"{proven.tree_size} entries"
        )
        console.print(json.dumps(proven.entry, sort_keys=True), highlight=False)
        return
    try:
        proof = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed(f"{proof_file}: not a JSON proof file") from None
    if not isinstance(proof, dict):
        raise VerificationFailed(f"{proof_file}: not a proof object")
    entry = verify_inclusion_proof(proof, _trust(ws, trust))
    if as_json:
        emit_json(
            {"ok": True, "index": proof["index"], "tree_size": proof["tree_size"], "entry": entry}
        )
        return
    console.print(
        f"[bold green]proof verified[/]: entry {proof['index']} is in the signed log of "
        f"{proof['tree_size']} entries"
    )
    console.print(json.dumps(entry, sort_keys=True), highlight=False)


def _when(option: str, value: str | None, end_of_day: bool = False) -> Any:
    from datetime import timedelta

    from lineage.signing import parse_time

    if value is None:
        return None
    text = value if "T" in value else f"{value}T00:00:00+00:00"
    try:
        when = parse_time(text)
    except Exception:
        raise UsageError(f"{option} {value!r}: not an ISO date or time with a zone") from None
    # A bare date as --until means "through that day".
    return when + timedelta(days=1) if end_of_day and "T" not in value else when


@audit_app.command("query")
@handle_errors
def query_cmd(
    actor: str | None = typer.Option(None, "--actor", help="Only entries by this actor."),
    since: str | None = typer.Option(None, "--since", help="ISO time with zone, or a date."),
    until: str | None = typer.Option(
        None, "--until", help="ISO time with zone (exclusive), or a date (through that day)."
    ),
    type_: str | None = typer.Option(None, "--type", help="Entry type, e.g. version_published."),
    jurisdiction: str | None = typer.Option(None, "--jurisdiction", "-j"),
    run_id: str | None = typer.Option(None, "--run-id", help="Entries of one refresh run."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List entries by actor, time, type, jurisdiction and run (reads the stored bytes)."""
    from engine.audit import EVENT_TYPES
    from lineage.auditlog import AuditLog
    from lineage.signing import parse_time

    ws = open_workspace(workspace)
    start, end = _when("--since", since), _when("--until", until, end_of_day=True)
    log = AuditLog(ws.audit_dir)
    if type_ is not None and type_ not in EVENT_TYPES:
        seen = {r["type"] for r in log.query()}
        if type_ not in seen:
            known = ", ".join(sorted(EVENT_TYPES | seen))
            raise UsageError(f"--type {type_!r} is not an audit event type; known: {known}")
    if jurisdiction is not None and jurisdiction not in ws.config.jurisdictions:
        raise UsageError(
            f"unknown jurisdiction {jurisdiction!r}; declared: {', '.join(ws.config.jurisdictions)}"
        )
    rows = log.query(actor=actor, since=start, type=type_)
    if end is not None:
        rows = [r for r in rows if parse_time(str(r.get("time"))) < end]
    if jurisdiction is not None:
        rows = [r for r in rows if _mentions_jurisdiction(r.get("details") or {}, jurisdiction)]
    if run_id is not None:
        rows = [r for r in rows if (r.get("details") or {}).get("run_id") == run_id]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        details = json.dumps(r.get("details"), sort_keys=True)
        console.print(
            f"{r['index']:>7}  {r['time']}  {r['type']:<24} {r['actor']:<18} {details}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"{len(rows)} entries")


def _mentions_jurisdiction(details: dict[str, Any], jurisdiction: str) -> bool:
    if details.get("jurisdiction") == jurisdiction:
        return True
    many = details.get("jurisdictions")
    return isinstance(many, list) and jurisdiction in many


@audit_app.command("checkpoint")
@handle_errors
def checkpoint_cmd(
    workspace: Path = WorkspaceOpt,
    actor: str = typer.Option("pgov", "--actor", help="Recorded as the checkpoint's actor."),
) -> None:
    """Sign the current tree head (checkpoints/<size>.txt and checkpoints/latest)."""
    from lineage.auditlog import AuditLog
    from lineage.signing import SigningKeyring

    ws = open_workspace(workspace)
    keys = ws.config.keys
    signer = SigningKeyring(ws.path(keys.signing_dir), ws.path(keys.trust_file)).signer()
    path = AuditLog(ws.audit_dir).checkpoint(signer, origin_of(ws), actor=actor)
    console.print(f"checkpoint written: {path}")


@audit_app.command("repair")
@handle_errors
def repair_cmd(
    workspace: Path = WorkspaceOpt,
    actor: str = typer.Option("pgov", "--actor", help="Recorded as the repair's actor."),
) -> None:
    """Truncate a torn final record left by a crash (nothing else); the repair is audited."""
    from lineage.auditlog import AuditLog

    ws = open_workspace(workspace)
    done = AuditLog(ws.audit_dir).repair(actor=actor)
    if done is None:
        console.print("audit log intact: nothing to repair")
    else:
        console.print(
            f"truncated {done['truncated_bytes']} bytes of a torn record at byte "
            f"{done['offset']}; {done['entries_kept']} entries kept; repair audited"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
