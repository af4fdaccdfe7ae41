"""`pgov refresh`, `pgov demo`, `pgov version`."""

from __future__ import annotations

import functools
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from engine import __version__
from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    handle_errors,
    open_workspace,
    progress,
)
from engine.config import Purpose
from engine.errors import ExitCode, PgovError, UsageError, most_severe
from engine.request import RefreshRequest


def version() -> None:
    """Print the personagov version."""
    typer.echo(__version__)


def _verified(ws: Any, version_dir: Path) -> bool:
    """Verify what was just published, as an auditor would: signature, subject digests,
    inputs, bundle digest and the version's entry in the audit log.

    An input file whose exact state (device, inode, size, mtime, ctime) is the one this
    process took its digest of moments ago is not read again (4.3 GB at 10M, seconds): the
    digest taken is compared with the signed one, which is what the refresh itself trusts
    (engine/source_files.py). A file changed since is hashed in full; `pgov lineage verify`
    always hashes in full."""
    from engine.source_files import file_digest
    from lineage.auditlog import AuditLog
    from lineage.signing import TrustStore
    from lineage.statement import verify_version

    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    report = verify_version(
        version_dir,
        trust,
        workspace_root=ws.root,
        audit=AuditLog(ws.audit_dir),
        input_sha256=file_digest,
    )
    return bool(report.ok)


def _summary(result: Any) -> dict[str, Any]:
    subjects = result.accounting.get(result.subjects)
    return {
        "jurisdiction": result.request.jurisdiction,
        "purpose": result.request.purpose.value,
        "version_id": result.version.version_id,
        "path": str(result.version.path),
        "validity": "valid" if result.valid else "invalid",
        "customers_in": subjects.input_rows if subjects else 0,
        "kept": subjects.kept if subjects else 0,
        "excluded": subjects.excluded if subjects else 0,
        "quarantined": subjects.quarantined if subjects else 0,
        # Rows of each source in no declared jurisdiction (null, "EU-DE ", "eu-de"): no
        # refresh reads them, every refresh reports them.
        "unscoped_rows": result.manifest.get("unscoped_rows", {}),
        "personas": result.personas,
        "tiers": result.tiers,
        "delivered": result.delivered,
        "dead_lettered": result.dead_lettered,
        "deliveries": result.deliveries,
        "approved_by": result.approved_by,
        "statement_sha256": result.version.statement_sha256,
        "seconds": result.seconds,
    }


