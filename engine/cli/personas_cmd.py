"""`pgov personas show|diff`: persona profiles of a version, and what changed between two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.padding import Padding
from rich.table import Table

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors

personas_app = typer.Typer(
    help="Persona profiles of a version and version-to-version diffs.", no_args_is_help=True
)

VersionArg = typer.Argument(
    ..., help="Version directory, or JURISDICTION/PURPOSE/VERSION_ID (or .../latest)."
)


def resolve(workspace: Path, ref: str) -> Path:
    """A directory holding personas.json is used as is (no workspace needed); anything else
    goes through the workspace's version resolution."""
    from engine.segment.io import PERSONAS

    direct = Path(ref)
    if direct.is_dir() and (direct / PERSONAS).is_file():
        return direct
    if direct.is_absolute() or ref.startswith(".") or direct.exists():
        from engine.errors import BadInputError

        raise BadInputError(f"{ref}: not a persona version directory (no {PERSONAS})")
    from engine.cli._common import open_workspace
    from engine.versions import resolve_version

    return resolve_version(open_workspace(workspace), ref)


def _print_kpis(doc: dict[str, Any]) -> None:
    """KPIs as rows and personas as columns: the unit goes with the KPI, each value is
    formatted by its unit, and the table stays narrow however many KPIs there are."""
    from engine.report.units import fmt_kpi, kpi_unit, unit_label

    names = sorted({k for p in doc["personas"] for k in (p.get("kpis") or {})})
    if not names:
        return
    declared = doc.get("kpi_units")
    table = Table(
        title="KPIs per persona (columns: persona id; <k = suppressed)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("KPI (unit)", overflow="fold", min_width=18)
    for p in doc["personas"]:
        table.add_column(str(p["persona_id"]), justify="right", no_wrap=True)
    for k in names:
        unit = kpi_unit(k, declared)
        table.add_row(
            f"{k} ({unit_label(unit, short=True)})",
            *(
                fmt_kpi((p.get("kpis") or {}).get(k), unit, bare=True)
                if k in (p.get("kpis") or {})
                else "-"
                for p in doc["personas"]
            ),
        )
    console.print(table)


@personas_app.command("show")
@handle_errors
def show_cmd(
    version: str = VersionArg,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print a version's persona profiles, gates and suppressed cells."""
    from engine.segment.io import read_personas

    vdir = resolve(workspace, version)
    doc = read_personas(vdir)
    if as_json:
        emit_json(doc)
        return
    from engine.report.profile import top_features

    console.print(
        f"[bold]{doc['strategy']}[/] · {doc['customers']} customers · "
        f"{len(doc['personas'])} personas · [bold]{doc['validity']}[/]",
        highlight=False,
    )
    card_path = vdir / "model_card.json"
    if card_path.is_file():
        import json

        card = json.loads(card_path.read_bytes())
        ratio = card.get("risk_ratio")
        console.print(
            f"model {card['chosen']} · out-of-fold AUC {card['oof_auc']:.3f} · persona AUC "
            f"{card['persona_auc']:.3f} · riskiest/safest "
            f"{'-' if ratio is None else f'{ratio:.1f}x'} · "
            f"band rates {', '.join(f'{r:.1%}' for r in card['band_rates'])} (model_card.json)",
            highlight=False,
        )
    # Narrow columns only; the long text (features, descriptors, KPIs) goes in a block per
    # persona below, which wraps at any width. Full values: --json.
    table = Table(title="personas", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("share", justify="right")
    table.add_column("stability", justify="right")
    for p in doc["personas"]:
        stab = p.get("stability")
        table.add_row(
            str(p["persona_id"]),
            p["name"],
            f"{p['size']:,}",
            f"{p['share']:.1%}",
            "-" if stab is None else f"{stab:.2f}",
        )
    console.print(table)
    top = top_features(doc)
    for p in doc["personas"]:
        # A grid per persona: the label column stays put and long values wrap inside theirs.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        grid.add_row("distinguishing", ", ".join(top.get(p["persona_id"]) or []) or "-")
        if p.get("traits"):
            grid.add_row("traits", ", ".join(p["traits"]))
        descriptors = p.get("descriptors") or {}
        if descriptors:
            grid.add_row(
                "descriptors", "; ".join(f"{k} {v}" for k, v in sorted(descriptors.items()))
            )
        console.print(f"[bold]{p['persona_id']} {p['name']}[/]", highlight=False)
        console.print(Padding(grid, (0, 0, 0, 2)))
    console.print("[dim]distinguishing = centroid vs population, in standard deviations (σ)[/]")
    _print_kpis(doc)
    gates = Table(title="validation gates", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("gate", "passed", "value", "threshold"):
        gates.add_column(col, justify="left" if col in ("gate", "passed") else "right")
    gates.add_column("detail", overflow="fold")
    for g in doc["gates"]:
        gates.add_row(
            g["name"],
            "[green]yes[/]" if g["passed"] else "[red]NO[/]",
            f"{g['value']:.3f}",
            f"{g['threshold']:.3f}",
            g.get("detail", ""),
        )
    console.print(gates)
    if doc.get("suppressed"):
        console.print(f"{len(doc['suppressed'])} cell(s) suppressed for k-anonymity")


@personas_app.command("diff")
@handle_errors
def diff_cmd(
    v1: str = typer.Argument(..., help="Older version (path or J/P/VERSION_ID)."),
    v2: str = typer.Argument(..., help="Newer version (path or J/P/VERSION_ID)."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
    max_shift: float = typer.Option(
        0.5, "--max-shift", help="Flag a centroid shift above this (RMS, in V1 std units)."
    ),
    max_size_change: float = typer.Option(
        0.25, "--max-size-change", help="Flag a relative share change above this."
    ),
) -> None:
    """Migration matrix, size changes and centroid shift between two versions."""
    from engine.segment.diff import diff_versions

    d = diff_versions(
        resolve(workspace, v1),
        resolve(workspace, v2),
        max_shift=max_shift,
        max_size_change=max_size_change,
    )
    if as_json:
        emit_json(d.as_dict())
        return
    common = "suppressed" if d.common_customers is None else str(d.common_customers)
    console.print(f"customers in both versions: {common} · k = {d.k}", highlight=False)
    names1 = sorted({(m["from_id"], m["from_name"]) for m in d.migration}, key=_order)
    names2 = sorted({(m["to_id"], m["to_name"]) for m in d.migration}, key=_order)
    cells = {(m["from_id"], m["to_id"]): m for m in d.migration}
    matrix = Table(title="migration (rows: V1, columns: V2; '-' = not in that version)")
    matrix.add_column("V1 \\ V2")
    for tid, tname in names2:
        matrix.add_column(f"{'-' if tid is None else tid} {tname}", overflow="fold")
    for fid, fname in names1:
        row = [f"{'-' if fid is None else fid} {fname}"]
        for tid, _ in names2:
            cell = cells.get((fid, tid))
            row.append("" if cell is None else ("<k" if cell["suppressed"] else str(cell["count"])))
        matrix.add_row(*row)
    console.print(matrix)
    changes = Table(title="persona changes")
    for col in (
        "V1 persona",
        "matched V2",
        "share V1",
        "share V2",
        "size change",
        "shift",
        "flags",
    ):
        changes.add_column(col, overflow="fold")
    for c in d.changes:
        changes.add_row(
            f"{c.persona_id} {c.name}",
            "-" if c.matched_id is None else f"{c.matched_id} {c.matched_name}",
            f"{c.share_v1:.1%}",
            "-" if c.share_v2 is None else f"{c.share_v2:.1%}",
            "-" if c.size_change is None else f"{c.size_change:+.1%}",
            "-" if c.centroid_shift is None else f"{c.centroid_shift:.3f}",
            ("[red]" + ", ".join(c.flags) + "[/]") if c.flags else "",
        )
    console.print(changes)
    for q in d.new_personas:
        console.print(f"[yellow]new persona in V2:[/] {q['persona_id']} {q['name']}")
    console.print("[red]flagged[/]" if d.flagged else "[green]no flags[/]")


def _order(item: tuple[int | None, str]) -> tuple[int, str]:
    return (10**9 if item[0] is None else item[0], item[1])


def register(app: typer.Typer) -> None:
    app.add_typer(personas_app, name="personas")
