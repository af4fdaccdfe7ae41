"""`pgov versions list|check|show`: a jurisdiction's persona version chains, read from disk."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    handle_errors,
    open_workspace,
)
from engine.errors import ExitCode, UsageError, VerificationFailed

versions_app = typer.Typer(
    help="Persona version chains per jurisdiction and purpose.", no_args_is_help=True
)


def _known_jurisdiction(ws_jurisdictions: list[str], jurisdiction: str) -> None:
    if jurisdiction not in ws_jurisdictions:
        raise UsageError(
            f"unknown jurisdiction '{jurisdiction}'; declared: {', '.join(ws_jurisdictions)}"
        )


@versions_app.command("list")
@handle_errors
def list_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j", help="e.g. EU-DE"),
    purpose: str = typer.Option(None, "--purpose", "-p", help="Only this purpose."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List published versions of a jurisdiction, oldest first, with their predecessors."""
    from engine.versions import list_versions

    ws = open_workspace(workspace)
    _known_jurisdiction(ws.config.jurisdictions, jurisdiction)
    infos = list_versions(ws, jurisdiction, purpose)
    if as_json:
        emit_json([i.to_json() for i in infos])
        return
    if not infos:
        console.print(
            f"no published versions for {jurisdiction}" + (f"/{purpose}" if purpose else "")
        )
        return
    table = Table(title=f"persona versions: {jurisdiction}")
    for col in ("purpose", "version", "created", "validity", "predecessor", "statement sha256"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.purpose,
            i.version_id,
            i.created[:16].replace("T", " "),  # minutes are enough on screen; --json has all
            i.validity or "-",
            i.predecessor or "-",
            (i.statement_sha256 or "missing")[:12],
        )
    console.print(table)


