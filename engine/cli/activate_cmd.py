"""`pgov activate VERSION --destination NAME`: persona audiences to a declared destination."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.errors import UsageError


@handle_errors
def activate_cmd(
    version: str = typer.Argument(..., help="J/P/VERSION_ID, J/P/current or J/P/latest."),
    destination: str = typer.Option(..., "--destination", "-d", help="Declared destination."),
    actor: str = typer.Option(..., "--actor", "-a", help="Actor id declared in pgov.toml."),
    as_of: str = typer.Option(None, "--as-of", help="Date consent is re-checked as of."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Deliver each persona's audience (tokens, profile, content key) once, if policy allows."""
    from engine.activation.deliver import activate
    from engine.cli._common import open_workspace

    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise UsageError(f"--as-of '{as_of}' is not an ISO date (YYYY-MM-DD)") from None
    from engine.actors import acting

    ws = open_workspace(workspace)
    # Sending customers' tokens out is a governed request: signed by the actor, logged.
    with acting(ws, actor, "activate", version=version, destination=destination):
        report = activate(ws, version, destination, actor, day)
    if as_json:
        emit_json(report.to_json())
        return
    v = report.version
    total = sum(report.audience.values())
    console.print(
        f"activation {report.activation_id[:12]}: {v['jurisdiction']}/{v['purpose']}/"
        f"{v['version_id']} -> {destination}: {total} customers in {len(report.audience)} "
        f"persona(s); {len(report.delivered)} sent, {len(report.skipped)} already delivered; "
        f"{report.removed_by_recheck} removed by today's consent re-check "
        f"({report.channel_suppressed} for the channel)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("activate")(activate_cmd)
