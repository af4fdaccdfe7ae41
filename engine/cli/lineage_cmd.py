"""`pgov lineage show|verify`: the signed statement of a persona version.

VERSION is a version directory, or ``JURISDICTION/PURPOSE/VERSION_ID`` under the workspace's
versions/ directory. ``verify`` re-hashes the files on disk against the signed statement,
re-hashes inputs that still exist, and finds the statement's digest in the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.padding import Padding
from rich.table import Table

from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    handle_errors,
    open_workspace,
)
from engine.errors import BadInputError, ConfigError, UsageError, VerificationFailed
from engine.workspace import CONFIG_NAME, Workspace
from lineage.report import VerificationReport

lineage_app = typer.Typer(help="Signed lineage of persona versions: show and verify.")

TrustOpt = typer.Option(
    None, "--trust", help="Trust file (default: [keys].trust_file of the workspace)."
)


def _maybe_workspace(path: Path) -> Workspace | None:
    return open_workspace(path) if (path / CONFIG_NAME).is_file() else None


def resolve_version(ws: Workspace | None, version: str) -> Path:
    p = Path(version)
    if p.is_dir():
        return p.resolve()
    parts = version.split("/")
    if ws is not None and len(parts) == 3 and all(parts) and ".." not in parts:
        d = ws.versions_dir(parts[0], parts[1]) / parts[2]
        if d.is_dir():
            return d
    where = f" under {ws.versions_root}" if ws is not None else ""
    # Not found is bad input (exit 5), as everywhere a named version is missing.
    raise BadInputError(
        f"version {version!r} not found (a version directory, or JURISDICTION/PURPOSE/VERSION"
        f"{where})"
    )


def all_versions(ws: Workspace) -> list[Path]:
    """Every published version directory; staging (dot) directories are not versions."""
    root = ws.versions_root
    if not root.is_dir():
        return []
    return sorted(
        d
        for d in root.glob("*/*/*")
        if d.is_dir() and not any(part.startswith(".") for part in d.relative_to(root).parts)
    )


def _trust(ws: Workspace | None, trust_file: Path | None) -> Any:
    from lineage.signing import TrustStore

    if trust_file is not None:
        return TrustStore.load(trust_file)
    if ws is None:
        raise ConfigError("no workspace here: give -w WORKSPACE or --trust FILE")
    return TrustStore.load(ws.path(ws.config.keys.trust_file))


def _print(rep: VerificationReport) -> None:
    console.print(f"[bold]{rep.subject}[/]", highlight=False)
    for c in rep.checks:
        mark = "[green]ok[/]  " if c.ok else "[bold red]FAIL[/]"
        console.print(f"  {mark} {c.name}: {c.detail}", highlight=False)


def _print_request(params: dict[str, Any], started_at: str) -> None:
    """As-of date first (a back-dated run shows), then every parameter, wrapped."""
    from datetime import date

    as_of = str(params.get("as_of", "?"))
    note = ""
    try:
        days = (date.fromisoformat(started_at[:10]) - date.fromisoformat(as_of)).days
        if days > 0:
            note = f"  [yellow](built {days} day(s) later: back-dated)[/]"
        elif days < 0:
            note = f"  [yellow]({-days} day(s) after the build date)[/]"
    except ValueError:
        pass
    console.print(f"  as of      {as_of}{note}", highlight=False)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    flat = {k: v for k, v in params.items() if k not in ("as_of", "segmentation")}
    flat.update({f"segmentation.{k}": v for k, v in (params.get("segmentation") or {}).items()})
    for k, v in sorted(flat.items()):
        grid.add_row(k, json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v))
    console.print("  parameters")
    console.print(Padding(grid, (0, 0, 0, 4)))


def _print_accounting(accounting: dict[str, Any]) -> None:
    table = Table(title=None, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("source", no_wrap=True)
    for col in ("in", "kept", "excl", "quar"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("reasons", overflow="fold")
    for source, a in sorted(accounting.items()):
        reasons = {**(a.get("excluded_by_reason") or {}), **(a.get("quarantined_by_reason") or {})}
        table.add_row(
            source,
            *(str(a.get(k, 0)) for k in ("input_rows", "kept", "excluded", "quarantined")),
            ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or "-",
        )
    console.print("  row accounting (kept + excl + quar = in)")
    console.print(Padding(table, (0, 0, 0, 4)))


@lineage_app.command("show")
@handle_errors
def show_cmd(
    version: str = typer.Argument(..., help="Version dir or JURISDICTION/PURPOSE/VERSION_ID."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print a version's statement (not a verification: use 'lineage verify' for that)."""
    from lineage.statement import STATEMENT_FILE, read_statement_unverified, statement_sha256

    ws = _maybe_workspace(workspace)
    vdir = resolve_version(ws, version)
    st = read_statement_unverified(vdir)
    doc = st.to_json_dict()
    if as_json:
        emit_json(
            {
                "version_dir": str(vdir),
                "statement_sha256": statement_sha256(vdir),
                "verified": False,
                "statement": doc,
            }
        )
        return
    p = st.predicate
    console.print(f"[bold]{p.persona_version}[/] {p.jurisdiction}/{p.purpose}  ({vdir})")
    # Digests abbreviated to fit 80 columns; --json has them in full.
    console.print(f"  statement  {STATEMENT_FILE} sha256 {statement_sha256(vdir)[:32]}…")
    console.print(f"  validity   {p.validity}   actor {p.actor}")
    console.print(f"  built      {p.started_at[:19]} -> {p.finished_at[:19]} (UTC)")
    _print_request(p.parameters, p.started_at)
    console.print(
        f"  code       {p.code.version}" + (f" @ {p.code.git_commit}" if p.code.git_commit else "")
    )
    console.print(
        f"  policy     bundle {p.policy.bundle_revision} ({p.policy.bundle_digest[:30]}…) "
        f"plan {p.policy.plan_digest[:16]}…"
    )
    if p.predecessor:
        pred_sha = (p.predecessor.statement_sha256 or "none")[:16]
        console.print(f"  follows    {p.predecessor.version} (statement {pred_sha}…)")
    console.print("  inputs")
    for i in p.inputs:
        console.print(f"    {i.name:<18} {i.sha256[:16]}… rows={i.rows}  {i.path}")
    console.print("  outputs (signed subjects)")
    for s in st.subject:
        console.print(f"    {s.name:<32} {s.digest.get('sha256', '')[:16]}…")
    failed = [g for g in p.gates if isinstance(g, dict) and g.get("passed") is False]
    console.print(f"  gates      {len(p.gates)} ({len(failed)} failed)")
    _print_accounting(p.row_accounting)
    console.print("[dim]not verified: run 'pgov lineage verify' to check signature and files[/]")