@handle_errors
def refresh(
    jurisdiction: str = typer.Option(
        None, "--jurisdiction", "-j", help="Jurisdiction to refresh (e.g. EU-DE)."
    ),
    purpose: Purpose = typer.Option(..., "--purpose", "-p", help="Processing purpose."),
    actor: str = typer.Option(..., "--actor", "-a", help="Actor id declared in pgov.toml."),
    all_jurisdictions: bool = typer.Option(
        False, "--all-jurisdictions", help="Refresh every declared jurisdiction."
    ),
    executor: str = typer.Option(
        "sequential", "--executor", help="sequential | local (process pool) | dask"
    ),
    scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler address."),
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="local executor: at most this many jobs at once (0 = one per core); each job is "
        "a fresh process holding one jurisdiction's refresh.",
    ),
    memory_budget: str = typer.Option(
        None,
        "--memory-budget",
        help="local executor: start a job only while the running jobs' estimated peaks fit "
        "in this much memory (e.g. 10G; default $PGOV_MEMORY_BUDGET, else 80% of the "
        "memory available). Estimates come from each job's last measured peak.",
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Per-jurisdiction timeout (s)."),
    as_of: str = typer.Option(None, "--as-of", help="Refresh date (ISO); default today."),
    seed: int = typer.Option(7, "--seed", help="Seed for sampling and clustering."),
    wait: float = typer.Option(
        0.0, "--wait", help="Seconds to wait for another refresh of the same chain to finish."
    ),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run a governed, jurisdiction-scoped refresh and publish a signed persona version."""
    from engine.actors import acting, authenticate, under_request
    from engine.heap import held

    with held():  # the whole pipeline's modules: they live until exit (engine/heap.py)
        from engine.refresh import run_refresh

    ws = open_workspace(workspace)
    day = date.fromisoformat(as_of) if as_of else date.today()
    if all_jurisdictions == bool(jurisdiction):
        raise UsageError("give exactly one of --jurisdiction J or --all-jurisdictions")
    if not all_jurisdictions:
        if jurisdiction not in ws.config.jurisdictions:
            raise UsageError(
                f"unknown jurisdiction '{jurisdiction}'; declared: "
                + ", ".join(ws.config.jurisdictions)
            )
        request = RefreshRequest(
            actor=actor, jurisdiction=jurisdiction, purpose=purpose, as_of=day, seed=seed
        )
        with progress(f"refresh {jurisdiction}/{purpose.value}") as hook:
            with acting(ws, actor, "refresh", jurisdiction=jurisdiction, purpose=purpose.value):
                result = run_refresh(ws, request, wait_seconds=wait, progress=hook)
            hook.describe("verifying the published version")
            summary = _summary(result)
            summary["verified"] = _verified(ws, result.version.path)
        if as_json:
            emit_json(summary)
        else:
            _print_summaries([summary])
            _print_deliveries(summary)
        codes = [
            0 if summary["verified"] else int(ExitCode.VERIFICATION_FAILED),
            int(ExitCode.DELIVERY) if result.dead_lettered else 0,
            0 if result.valid else int(ExitCode.GATE_FAILED),
        ]
        code = most_severe(codes)
        if code:
            raise typer.Exit(code)
        return

    from engine.executor import run_all

    rid = authenticate(ws, actor, "refresh", {"jurisdictions": "all", "purpose": purpose.value})
    # Every job (in this process, a pool process or a Dask worker) writes its entries under
    # this one signed request: the request names all jurisdictions, each job one of them.
    requests = [
        RefreshRequest(
            actor=actor,
            jurisdiction=j,
            purpose=purpose,
            as_of=day,
            seed=seed,
            signed_request=rid,
        )
        for j in ws.config.jurisdictions
    ]
    with progress(f"refresh {purpose.value}, {len(requests)} jurisdictions ({executor})") as hook:
        # In-process jobs report each stage; pool and Dask jobs run elsewhere, so the display
        # shows the fan-out with its elapsed time and the table below has each job's seconds.
        refresh_fn = (
            functools.partial(run_refresh, progress=hook) if executor == "sequential" else None
        )
        hook.describe(f"{len(requests)} jurisdiction refreshes on the {executor} executor")
        with under_request(rid):  # the placement entries written here too
            outcomes = run_all(
                ws.root,
                requests,
                executor,  # type: ignore[arg-type]
                scheduler,
                timeout,
                refresh_fn,
                max_workers=workers or None,
                memory_budget=memory_budget,
            )
    rows = [
        {
            "jurisdiction": o.jurisdiction,
            "region": o.region,
            "ok": o.ok,
            "version_id": (o.manifest or {}).get("version_id"),
            "validity": (o.manifest or {}).get("validity"),
            "worker": o.worker,
            "seconds": round(o.seconds, 2),
            "exit_code": o.exit_code,
            "dead_lettered": o.dead_lettered,
            "error": o.error,
        }
        for o in outcomes
    ]
    if as_json:
        emit_json(rows)
    else:
        table = Table(title=f"{purpose.value} refresh, all jurisdictions ({executor})")
        for col in rows[0] if rows else ():
            table.add_column(col)
        for r in rows:
            table.add_row(*("" if r[c] is None else str(r[c]) for c in r))
        console.print(table)
    # The most severe job decides (README: exit codes, order of severity).
    code = most_severe([o.exit_code for o in outcomes])
    if code:
        raise typer.Exit(code)


def _print_deliveries(summary: dict[str, Any]) -> None:
    if summary.get("approved_by"):
        console.print(f"approved as current by {summary['approved_by']}", highlight=False)
    for d in summary.get("deliveries") or []:
        for s in d["sinks"]:
            line = (
                f"{d['version_id']} ({d['basis']}) -> {s['sink']}: delivered {s['delivered']}, "
                f"already there {s['skipped']}, dead-lettered {s['dead_lettered']}"
            )
            console.print(f"[bold red]{line}[/]" if s["dead_lettered"] else line, highlight=False)
    if summary.get("dead_lettered"):
        console.print(
            f"[bold red]delivery failed[/]: {summary['dead_lettered']} item(s) dead-lettered; "
            "fix the receiver, then run 'pgov kyc deliver' (exit 10)",
            highlight=False,
        )


_PURPOSE_SHORT = {
    "marketing_segmentation": "marketing",
    "credit_risk_segmentation": "credit",
    "kyc_aml": "kyc_aml",
}
_TIER_SHORT = {"SDD": "S", "CDD": "C", "EDD": "E", "EDD_SENIOR": "ES", "PROHIBITED": "P"}


def _print_summaries(summaries: list[dict[str, Any]]) -> None:
    # Fits 80 columns without cutting an id: the chain takes two lines, no vertical rules,
    # one space between columns; full values are in --json.
    table = Table(
        title="persona versions published",
        caption=_CAPTION,
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    table.add_column("chain", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("valid")
    for col in ("in", "kept", "excl", "quar"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("pers", justify="right")
    table.add_column("tiers\nS/C/E/ES/P", no_wrap=True)
    table.add_column("lineage", no_wrap=True)
    for s in summaries:
        tiers = "/".join(str(s["tiers"].get(t, 0)) for t in _TIER_SHORT) if s["tiers"] else "-"
        verified = s.get("verified")
        table.add_row(
            f"{s['jurisdiction']}\n{_PURPOSE_SHORT.get(s['purpose'], s['purpose'])}",
            s["version_id"],
            "yes" if s["validity"] == "valid" else "[yellow]no[/]",
            str(s["customers_in"]),
            str(s["kept"]),
            str(s["excluded"]),
            str(s["quarantined"]),
            str(s["personas"]),
            tiers,
            "-" if verified is None else ("verified" if verified else "[red]FAILED[/]"),
        )
    console.print(table)
    unscoped = {k: v for s in summaries for k, v in (s.get("unscoped_rows") or {}).items() if v}
    if unscoped:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(unscoped.items()))
        console.print(
            f"[yellow]rows in no declared jurisdiction (read by no refresh): {listed}[/]; "
            "see 'pgov validate'",
            highlight=False,
        )


_CAPTION = (
    "in = customers of the jurisdiction read; kept + excl + quar = in. "
    "valid = all validation gates passed."
)


# Who runs which refresh in the demo: regional analysts build marketing personas for their
# own jurisdictions; the compliance lead runs the KYC/AML refresh (legal obligation).
def _demo_plan(ws: Any) -> list[tuple[str, Purpose, str]]:
    plan: list[tuple[str, Purpose, str]] = []
    for j in ws.config.jurisdictions:
        analyst = next(
            (
                a
                for a, spec in ws.config.actors.items()
                if "regional_analyst" in [r.value for r in spec.roles] and j in spec.jurisdictions
            ),
            None,
        )
        if analyst:
            plan.append((j, Purpose.MARKETING, analyst))
        plan.append((j, Purpose.KYC_AML, "compliance-lead"))
    return plan


@handle_errors
def demo(
    workspace: Path = typer.Option(
        None, "--workspace", "-w", help="Workspace to create (default: a new temp directory)."
    ),
    customers: int = typer.Option(50_000, "--customers", help="Customers to generate."),
    seed: int = typer.Option(7, "--seed"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a workspace with sample data, refresh every jurisdiction, verify, summarise."""
    from engine.heap import held
    from engine.pseudonym.lifecycle import init_keys

    with held():  # the whole pipeline's modules: they live until exit (engine/heap.py)
        from engine.refresh import run_refresh
    from engine.sample import generate
    from engine.sample.workspace import init_workspace

    root = workspace or Path(tempfile.mkdtemp(prefix="pgov-demo-"))
    console.print(f"[bold]personagov demo[/] in {root}")
    init_workspace(root, "parquet")
    ws = open_workspace(root)
    init_keys(ws)
    from engine.actors import acting  # init_keys enrolled every declared actor

    console.print("keys: master pseudonymisation key and Ed25519 signing key created")
    as_of = date(2026, 11, 1)
    with progress("demo: sample data") as hook:
        summary = generate(
            customers, seed, ws.data_dir, "parquet", as_of=as_of, progress=hook.describe
        )
    console.print(
        f"sample: {customers} customers across {len(ws.config.jurisdictions)} "
        f"jurisdictions written to {ws.data_dir}"
    )
    del summary
    results: list[dict[str, Any]] = []
    plan = _demo_plan(ws)
    with progress(f"demo: {len(plan)} refreshes") as hook:
        for j, purpose, actor in plan:
            req = RefreshRequest(
                actor=actor, jurisdiction=j, purpose=purpose, as_of=as_of, seed=seed
            )
            try:
                with acting(ws, actor, "refresh", jurisdiction=j, purpose=purpose.value):
                    res = run_refresh(ws, req, progress=hook)
            except PgovError as exc:
                results.append({"jurisdiction": j, "purpose": purpose.value, "error": exc.message})
                continue
            s = _summary(res)
            s["verified"] = _verified(ws, res.version.path)
            results.append(s)
    if as_json:
        emit_json(results)
    else:
        _print_summaries([r for r in results if "error" not in r])
        for r in results:
            if "error" in r:
                console.print(f"[red]{r['jurisdiction']} {r['purpose']}: {r['error']}[/]")
        verified = sum(1 for r in results if r.get("verified"))
        console.print(f"signed lineage verified for {verified}/{len(results)} versions")
        console.print(f"next: pgov lineage verify --all -w {root}")
    if any("error" in r or not r.get("verified") for r in results):
        raise typer.Exit(int(ExitCode.VERIFICATION_FAILED))


def register(app: typer.Typer) -> None:
    app.command("version")(version)
    app.command("refresh")(refresh)
    app.command("demo")(demo)
