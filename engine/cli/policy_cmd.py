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


def _print_reasons(title: str, entries: list[Any]) -> None:
    if not entries:
        return
    t = Table(title=title)
    for h in ("code", "regime", "article", "meaning"):
        t.add_column(h)
    for e in entries:
        t.add_row(e.code, e.regime, e.article, e.text)
    console.print(t)


def _print_roles(needs: list[Any]) -> None:
    t = Table(title="Privacy roles the rules need here")
    for h in ("rule", "role", "provided by"):
        t.add_column(h)
    for n in needs:
        have = n.provided_by or "[red]MISSING[/]"
        t.add_row(n.rule, n.role.replace("|", " or "), have)
    if not needs:
        console.print("Privacy roles the rules need here: none")
    else:
        console.print(t)


def _parse_resource(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--resource takes KEY=VALUE, got '{item}'")
        out[key] = value
    return out


def _explain_action(
    ws: Any, actor: str, action: str, jurisdiction: str | None, resource: list[str], json_out: bool
) -> None:
    """authz for one action (reidentify, approve_version, kyc_read, rotate_keys, ...)."""
    from engine.policy.catalogue import explain
    from engine.policy.decide import AUTHZ_PATH, _actor_doc, _allow_and_reasons, engine_for
    from engine.policy.engines import PolicyEngine

    res = _parse_resource(resource)
    if jurisdiction:
        res.setdefault("jurisdiction", jurisdiction)
    actor_doc = _actor_doc(ws, actor)
    engine: PolicyEngine = engine_for(ws)
    bundle = _bundle_of(ws, engine)
    if actor_doc is None:
        allow, deny = False, ["access.unknown_actor"]
        doc: dict[str, Any] = {}
    else:
        doc = {"actor": actor_doc, "action": action, "resource": res}
        allow, deny = _allow_and_reasons(engine.query(AUTHZ_PATH, doc))
    reasons = [e.to_json() for e in explain(bundle, deny)]
    if json_out:
        emit_json(
            {"action": action, "actor": actor, "resource": res, "allow": allow, "reasons": reasons}
        )
    else:
        verdict = "[green]ALLOW[/]" if allow else "[red]DENY[/]"
        console.print(f"[bold]{action}[/] by [bold]{actor}[/] on {res or '{}'}: {verdict}")
        _print_reasons("Why", explain(bundle, deny))
    if not allow:
        raise PolicyDenied(f"denied: {', '.join(deny)}", reasons=deny)


def _bundle_of(ws: Any, engine: Any) -> Any:
    from engine.policy.decide import _bundle_for

    return _bundle_for(ws, engine)


def _write_json_file(path: Path, doc: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@policy_app.command("explain")
@handle_errors
def explain_cmd(
    jurisdiction: str = typer.Option(None, "--jurisdiction", "-j"),
    purpose: str = typer.Option(None, "--purpose", "-p"),
    actor: str = typer.Option(..., "--actor", "-a"),
    as_of: str = typer.Option(None, "--as-of", help="YYYY-MM-DD (default: today)."),
    action: str = typer.Option(
        "refresh",
        "--action",
        help="refresh (default) or a single action: reidentify, approve_version, kyc_read, "
        "kyc_override, kyc_approve, verify, read_audit, rotate_keys, ...",
    ),
    resource: list[str] = typer.Option(
        [], "--resource", help="KEY=VALUE of the action's resource (e.g. domain=kyc)."
    ),
    input_out: Path = typer.Option(
        None, "--input-out", help="Write the exact decision input document here (replay)."
    ),
    workspace: Path = WorkspaceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Print a decision and why: column actions, row exclusions, obligations, the privacy
    roles its rules need, and each reason's regime, article and meaning."""
    from engine.cli._common import open_workspace
    from engine.logs import ensure_logging
    from engine.policy.catalogue import explain
    from engine.policy.decide import build_input, engine_for, evaluate
    from engine.policy.requirements import role_needs
    from engine.request import RefreshRequest

    ws = open_workspace(workspace)
    ensure_logging(ws)  # redacting stderr logs; stdout stays clean for --json
    if action != "refresh":
        _explain_action(ws, actor, action, jurisdiction, resource, json_out)
        return
    if not jurisdiction or not purpose:
        raise UsageError("explaining a refresh needs --jurisdiction and --purpose")
    try:
        p = Purpose(purpose)
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise UsageError(
            f"--purpose must be one of {', '.join(x.value for x in Purpose)}; "
            "--as-of must be YYYY-MM-DD"
        ) from None
    request = RefreshRequest(actor=actor, jurisdiction=jurisdiction, purpose=p, as_of=day)
    if input_out is not None:
        _write_json_file(input_out, build_input(ws, request))
    engine = engine_for(ws)
    plan = evaluate(ws, request, engine)
    bundle = _bundle_of(ws, engine)
    needs = role_needs(ws, request, engine)
    doc = plan.document()
    doc["plan_digest"] = plan.digest()
    codes = _codes_of(doc)
    if json_out:
        doc["roles_needed"] = [n.to_json() for n in needs]
        doc["reasons"] = [e.to_json() for e in explain(bundle, codes)]
        emit_json(doc)
    else:
        _print_plan(doc)
        _print_roles(needs)
        _print_reasons("Reasons", explain(bundle, codes))
        if input_out is not None:
            console.print(f"decision input written to {input_out}", highlight=False)
    if not plan.allowed:
        raise PolicyDenied("denied: " + ", ".join(plan.deny_reasons), reasons=plan.deny_reasons)


def _codes_of(doc: dict[str, Any]) -> list[str]:
    """Every reason code in a plan document, deny reasons first, each once."""
    codes: list[str] = list(doc["deny_reasons"])
    codes += [r["reason"] for r in doc["subject_exclusions"]]
    for sp in doc["sources"].values():
        codes += [r["reason"] for r in sp["row_rules"]]
        codes += [n["reason"] for n in sp["nullings"]]
        codes += [a["reason"] for a in sp["columns"].values()]
    codes += list(doc["obligations"])
    return list(dict.fromkeys(c for c in codes if c))


@policy_app.command("eval")
@handle_errors
def eval_cmd(
    input_path: Path = typer.Option(..., "--input", "-i", help="A decision input document."),
    query: str = typer.Option(
        "data.personagov.decision.decision", "--query", "-q", help="The document to evaluate."
    ),
    workspace: Path = WorkspaceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Evaluate a recorded decision input (from `explain --input-out` or a version's
    decision_input.json) with this workspace's engine and bundle: a replay."""
    import json

    from engine.cli._common import open_workspace
    from engine.errors import BadInputError
    from engine.logs import ensure_logging
    from engine.policy.replay import replay

    ws = open_workspace(workspace)
    ensure_logging(ws)
    try:
        doc = json.loads(input_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{input_path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{input_path}: not a JSON document ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise BadInputError(f"{input_path}: the input document must be a JSON object")
    out = replay(ws, doc, query)
    if json_out:
        emit_json(out)
    else:
        console.print_json(data=out)
    result = out.get("result")
    if isinstance(result, dict) and result.get("allow") is False:
        deny = [str(r) for r in result.get("deny", [])] or ["policy.denied_without_reason"]
        raise PolicyDenied("denied: " + ", ".join(deny), reasons=deny)


@policy_app.command("keygen")
@handle_errors
def keygen_cmd(workspace: Path = WorkspaceOpt, json_out: bool = JsonOpt) -> None:
    """Create the workspace's bundle-signing key pair ([policy] signing_key and
    verification_key; EC P-256, ES256 as OPA's bundle signing uses)."""
    from engine.cli._common import open_workspace
    from engine.policy.signing import generate_key, key_id, load_public_key

    ws = open_workspace(workspace)
    cfg = ws.config.policy
    private, public = ws.path(cfg.signing_key), ws.path(cfg.verification_key)
    generate_key(private, public)
    kid = key_id(load_public_key(public))
    if json_out:
        emit_json({"signing_key": str(private), "verification_key": str(public), "keyid": kid})
    else:
        console.print(f"bundle signing key {kid}: {private} (private), {public}", highlight=False)


@policy_app.command("build")
@handle_errors
def build_cmd(
    bundle: Path = typer.Option(None, "--bundle", help="Bundle directory (default: shipped)."),
    out: Path = typer.Option(Path("bundle.tar.gz"), "--out", "-o", help="Where to write it."),
    workspace: Path = WorkspaceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Write an OPA bundle (bundle.tar.gz) signed with the workspace's bundle key
    (.signatures.json in OPA's format). Point [policy] bundle at it to decide with it."""
    from engine.cli._common import open_workspace
    from engine.policy.bundle import bundle_from_files, check_complete, default_bundle_path
    from engine.policy.signing import bundle_files, load_private_key, sign_files, write_tarball

    ws = open_workspace(workspace)
    root = bundle or default_bundle_path()
    files = bundle_files(root)
    b = bundle_from_files(root, files)
    check_complete(b)  # never sign a bundle a decision would refuse
    signatures = sign_files(files, load_private_key(ws.path(ws.config.policy.signing_key)))
    write_tarball(files, signatures, out)
    doc = {"bundle": str(out), "revision": b.revision, "digest": b.digest, "files": len(files)}
    if json_out:
        emit_json(doc)
    else:
        console.print(
            f"wrote {out}: revision {b.revision}, {len(files)} files signed, digest {b.digest}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add `pgov policy` to the root app."""
    app.add_typer(policy_app, name="policy")