@versions_app.command("approve")
@handle_errors
def approve_cmd(
    version: str = typer.Argument(..., help="J/P/VERSION_ID, J/P/latest or a version directory"),
    actor: str = typer.Option(..., "--actor", "-a", help="Approving compliance officer."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve a valid, verified version as its chain's current one (four eyes; audited)."""
    from engine.actors import acting
    from engine.approval import approve_version

    ws = open_workspace(workspace)
    with acting(ws, actor, "approve_version", version=version):
        approval = approve_version(ws, version, actor)
    reports: list[Any] = []
    if approval.purpose == "kyc_aml":
        # Routine KYC changes wait for approval: deliver the approved version's delta now.
        from datetime import UTC, datetime

        from engine.kyc.delivery import sync

        reports = sync(
            ws, approval.jurisdiction, actor, "version_approved", datetime.now(UTC).date()
        )
    if as_json:
        emit_json({**approval.to_json(), "deliveries": [r.to_json() for r in reports]})
    else:
        console.print(
            f"{approval.jurisdiction}/{approval.purpose}/{approval.version_id} is now current "
            f"(approved by {approval.approved_by}, statement {approval.statement_sha256[:12]})"
        )
        from engine.cli.kyc_cmd import print_deliveries

        print_deliveries(reports)
    from engine.kyc.delivery import raise_if_dead_lettered

    raise_if_dead_lettered(reports)


@versions_app.command("restore-config")
@handle_errors
def restore_config_cmd(
    version: str = typer.Argument(..., help="J/P/VERSION_ID, J/P/latest or a version directory"),
    out: Path = typer.Option(..., "--out", help="Directory to write pgov.toml and bundle/ into."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write out the exact pgov.toml and policy bundle a version ran with (for replay)."""
    import json

    from engine.replay import restore
    from engine.versions import resolve_version

    ws = open_workspace(workspace)
    vdir = resolve_version(ws, version)
    paths = restore(ws, json.loads((vdir / "manifest.json").read_bytes()), out)
    if as_json:
        emit_json(paths)
        return
    console.print(
        f"pgov.toml -> {paths['config']}\nbundle    -> {paths['bundle']} (digest checked)",
        highlight=False,
    )


@versions_app.command("recover")
@handle_errors
def recover_cmd(
    actor: str = typer.Option(..., "--actor", "-a", help="Who runs the repair (audited)."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Finish or roll back publishes a crash interrupted (a refresh of a chain does this for
    its own chain first; this does every chain whose lock is free)."""
    from engine.locks import refresh_lock
    from engine.publish import recover_chain

    ws = open_workspace(workspace)
    root = ws.versions_root
    chains = sorted(d for d in root.glob("*/*") if d.is_dir()) if root.is_dir() else []
    repairs: list[str] = []
    from engine.actors import acting

    with acting(ws, actor, "recover"):
        for chain in chains:
            j, p = chain.parent.name, chain.name
            if j.startswith(".") or p.startswith("."):
                continue
            with refresh_lock(ws, j, p, 0.0, actor=actor):
                repairs.extend(recover_chain(ws, j, p, actor))
    if as_json:
        emit_json({"repairs": repairs})
        return
    for line in repairs:
        console.print(line, highlight=False)
    console.print(f"{len(repairs)} repair(s) across {len(chains)} chain(s)", highlight=False)


@versions_app.command("current")
@handle_errors
def current_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j"),
    purpose: str = typer.Option(..., "--purpose", "-p"),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show the approved current version, checked against the audit log and the statement."""
    from engine.approval import current_version

    ws = open_workspace(workspace)
    _known_jurisdiction(ws.config.jurisdictions, jurisdiction)
    approval = current_version(ws, jurisdiction, purpose)
    if as_json:
        emit_json(approval.to_json() if approval else None)
        return
    if approval is None:
        console.print(f"{jurisdiction}/{purpose}: no version approved yet")
        return
    console.print(
        f"{jurisdiction}/{purpose}: current {approval.version_id}, approved by "
        f"{approval.approved_by} at {approval.approved_at} (checked against the audit log)"
    )


@versions_app.command("check")
@handle_errors
def check_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j"),
    purpose: str = typer.Option(..., "--purpose", "-p"),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check a chain: contiguous ids, each version naming its predecessor's statement digest."""
    from engine.versions import check_chain, list_versions

    ws = open_workspace(workspace)
    _known_jurisdiction(ws.config.jurisdictions, jurisdiction)
    problems = check_chain(ws, jurisdiction, purpose)
    count = len(list_versions(ws, jurisdiction, purpose))
    if as_json:
        emit_json({"chain": f"{jurisdiction}/{purpose}", "versions": count, "problems": problems})
        if problems:
            raise typer.Exit(int(ExitCode.VERIFICATION_FAILED))
        return
    if problems:
        for line in problems:
            console.print(f"[red]-[/] {line}", highlight=False)
        raise VerificationFailed(
            f"{jurisdiction}/{purpose}: chain broken ({len(problems)} problem(s) above)"
        )
    console.print(f"{jurisdiction}/{purpose}: chain of {count} version(s) intact")


@versions_app.command("resolve")
@handle_errors
def resolve_cmd(
    ref: str = typer.Argument(..., help="J/P/VERSION, J/P/latest, or a version directory."),
    workspace: Path = WorkspaceOpt,
) -> None:
    """Print the directory a version reference names."""
    from engine.versions import resolve_version

    ws = open_workspace(workspace)
    typer.echo(str(resolve_version(ws, ref)))


cluster_app = typer.Typer(
    help="Dask clusters for the scale-out executor (demo and test helpers).", no_args_is_help=True
)


@cluster_app.command("local")
@handle_errors
def cluster_local(
    regions: str = typer.Option("EU,UK,US,SG,BR", "--regions", help="Comma-separated regions."),
    workers_per_region: int = typer.Option(1, "--workers-per-region", min=0),
    port: int = typer.Option(8786, "--port", help="Scheduler port on 127.0.0.1 (0 = any)."),
    processes: bool = typer.Option(
        True, "--processes/--threads", help="Workers as processes (default) or threads."
    ),
    duration: float = typer.Option(
        0.0, "--duration", help="Stop after this many seconds (0 = until Ctrl-C)."
    ),
) -> None:
    """Start a local Dask cluster whose workers advertise region-<R> resources.

    Prints the scheduler address; pass it to `pgov refresh --all-jurisdictions --executor
    dask --scheduler ADDR`. Binds to 127.0.0.1 only.
    """
    import time

    from engine.executors.cluster import region_cluster

    names = [r.strip().upper() for r in regions.split(",") if r.strip()]
    if not names:
        raise UsageError("--regions needs at least one region, e.g. EU,UK,US")
    with region_cluster(names, workers_per_region, processes=processes, port=port) as cluster:
        # The first stdout line is the address alone, so scripts can read it.
        typer.echo(cluster.scheduler_address)
        sys.stdout.flush()
        console.print(
            f"regions {', '.join(names)} x {workers_per_region} worker(s); Ctrl-C to stop",
            highlight=False,
        )
        deadline = time.monotonic() + duration if duration > 0 else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.add_typer(versions_app, name="versions")
    # Registered from here so the root app needs no edit: `pgov cluster local`.
    app.add_typer(cluster_app, name="cluster")
