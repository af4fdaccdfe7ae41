"""`pgov kyc ...`: the KYC operations view, re-delivery and the ruleset (overrides with
four-eyes approval are in kyc_override_cmd.py, on the same sub-app).

Customers appear only as kyc-domain tokens. To see who a token is, an authorised actor uses
`pgov reidentify` (the kyc-domain control, audited).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
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
)
from engine.errors import UsageError
from engine.workspace import Workspace

kyc_app = typer.Typer(
    name="kyc",
    help="KYC risk tiers: queues, customer view, overrides (four eyes), re-delivery.",
    no_args_is_help=True,
)

JurisdictionOpt = typer.Option(None, "--jurisdiction", "-j", help="Only this jurisdiction.")
ReaderOpt = typer.Option(
    ..., "--actor", help="Who is reading (policy decides per jurisdiction; audited)."
)
VersionOpt = typer.Option(
    None,
    "--version",
    help="'current' (default: the approved version), 'latest', v0003 or a full reference "
    "EU-DE/kyc_aml/v0003.",
)


def _open(workspace: Path) -> Workspace:
    from engine.logs import ensure_logging

    ws = open_workspace(workspace)
    # structlog's unconfigured default writes to stdout and would corrupt --json output.
    ensure_logging(ws)
    return ws


def _today() -> date:
    return datetime.now(UTC).date()


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}


_SORTS = {
    "sla": "SLA due date, then score",
    "score": "score (highest first), then SLA due date",
    "tier": "tier (highest first), then SLA due date",
}
_TIER_RANK = {"PROHIBITED": 0, "EDD_SENIOR": 1, "EDD": 2, "CDD": 3, "SDD": 4}


def _sorted(items: Any, sort: str) -> Any:
    """A total order: the token is the last key, so equal items never come out shuffled."""
    import polars as pl

    rank = pl.col("tier").replace_strict(_TIER_RANK, default=9, return_dtype=pl.Int64)
    keys = {
        "sla": [pl.col("sla_due"), -pl.col("score"), rank],
        "score": [-pl.col("score"), pl.col("sla_due"), rank],
        "tier": [rank, pl.col("sla_due"), -pl.col("score")],
    }[sort]
    return items.sort([*keys, pl.col("customer_id")], nulls_last=True)


@kyc_app.command("queue")
@handle_errors
def queue_cmd(
    queue: str = typer.Argument(..., help="Queue name, e.g. edd-review."),
    jurisdiction: str | None = JurisdictionOpt,
    version: str | None = VersionOpt,
    actor: str = ReaderOpt,
    limit: int = typer.Option(0, "--limit", min=0, help="Show at most N items (0 = all)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the first N items (paging)."),
    sort: str = typer.Option(
        "sla", "--sort", help="sla (earliest due first), score (highest first) or tier."
    ),
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """List a queue's items, most urgent first; shows the queue's total and pages."""
    from engine.actors import acting
    from engine.audit import record
    from engine.kyc.versions import queue_items

    if sort not in _SORTS:
        raise UsageError(f"--sort must be one of {', '.join(_SORTS)}, not '{sort}'")
    ws = _open(workspace)
    # Reading customers is a governed request like any other: signed, checked, logged.
    with acting(ws, actor, "kyc_queue", queue=queue, jurisdiction=jurisdiction, version=version):
        items = _sorted(queue_items(ws, queue, _today(), actor, jurisdiction, version), sort)
        total = items.height
        items = items.slice(offset, limit if limit > 0 else None)
        record(
            ws,
            "kyc_queue_viewed",
            actor,
            queue=queue,
            jurisdictions=sorted(set(items["jurisdiction"]))
            if "jurisdiction" in items.columns
            else [],
            items=items.height,
            total=total,
        )
    cols = [
        "customer_id",
        "jurisdiction",
        "version",
        "tier",
        "computed_tier",
        "system_tier",
        "score",
        "reasons",
        "sla_due",
        "review_due",
        "tier_change",
        "override_id",
    ]
    rows = [_row_json(r) for r in items.select([c for c in cols if c in items.columns]).to_dicts()]
    if as_json:
        emit_json(
            {
                "queue": queue,
                "count": len(rows),
                "total": total,
                "offset": offset,
                "sort": sort,
                "items": rows,
            }
        )
        return
    # One block per item rather than a table: reasons stay readable on a narrow terminal.
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "none"
    console.print(
        f"[bold]{queue}[/]: {total} item(s) in the queue, showing {shown}, "
        f"sorted by {_SORTS[sort]}",
        highlight=False,
    )
    for r in rows:
        tier = f"{r['tier']} (override {r['override_id']})" if r.get("override_id") else r["tier"]
        console.print(
            f"{r['customer_id']}  {r.get('jurisdiction') or ''}  [bold]{tier}[/]  "
            f"computed {r['computed_tier']}, score {r['score']}  due {r['sla_due']}  "
            f"review {r['review_due']}",
            highlight=False,
        )
        for reason in r["reasons"]:
            console.print(f"    {reason}", highlight=False, markup=False)
    console.print("Re-identify a token (authorised, audited): pgov reidentify ...", style="dim")


@kyc_app.command("show")
@handle_errors
def show_cmd(
    customer: str = typer.Option(..., "--customer", help="kyc-domain token."),
    jurisdiction: str | None = JurisdictionOpt,
    version: str | None = VersionOpt,
    actor: str = ReaderOpt,
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """One customer's tier, computed tier, reasons, queue, due dates and overrides."""
    from engine.actors import acting
    from engine.audit import record
    from engine.kyc.overrides import load_overrides
    from engine.kyc.versions import find_customer

    ws = _open(workspace)
    today = _today()
    with acting(ws, actor, "kyc_show", customer=customer, jurisdiction=jurisdiction):
        rv, row = find_customer(ws, customer, today, actor, jurisdiction, version)
        record(
            ws,
            "kyc_customer_viewed",
            actor,
            customer=customer,
            jurisdiction=rv.jurisdiction,
            version_id=rv.version_id,
        )
    overrides = [
        o.to_json(today)
        for o in load_overrides(ws, rv.jurisdiction)
        if o.request.customer == customer
    ]
    out = {
        "jurisdiction": rv.jurisdiction,
        "version": rv.version_id,
        **_row_json(row),
        "overrides": overrides,
    }
    if as_json:
        emit_json(out)
        return
    for key in (
        "customer_id",
        "jurisdiction",
        "version",
        "tier",
        "computed_tier",
        "system_tier",
        "score",
        "queue",
        "sla_due",
        "review_due",
        "tier_change",
        "out_of_cycle_review",
        "ruleset_version",
        "override_id",
    ):
        console.print(f"[bold]{key}[/]: {out.get(key)}", highlight=False)
    console.print("[bold]reasons[/]:", highlight=False)
    for reason in out.get("reasons") or []:
        console.print(f"  - {reason}", highlight=False)
    for o in overrides:
        console.print(
            f"[bold]override[/] {o['id']}: {o['from_tier']} -> {o['tier']} by {o['actor']} "
            f"({o['status']}{', approved by ' + o['approved_by'] if o['approved_by'] else ''})",
            highlight=False,
        )


