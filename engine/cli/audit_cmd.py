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
    return f"personagov/{ws.config.name}"


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
    entry: int = typer.Option(..., "--entry", help="Leaf index of the entry to prove."),
    out: Path | None = typer.Option(None, "--out", help="Write the proof here (else stdout)."),
    workspace: Path = WorkspaceOpt,
) -> None:
    """An inclusion proof of one entry in the latest signed checkpoint, verifiable offline."""
    from lineage.auditlog import AuditLog

    ws = open_workspace(workspace)
    proof = AuditLog(ws.audit_dir).prove_inclusion(entry)
    text = json.dumps(proof, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(
            f"proof of entry {entry} in tree of size {proof['tree_size']} "
            f"({len(proof['proof'])} hashes) written to {out}"
        )


@audit_app.command("verify-proof")
@handle_errors
def verify_proof_cmd(
    proof_file: Path = typer.Argument(..., help="A proof written by 'pgov audit prove'."),
    trust: Path | None = TrustOpt,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check an inclusion proof offline: its checkpoint signature and the Merkle path."""
    from lineage.auditlog import verify_inclusion_proof

    ws = None if trust is not None else open_workspace(workspace)
    try:
        proof = json.loads(proof_file.read_bytes())
    except FileNotFoundError:
        raise BadInputError(f"{proof_file}: no such proof file") from None
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


@audit_app.command("query")
@handle_errors
def query_cmd(
    actor: str | None = typer.Option(None, "--actor"),
    since: str | None = typer.Option(None, "--since", help="ISO time with zone, or a date."),
    type_: str | None = typer.Option(None, "--type", help="Entry type, e.g. version_published."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List entries by actor, time and type (reads the stored bytes)."""
    from lineage.auditlog import AuditLog
    from lineage.signing import parse_time

    ws = open_workspace(workspace)
    when = None
    if since is not None:
        text = since if "T" in since else f"{since}T00:00:00+00:00"
        try:
            when = parse_time(text)
        except Exception:
            raise UsageError(f"--since {since!r}: not an ISO date or time with a zone") from None
    rows = AuditLog(ws.audit_dir).query(actor=actor, since=when, type=type_)
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
