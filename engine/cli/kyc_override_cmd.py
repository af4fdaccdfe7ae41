"""`pgov kyc override | approve | overrides`: tier overrides with four-eyes approval.

An override is requested against a published kyc_aml version, waits for a second
compliance officer when it lowers a high tier, and is delivered to the sinks as soon as it
is active. Registered on kyc_cmd's `kyc_app`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.cli.kyc_cmd import (
    JurisdictionOpt,
    ReaderOpt,
    VersionOpt,
    _open,
    _parse_date,
    _today,
    kyc_app,
    print_deliveries,
)
from engine.errors import UsageError
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.kyc.overrides import Override


@kyc_app.command("override")
@handle_errors
def override_cmd(
    customer: str = typer.Option(..., "--customer", help="kyc-domain token."),
    tier: str = typer.Option(..., "--tier", help="SDD, CDD, EDD, EDD_SENIOR or PROHIBITED."),
    reason: str = typer.Option(..., "--reason", help="Documented reason (mandatory)."),
    actor: str = typer.Option(..., "--actor", help="Who is overriding."),
    expires: str | None = typer.Option(None, "--expires", help="YYYY-MM-DD (inclusive)."),
    jurisdiction: str | None = JurisdictionOpt,
    version: str | None = VersionOpt,
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """Override a customer's tier. A downgrade out of EDD or above waits for `approve`."""
    from engine.actors import acting

    ws = _open(workspace)
    tier = tier.upper()
    expiry = _parse_date(expires, "--expires") if expires else None
    if not reason.strip():
        raise UsageError("--reason is mandatory: an override without a documented reason is void")
    with acting(ws, actor, "kyc_override", customer=customer, tier=tier):
        ovr = _override(ws, customer, tier, reason, actor, expiry, jurisdiction, version)
    done = _delivered(ws, ovr, actor, as_json)
    if done is None:
        return
    out, reports = done
    print_deliveries(reports)
    _raise_dead(reports)
    console.print(
        f"override {ovr.id}: {out['from_tier']} -> {out['tier']} is [bold]{out['status']}[/]",
        highlight=False,
    )
    if out["status"] == "pending":
        console.print(
            f"a second person with the compliance_officer role must run: "
            f"pgov kyc approve --override {ovr.id} --actor OTHER",
            highlight=False,
        )


def _override(
    ws: Workspace,
    customer: str,
    tier: str,
    reason: str,
    actor: str,
    expiry: date | None,
    jurisdiction: str | None,
    version: str | None,
) -> Override:
    from engine.kyc.overrides import request_override
    from engine.kyc.versions import find_customer

    rv, row = find_customer(ws, customer, _today(), actor, jurisdiction, version)
    return request_override(
        ws,
        customer=customer,
        jurisdiction=rv.jurisdiction,
        from_tier=str(row.get("system_tier") or row["tier"]),
        tier=tier,
        reason=reason,
        actor=actor,
        expires=expiry,
        version=f"{rv.jurisdiction}/kyc_aml/{rv.version_id}",
    )


@kyc_app.command("approve")
@handle_errors
def approve_cmd(
    override: str = typer.Option(..., "--override", help="Override id (ovr-...)."),
    actor: str = typer.Option(..., "--actor", help="Approver: not the requester."),
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """Approve a pending override (four eyes: a different compliance officer)."""
    from engine.actors import acting
    from engine.kyc.overrides import approve_override

    ws = _open(workspace)
    with acting(ws, actor, "kyc_approve", override=override):
        ovr = approve_override(ws, override, actor)
    done = _delivered(ws, ovr, actor, as_json)
    if done is None:
        return
    out, reports = done
    console.print(f"override {ovr.id} approved by {actor}: now {out['status']}", highlight=False)
    print_deliveries(reports)
    _raise_dead(reports)


def _delivered(
    ws: Workspace, ovr: Override, actor: str, as_json: bool
) -> tuple[dict[str, Any], list[Any]] | None:
    """Deliver an override that became active; with --json print it and its deliveries and
    return None (exit 10 on a dead letter), else return them for the caller's text."""
    out = ovr.to_json(_today())
    reports = _deliver_override(ws, ovr.request.jurisdiction, actor, out["status"])
    if as_json:
        emit_json({**out, "deliveries": [r.to_json() for r in reports]})
        _raise_dead(reports)
        return None
    return out, reports


def _deliver_override(ws: Workspace, jurisdiction: str, actor: str, status: str) -> list[Any]:
    """An override that is active changes what operations work from: deliver it now."""
    from engine.kyc.delivery import sync

    if status != "active":
        return []
    return sync(ws, jurisdiction, actor, "kyc_override", _today())


def _raise_dead(reports: list[Any]) -> None:
    from engine.kyc.delivery import raise_if_dead_lettered

    raise_if_dead_lettered(reports)


@kyc_app.command("overrides")
@handle_errors
def overrides_cmd(
    jurisdiction: str | None = JurisdictionOpt,
    actor: str = ReaderOpt,
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """List overrides with their status (pending / active / expired)."""
    from engine.actors import acting
    from engine.kyc.overrides import load_overrides
    from engine.kyc.versions import authorize_read

    ws = _open(workspace)
    if jurisdiction and jurisdiction not in ws.config.jurisdictions:
        raise UsageError(f"unknown jurisdiction '{jurisdiction}'")
    scope = [jurisdiction] if jurisdiction else list(ws.config.jurisdictions)
    with acting(ws, actor, "kyc_overrides", jurisdiction=jurisdiction):
        authorize_read(ws, actor, scope)
    rows = [o.to_json(_today()) for o in load_overrides(ws, jurisdiction)]
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} override(s)")
    for head in ("id", "token", "jur.", "from", "to", "status", "by", "approved by", "expires"):
        table.add_column(head, overflow="fold")
    for r in rows:
        table.add_row(
            r["id"],
            r["customer"],
            r["jurisdiction"],
            r["from_tier"],
            r["tier"],
            r["status"],
            r["actor"],
            r["approved_by"] or "",
            r["expires"] or "",
        )
    console.print(table)