@kyc_app.command("deliver")
@handle_errors
def deliver_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j"),
    actor: str = typer.Option(..., "--actor", help="Who triggers the delivery (audited)."),
    as_json: bool = JsonOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """Bring the sinks up to date: obligations of the latest version, then the current
    (approved) version's delta with active overrides. Idempotent; exit 10 on a dead letter."""
    from engine.actors import authenticate
    from engine.audit import authorize

    ws = _open(workspace)
    if jurisdiction not in ws.config.jurisdictions:
        raise UsageError(f"unknown jurisdiction '{jurisdiction}'")
    authenticate(ws, actor, "kyc_deliver", {"jurisdiction": jurisdiction})
    authorize(ws, actor, "kyc_deliver", {"jurisdiction": jurisdiction, "purpose": "kyc_aml"})
    _sync_and_report(ws, jurisdiction, actor, "kyc_deliver", as_json)


def _sync_and_report(
    ws: Workspace, jurisdiction: str, actor: str, trigger: str, as_json: bool
) -> None:
    """Run a delivery sync, print what each sink got, and fail (exit 10) on a dead letter."""
    from engine.kyc.delivery import raise_if_dead_lettered, sync

    reports = sync(ws, jurisdiction, actor, trigger, _today())
    if as_json:
        emit_json({"jurisdiction": jurisdiction, "deliveries": [r.to_json() for r in reports]})
    else:
        if not reports:
            console.print(
                f"{jurisdiction}: nothing to deliver (no approved version and no newer one)",
                highlight=False,
            )
        print_deliveries(reports)
    raise_if_dead_lettered(reports)


def print_deliveries(reports: list[Any]) -> None:
    for r in reports:
        for s in r.sinks:
            style = "[bold red]" if s.dead_lettered else ""
            end = "[/]" if s.dead_lettered else ""
            console.print(
                f"{style}{r.version_id} ({r.basis}) -> {s.sink}: delivered {s.delivered}, "
                f"already there {s.skipped}, dead-lettered {s.dead_lettered}{end}",
                highlight=False,
            )


@kyc_app.command("ruleset")
@handle_errors
def ruleset_cmd(as_json: bool = JsonOpt) -> None:
    """Show the shipped KYC ruleset (evaluated from the Rego bundle)."""
    from engine.kyc.bundle import evaluate_ruleset
    from engine.logs import ensure_logging

    ensure_logging(None)
    rs = evaluate_ruleset()
    if as_json:
        emit_json(rs.to_json())
        return
    console.print(f"[bold]ruleset[/] {rs.version}", highlight=False)
    console.print(f"thresholds: {rs.thresholds}", highlight=False)
    for f in rs.factors:
        console.print(f"  factor {f.id} [{f.family}] +{f.points} {f.reason_code}", markup=False)
    for fl in rs.floors:
        console.print(f"  floor {fl.reason_code} -> at least {fl.min_tier}", highlight=False)
    for q in rs.queues:
        console.print(f"  queue {q.queue} (SLA {q.sla_days} d)", highlight=False)
    console.print(f"review months: {rs.review_months}", highlight=False)


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: '{value}' is not a date (YYYY-MM-DD)") from None


def register(app: typer.Typer) -> None:
    """Add the `kyc` sub-app (with its override commands) to the root app."""
    from engine.cli import kyc_override_cmd  # noqa: F401  (registers override/approve/overrides)

    app.add_typer(kyc_app, name="kyc")


__all__ = ["kyc_app", "register"]