PinOpt = typer.Option(
    None,
    "--pin",
    envvar="PGOV_PINNED_CHECKPOINT",
    help="The verifier's pinned checkpoint file, kept outside the workspace (with --all): the "
    "log must extend it; it moves forward after a clean run.",
)


def _trust_notice(ws: Workspace | None, trust_file: Path | None) -> str | None:
    from lineage.pinning import inside

    if ws is None:
        return None
    if trust_file is None or inside(trust_file, ws.root):
        return (
            "trusting only the keys found in the workspace itself "
            f"({ws.config.keys.trust_file}): anyone who can write the workspace can add a key "
            "there; pin a copy outside it and pass --trust"
        )
    return None


def _cross_reports(
    ws: Workspace, store: Any, audit: Any, pin: Path | None
) -> list[VerificationReport]:
    """The chain-level checks: records vs log, the log itself, and the verifier's pin."""
    from engine.crosscheck import crosscheck
    from engine.errors import PgovError
    from lineage.auditlog import verify_log
    from lineage.merkle import leaf_hash
    from lineage.pinning import Pin

    try:
        raw = list(audit.entries())
        entries = audit.query()
    except PgovError as exc:
        rep = VerificationReport(subject=f"audit log {ws.audit_dir}")
        rep.failed("log-format", exc.message)
        return [rep]
    reports = [crosscheck(ws, entries, store), verify_log(audit, store)]
    if pin is not None:
        rep = VerificationReport(subject=f"pinned checkpoint {pin}")
        Pin(pin).check(store, [leaf_hash(e) for e in raw], ws.root, rep)
        reports.append(rep)
    return reports


@lineage_app.command("verify")
@handle_errors
def verify_cmd(
    version: str | None = typer.Argument(None, help="Version dir or J/PURPOSE/VERSION_ID."),
    all_: bool = typer.Option(
        False,
        "--all",
        help="Verify every published version AND the chains: versions on disk against the "
        "audit log both ways, overrides, approvals, quarantine reports, the log itself.",
    ),
    workspace: Path = WorkspaceOpt,
    trust: Path | None = TrustOpt,
    pin: Path | None = PinOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Signature, file digests, inputs, policy bundle and the audit-log entry of versions."""
    from lineage.auditlog import AuditLog
    from lineage.pinning import Pin
    from lineage.statement import verify_version

    if all_ == (version is not None):
        raise UsageError("give exactly one of VERSION or --all")
    ws = _maybe_workspace(workspace)
    if all_:
        if ws is None:
            raise ConfigError(f"{workspace / CONFIG_NAME}: --all needs a workspace")
        targets = all_versions(ws)
        if not targets and not ws.audit_dir.is_dir():
            raise UsageError(f"no published versions under {ws.versions_root}")
    else:
        targets = [resolve_version(ws, str(version))]
    store = _trust(ws, trust)
    audit = AuditLog(ws.audit_dir) if ws is not None and ws.audit_dir.is_dir() else None
    reports = [
        verify_version(t, store, workspace_root=ws.root if ws else None, audit=audit)
        for t in targets
    ]
    if ws is not None and audit is None:
        for r in reports:
            r.failed("audit-log", f"no audit log at {ws.audit_dir}")
    if all_ and ws is not None and audit is not None:
        reports.extend(_cross_reports(ws, store, audit, pin))
    notice = _trust_notice(ws, trust)
    bad = [r for r in reports if not r.ok]
    if as_json:
        emit_json(
            {
                "ok": not bad,
                "trust": "workspace" if notice else "pinned",
                "versions": [r.to_dict() for r in reports],
            }
        )
    else:
        if notice:
            console.print(f"[yellow]note[/]: {notice}", highlight=False)
        for r in reports:
            _print(r)
    if bad:
        failures = [(r, c) for r in bad for c in r.failures]
        if not as_json:
            # One line per failure, greppable, after the full picture.
            for r, c in failures:
                console.print(
                    f"FAIL {r.subject}: {c.name}: {c.detail}",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
        if len(failures) == 1:
            bad[0].raise_if_failed()
        r0, c0 = failures[0]
        raise VerificationFailed(
            f"{len(failures)} check(s) failed in {len(bad)} of {len(reports)} report(s); "
            f"first: {r0.subject}: {c0.name}: {c0.detail}"
        )
    if all_ and pin is not None and audit is not None:
        Pin(pin).advance(audit.latest_checkpoint_text())
    if not as_json:
        console.print(f"[bold green]{len(targets)} version(s) verified[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(lineage_app, name="lineage")
