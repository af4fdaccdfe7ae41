"""`pgov features list`: the workspace's declared features under one jurisdiction and
purpose: inputs, availability under the policy plan, and which rule removed which input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.config import Purpose
from engine.errors import UsageError

features_app = typer.Typer(
    help="Declared features: what each reads and whether the policy lets it through.",
    no_args_is_help=True,
)


def _actor_for(ws: object, jurisdiction: str, actor: str | None) -> str:
    """The actor whose view is shown: the one given, else the first declared actor assigned
    to the jurisdiction (column actions do not depend on who asks; access does)."""
    from engine.workspace import Workspace

    assert isinstance(ws, Workspace)
    if actor:
        return actor
    for name, spec in sorted(ws.config.actors.items()):
        if jurisdiction in spec.jurisdictions:
            return name
    raise UsageError(
        f"no declared actor is assigned to {jurisdiction}; pass --actor to choose whose view"
    )


@features_app.command("list")
@handle_errors
def list_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j"),
    purpose: str = typer.Option(..., "--purpose", "-p"),
    actor: str = typer.Option(None, "--actor", "-a", help="Whose view (default: an assigned one)."),
    as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD (default: today)."),
    workspace: Path = WorkspaceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Each declared feature, its inputs, and whether this jurisdiction and purpose's plan
    lets it through; if not, which policy rule removed which input."""
    from engine.cli._common import open_workspace
    from engine.features.availability import feature_statuses
    from engine.logs import ensure_logging
    from engine.policy.decide import evaluate
    from engine.request import RefreshRequest

    try:
        p = Purpose(purpose)
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise UsageError(
            f"--purpose must be one of {', '.join(x.value for x in Purpose)}; "
            "--as-of must be YYYY-MM-DD"
        ) from None
    ws = open_workspace(workspace)
    ensure_logging(ws)
    who = _actor_for(ws, jurisdiction, actor)
    plan = evaluate(ws, RefreshRequest(actor=who, jurisdiction=jurisdiction, purpose=p, as_of=day))
    statuses = feature_statuses(ws.config, plan)
    if json_out:
        emit_json(
            {
                "jurisdiction": jurisdiction,
                "purpose": p.value,
                "actor": who,
                "plan_allowed": plan.allowed,
                "deny_reasons": plan.deny_reasons,
                "features": [s.as_dict() for s in statuses],
            }
        )
        return
    table = Table(title=f"features: {jurisdiction} / {p.value} (as {who})")
    for col in ("feature", "role", "transform", "inputs", "available", "why not"):
        table.add_column(col)
    for s in statuses:
        inputs = ", ".join(i.column for i in s.inputs) or ", ".join(s.terms)
        table.add_row(s.name, s.role, s.transform, inputs, "yes" if s.available else "no", s.why)
    console.print(table)
    if not plan.allowed:
        console.print(f"note: this refresh itself is denied: {', '.join(plan.deny_reasons)}")


def register(app: typer.Typer) -> None:
    """Add `pgov features` to the root app."""
    app.add_typer(features_app, name="features")
