"""`pgov experiment design|analyse|promote|show`: A/B validation of a persona version."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.errors import UsageError

experiment_app = typer.Typer(
    help="Experiments on persona versions: design, analyse, promote to validated.",
    no_args_is_help=True,
)

ActorOpt = typer.Option(..., "--actor", "-a", help="Actor id declared in pgov.toml.")


def _as_of(text: str | None) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--as-of '{text}' is not an ISO date (YYYY-MM-DD)") from None


@experiment_app.command("design")
@handle_errors
def design_cmd(
    version: str = typer.Argument(..., help="J/P/VERSION_ID (or .../latest, .../current)."),
    name: str = typer.Option(..., "--name", "-n", help="Experiment name (never reused)."),
    arms: str = typer.Option("control,treatment", "--arms", help="Arm names; first is control."),
    split: str = typer.Option("50/50", "--split", help="Percent per arm, e.g. 50/50."),
    stratify: str = typer.Option("persona", "--stratify", help="'persona' or 'none'."),
    mde: float = typer.Option(..., "--mde", help="Minimum detectable effect (absolute lift)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
    power: float = typer.Option(0.8, "--power", help="Power for the MDE."),
    correction: str = typer.Option("holm", "--correction", help="'holm' or 'bh' across personas."),
    min_lift: float = typer.Option(None, "--min-lift", help="Pooled lift needed (default: MDE)."),
    baseline: float = typer.Option(
        None, "--baseline", help="Baseline rate (default: each persona's conversion_rate KPI)."
    ),
    actor: str = ActorOpt,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Assign a version's customers to arms (keyed hash, stratified) with a power table."""
    from engine.actors import acting
    from engine.cli._common import open_workspace
    from engine.experiment.design import DesignRequest, design_experiment, parse_arms

    names, shares = parse_arms(arms, split)
    ws = open_workspace(workspace)
    with acting(ws, actor, "experiment_design", version=version, name=name):
        doc = design_experiment(
            ws,
            DesignRequest(
                version=version,
                name=name,
                arms=names,
                split=shares,
                stratify=stratify,
                actor=actor,
                mde=mde,
                alpha=alpha,
                power=power,
                correction=correction,
                min_lift=min_lift,
                baseline=baseline,
            ),
        )
    if as_json:
        emit_json(doc)
        return
    v = doc["version"]
    console.print(
        f"experiment [bold]{name}[/] on {v['jurisdiction']}/{v['purpose']}/{v['version_id']}: "
        f"{doc['customers']} customers, arms {', '.join(doc['arms'])} ({split})",
        highlight=False,
    )
    table = Table(title="power per persona")
    for col in ("persona", *doc["arms"], "baseline", "needed per arm", "powered"):
        table.add_column(col)
    for pid, row in doc["power"]["personas"].items():
        counts = doc["counts"].get(pid, {})
        table.add_row(
            pid,
            *[str(counts.get(a, 0)) for a in doc["arms"]],
            "-" if row["baseline"] is None else f"{row['baseline']:.3f}",
            "-" if row["required_per_arm"] is None else str(row["required_per_arm"]),
            "yes" if row["powered"] else "no",
        )
    console.print(table)
    pooled = doc["power"]["pooled"]
    console.print(
        f"pooled: smallest arm {pooled['smallest_arm']}, needed per arm "
        f"{pooled['required_per_arm'] or '-'}: {'powered' if pooled['powered'] else 'NOT powered'}",
        highlight=False,
    )


@experiment_app.command("analyse")
@handle_errors
def analyse_cmd(
    name: str = typer.Argument(..., help="Experiment name."),
    outcomes: str = typer.Option(..., "--outcomes", help="Declared source holding outcomes."),
    column: str = typer.Option(None, "--column", help="Boolean outcome column (if several)."),
    cost: str = typer.Option(None, "--cost", help="Cost per arm, e.g. control=0,treatment=1200"),
    value: float = typer.Option(None, "--value", help="Value of one conversion (for ROI)."),
    as_of: str = typer.Option(None, "--as-of", help="Date the outcomes are read as of."),
    actor: str = ActorOpt,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Rates, lift, interval and corrected p-values per persona and arm; signed and audited."""
    from engine.actors import acting
    from engine.cli._common import open_workspace
    from engine.experiment.analyse import analyse_experiment

    ws = open_workspace(workspace)
    with acting(ws, actor, "experiment_analyse", name=name, outcomes=outcomes):
        doc = analyse_experiment(
            ws,
            name,
            outcomes,
            actor,
            _as_of(as_of),
            column=column,
            costs=cost,
            value_per_conversion=value,
        )
    if as_json:
        emit_json(doc)
        return
    _print_analysis(doc)


def _print_analysis(doc: dict[str, Any]) -> None:
    table = Table(title=f"experiment {doc['experiment']}")
    for col in ("persona", "arm", "control", "treatment", "lift", "95% CI", "p", "p adj", "test"):
        table.add_column(col)
    for pid, arms in doc["personas"].items():
        for arm, r in arms.items():
            table.add_row(
                pid,
                arm,
                f"{r['rate_control']:.3f} (n={r['n_control']})",
                f"{r['rate_treatment']:.3f} (n={r['n_treatment']})",
                f"{r['lift']:+.3f}",
                f"[{r['ci_95'][0]:+.3f}, {r['ci_95'][1]:+.3f}]",
                f"{r['p_value']:.4f}",
                f"{r['p_adjusted']:.4f}",
                r["test"],
            )
    console.print(table)
    for arm, r in doc["pooled"].items():
        console.print(
            f"pooled {arm}: lift {r['lift']:+.4f} [{r['ci_95'][0]:+.4f}, {r['ci_95'][1]:+.4f}], "
            f"p={r['p_value']:.4g}",
            highlight=False,
        )
    for arm, r in doc["roi"].items():
        extra = r.get("incremental_roi")
        more = "" if extra is None else f", incremental ROI over control {extra}"
        console.print(f"ROI {arm}: {r['roi']}{more}", highlight=False)
    crit = doc["criteria"]
    verdict = "[green]met[/]" if crit["met"] else "[red]not met[/]: " + "; ".join(crit["reasons"])
    console.print(f"criteria {verdict}", highlight=False)


@experiment_app.command("promote")
@handle_errors
def promote_cmd(
    name: str = typer.Argument(..., help="Experiment name."),
    actor: str = ActorOpt,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mark the experiment's version "validated" (only if its criteria were met)."""
    from engine.actors import acting
    from engine.cli._common import open_workspace
    from engine.experiment.promote import promote_experiment

    ws = open_workspace(workspace)
    with acting(ws, actor, "experiment_promote", name=name):
        doc = promote_experiment(ws, name, actor)
    if as_json:
        emit_json(doc)
        return
    v = doc["version"]
    console.print(
        f"{v['jurisdiction']}/{v['purpose']}/{v['version_id']} is validated by experiment "
        f"{name} (by {doc['validated_by']})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
