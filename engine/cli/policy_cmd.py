"""`pgov policy`: run the bundle's Rego tests, explain a decision."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.config import Purpose
from engine.errors import ExitCode, PolicyDenied, UsageError

policy_app = typer.Typer(
    help="Policy bundle: run its tests, explain decisions.", no_args_is_help=True
)


@policy_app.command("test")
@handle_errors
def test_cmd(
    bundle: Path = typer.Option(None, "--bundle", help="Bundle directory (default: shipped)."),
    run: str = typer.Option(None, "--run", "-r", help="Only tests matching this regex."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List passing tests too."),
    engine: str = typer.Option(
        "regorus", "--engine", "-e", help="regorus (embedded) or opa (real Go OPA bindings)."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Run every test_ rule in the bundle (like `opa test`), on regorus or on real OPA."""
    from engine.logs import ensure_logging
    from engine.policy.bundle import default_bundle_path, load_bundle
    from engine.policy.testing import run_tests

    ensure_logging(None)  # structlog's default prints to stdout and would corrupt --json
    b = load_bundle(bundle or default_bundle_path())
    if engine not in ("regorus", "opa"):
        raise UsageError("--engine must be 'regorus' or 'opa'")
    results = run_tests(b, run, engine)
    failed = [r for r in results if not r.passed]
    if json_out:
        emit_json(
            {
                "bundle_revision": b.revision,
                "bundle_digest": b.digest,
                "engine": engine,
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "tests": [
                    {"name": r.path, "file": r.file, "passed": r.passed, "detail": r.detail}
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            if r.passed and not verbose:
                continue
            status = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            detail = f" ({r.detail})" if r.detail else ""
            console.print(f"{r.file}: {r.path}: {status}{detail}", highlight=False, soft_wrap=True)
        console.print("-" * 80)
        console.print(f"engine: {engine}")
        if failed:
            console.print(f"PASS: {len(results) - len(failed)}/{len(results)}")
            console.print(f"FAIL: {len(failed)}/{len(results)}")
        else:
            console.print(f"PASS: {len(results)}/{len(results)}")
    if failed or not results:
        raise typer.Exit(int(ExitCode.POLICY_DENIED))


def _condition_text(cond: dict[str, Any]) -> str:
    if "all" in cond:
        return "(" + " and ".join(_condition_text(c) for c in cond["all"]) + ")"
    if "any" in cond:
        return "(" + " or ".join(_condition_text(c) for c in cond["any"]) + ")"
    if "not" in cond:
        return "not " + _condition_text(cond["not"])
    value = "" if cond["op"] in ("is_null", "not_null") else f" {cond.get('value')!r}"
    return f"{cond['field']} {cond['op']}{value}"


def _print_plan(doc: dict[str, Any]) -> None:
    head = (
        f"[bold]{doc['purpose']}[/] in [bold]{doc['jurisdiction']}[/] for actor "
        f"[bold]{doc['actor']}[/] as of {doc['as_of']}: "
    )
    verdict = "[green]ALLOW[/]" if doc["allowed"] else "[red]DENY[/]"
    console.print(head + verdict)
    console.print(
        f"bundle {doc['bundle_revision']} ({doc['bundle_digest'][:16]}…), "
        f"regime {doc['regime'] or '-'}, subject domain {doc['subject_domain']}",
        highlight=False,
    )
    if not doc["allowed"]:
        for r in doc["deny_reasons"]:
            console.print(f"  deny: {r}")
        return
    cols = Table(title="Column actions")
    for h in ("source", "column", "action", "detail", "reason", "article"):
        cols.add_column(h)
    for name, sp in sorted(doc["sources"].items()):
        for col, a in sp["columns"].items():
            detail = ""
            if a["action"] == "pseudonymise":
                detail = f"domain={a['domain']}" + (
                    f" normaliser={a['normaliser']}" if a.get("normaliser") else ""
                )
            elif a["action"] == "generalise":
                detail = f"{a['method']} -> {a.get('output') or col}"
            cols.add_row(name, col, a["action"], detail, a["reason"], a["article"])
    console.print(cols)
    rows = Table(title="Row exclusions")
    for h in ("scope", "reason", "article", "condition"):
        rows.add_column(h)
    for r in doc["subject_exclusions"]:
        rows.add_row(
            "subject (all sources)", r["reason"], r["article"], _condition_text(r["condition"])
        )
    for name, sp in sorted(doc["sources"].items()):
        for r in sp["row_rules"]:
            rows.add_row(name, r["reason"], r["article"], _condition_text(r["condition"]))
    console.print(rows)
    nulls = [(n, sp) for n, sp in sorted(doc["sources"].items()) if sp["nullings"]]
    if nulls:
        t = Table(title="Per-customer column nulling")
        for h in ("source", "columns", "reason", "article", "condition"):
            t.add_column(h)
        for name, sp in nulls:
            for n in sp["nullings"]:
                t.add_row(
                    name,
                    ", ".join(n["columns"]),
                    n["reason"],
                    n["article"],
                    _condition_text(n["condition"]),
                )
        console.print(t)
    console.print("Obligations: " + (", ".join(doc["obligations"]) or "none"), highlight=False)
    console.print(f"k-anonymity minimum: {doc['k_anonymity_min']}")
    if doc.get("kyc_ruleset") is not None:
        console.print(f"KYC ruleset: {len(doc['kyc_ruleset'])} top-level entries (opaque)")


@policy_app.command("explain")
@handle_errors
def explain_cmd(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j"),
    purpose: str = typer.Option(..., "--purpose", "-p"),
    actor: str = typer.Option(..., "--actor", "-a"),
    as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD (default: today)."),
    workspace: Path = WorkspaceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Print the decision for one refresh: column actions, row exclusions, obligations."""
    from engine.cli._common import open_workspace
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
    from engine.logs import ensure_logging

    ws = open_workspace(workspace)
    ensure_logging(ws)  # redacting stderr logs; stdout stays clean for --json
    plan = evaluate(
        ws, RefreshRequest(actor=actor, jurisdiction=jurisdiction, purpose=p, as_of=day)
    )
    doc = plan.document()
    doc["plan_digest"] = plan.digest()
    if json_out:
        emit_json(doc)
    else:
        _print_plan(doc)
    if not plan.allowed:
        raise PolicyDenied("denied: " + ", ".join(plan.deny_reasons), reasons=plan.deny_reasons)


def register(app: typer.Typer) -> None:
    """Add `pgov policy` to the root app."""
    app.add_typer(policy_app, name="policy")
