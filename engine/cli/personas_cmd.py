"""`pgov personas show|diff`: persona profiles of a version, and what changed between two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
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


def _fmt(v: Any) -> str:
    if v is None:
        return "suppressed"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


@personas_app.command("show")
@handle_errors
def show_cmd(
    version: str = VersionArg,
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print a version's persona profiles, gates and suppressed cells."""
    from engine.segment.io import read_personas

    doc = read_personas(resolve(workspace, version))
    if as_json:
        emit_json(doc)
        return
    console.print(
        f"[bold]{doc['strategy']}[/] · {doc['customers']} customers · "
        f"{len(doc['personas'])} personas · [bold]{doc['validity']}[/]",
        highlight=False,
    )
    table = Table(title="personas")
    for col in ("id", "name", "size", "share", "stability", "traits", "kpis"):
        table.add_column(col, overflow="fold")
    for p in doc["personas"]:
        kpis = "\n".join(f"{k}: {_fmt(v)}" for k, v in sorted(p.get("kpis", {}).items()))
        stab = p.get("stability")
        table.add_row(
            str(p["persona_id"]),
            p["name"],
            str(p["size"]),
            f"{p['share']:.1%}",
            "-" if stab is None else f"{stab:.2f}",
            "\n".join(p.get("traits", [])),
            kpis or "-",
        )
    console.print(table)
    gates = Table(title="validation gates")
    for col in ("gate", "passed", "value", "threshold", "detail"):
        gates.add_column(col)
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
