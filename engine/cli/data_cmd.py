"""`pgov init` and `pgov sample`: create a workspace and fill it with sample data."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    err_console,
    handle_errors,
    is_quiet,
    open_workspace,
)
from engine.errors import BadInputError, UsageError

_FORMATS = ("parquet", "csv")


def _format(value: str) -> str:
    if value not in _FORMATS:
        raise UsageError(f"--format must be one of {', '.join(_FORMATS)}, not '{value}'")
    return value


def _generate(
    customers: int,
    seed: int,
    out: Path,
    fmt: str,
    dirt_rate: float,
    as_of: date,
    quiet: bool,
    page_checksums: bool = False,
) -> dict[str, object]:
    from engine.progress import progress_reporter
    from engine.sample import generate

    # Its own --quiet, or the global one (`pgov --quiet sample ...`).
    with progress_reporter("sample", quiet=quiet or is_quiet(), console=err_console) as hook:
        summary = generate(
            customers,
            seed,
            out,
            fmt,  # type: ignore[arg-type]  # checked by _format
            dirt_rate=dirt_rate,
            as_of=as_of,
            progress=hook.describe,
            page_checksums=page_checksums,
        )
    data = summary.to_json()
    # Row numbers of planted dirt live in the manifest; the command prints counts.
    data["planted"] = [{k: v for k, v in p.items() if k != "rows"} for p in data["planted"]]
    return data


def _print_sample(data: dict[str, object]) -> None:
    rows = data["rows"]
    assert isinstance(rows, dict)
    console.print(
        f"sample: {data['customers']} customers (seed {data['seed']}, {data['format']}) "
        f"written to {data['out']} in {data['seconds']} s"
    )
    for name, n in rows.items():
        console.print(f"  {name:<18} {n:>12,} rows")
    console.print(f"  planted dirt: {data['planted_by_kind']}")


@handle_errors
def init(
    directory: Path = typer.Argument(..., help="Workspace directory to create."),
    fmt: str = typer.Option("parquet", "--format", help="Source file format: parquet or csv."),
    sample: int = typer.Option(0, "--sample", help="Also generate N sample customers."),
    seed: int = typer.Option(7, "--seed", help="Sample seed."),
    dirt_rate: float = typer.Option(0.002, "--dirt-rate", help="Share of planted faulty rows."),
    page_checksums: bool = typer.Option(
        False,
        "--page-checksums",
        help="Write Parquet page CRCs (pyarrow's writer: ~1.5x the CPU, ~1.3x the disk), "
        "so a corrupted page is caught before any read.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a workspace: pgov.toml and data/, versions/, audit/, outbox/, quarantine/,
    logs/, keys/. Refuses to overwrite an existing pgov.toml."""
    from engine.sample.workspace import DIRS, init_workspace

    root = init_workspace(directory, _format(fmt))
    out: dict[str, object] = {"workspace": str(root), "format": fmt, "dirs": list(DIRS)}
    if sample:
        out["sample"] = _generate(
            sample,
            seed,
            root / "data",
            fmt,
            dirt_rate,
            date(2026, 11, 1),
            as_json,
            page_checksums,
        )
        from engine.actors import ensure_credential
        from engine.workspace import Workspace

        # A demo credential per declared actor, its private key in the local keystore; the
        # enrolment follows at 'pgov keys init', signed by the workspace's first signing key.
        actors = sorted(Workspace.open(root).config.actors)
        out["actor_credentials"] = [a for a in actors if ensure_credential(a)]
    if as_json:
        emit_json(out)
        return
    console.print(f"workspace created at {root} ({fmt})")
    if sample:
        sample_data = out["sample"]
        assert isinstance(sample_data, dict)
        _print_sample(sample_data)


@handle_errors
def sample(
    customers: int = typer.Option(..., "--customers", help="Number of customers."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(..., "--out", help="Output directory (usually WORKSPACE/data)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    dirt_rate: float = typer.Option(0.002, "--dirt-rate", help="Share of planted faulty rows."),
    as_of: str = typer.Option("2026-11-01", "--as-of", help="Reference date (YYYY-MM-DD)."),
    page_checksums: bool = typer.Option(
        False,
        "--page-checksums",
        help="Write Parquet page CRCs (pyarrow's writer: ~1.5x the CPU, ~1.3x the disk), "
        "so a corrupted page is caught before any read.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Write realistic sample sources, ground truth and a manifest of planted dirt."""
    try:
        ref = date.fromisoformat(as_of)
    except ValueError:
        raise UsageError(f"--as-of must be a date like 2026-11-01, not '{as_of}'") from None
    data = _generate(customers, seed, out, _format(fmt), dirt_rate, ref, as_json, page_checksums)
    if as_json:
        emit_json(data)
    else:
        _print_sample(data)


@handle_errors
def validate(
    jurisdiction: str = typer.Option(..., "--jurisdiction", "-j", help="Jurisdiction to check."),
    as_of: str = typer.Option(
        None, "--as-of", help="Refresh date (YYYY-MM-DD; default: today, like refresh)."
    ),
    deep: bool = typer.Option(
        False,
        "--deep",
        help="Also decode every Parquet column chunk without page checksums and hold it to "
        "the footer's statistics (slow: about 2.5x a read).",
    ),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check one jurisdiction's sources against their contracts: counts and reasons only
    (no quarantine is written; a refresh does that, sealed). Exits 5 when a source has every
    row quarantined or more than its declared max_quarantine_share, or a Parquet page is
    corrupted."""
    from engine.sources import load_sources, unscoped_rows

    try:
        ref = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise UsageError(f"--as-of must be a date like 2026-11-01, not '{as_of}'") from None
    ws = open_workspace(workspace)
    integrity = _integrity(ws, deep)
    frames = load_sources(ws, jurisdiction, ref)
    unscoped = unscoped_rows(ws)
    data = {
        "jurisdiction": jurisdiction,
        "as_of": ref.isoformat(),
        "sources": {
            name: {
                "input_rows": f.accounting.input_rows,
                "valid_rows": f.accounting.valid_rows,
                "quarantined_rows": f.accounting.quarantined_rows,
                "reasons": f.accounting.quarantine_reasons,
                "input_digest": f.input_digest,
            }
            for name, f in frames.frames.items()
        },
        "unscoped_rows": unscoped,
        "integrity": integrity,
    }
    problems = _quarantine_problems(ws, frames)
    data["problems"] = problems
    if as_json:
        emit_json(data)
        _refuse(problems)
        return
    table = Table(title=f"contract check: {jurisdiction} as of {ref}")
    for col in ("source", "input", "valid", "quarantined", "reasons"):
        table.add_column(col)
    for name, f in frames.frames.items():
        a = f.accounting
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(a.quarantine_reasons.items()))
        table.add_row(
            name, f"{a.input_rows:,}", f"{a.valid_rows:,}", f"{a.quarantined_rows:,}", reasons
        )
    console.print(table)
    if any(unscoped.values()):
        console.print(f"rows with a null or undeclared jurisdiction: {unscoped}")
    for name, r in integrity.items():
        if r["pages"] and r["pages_with_crc"] < r["pages"]:
            how = (
                "values held to the footer statistics"
                if r["stats_checked"]
                else "run with --deep to hold values to the footer statistics"
            )
            console.print(
                f"source '{name}': {r['pages'] - r['pages_with_crc']} of {r['pages']} pages "
                f"without page checksums ({how})",
                highlight=False,
            )
    _refuse(problems)


def _integrity(ws: Any, deep: bool) -> dict[str, dict[str, int]]:
    """Page checksums (and with ``deep`` footer statistics) of every Parquet source."""
    from engine.integrity import check_parquet
    from engine.sources import source_file

    out: dict[str, dict[str, int]] = {}
    for name, spec in sorted(ws.config.sources.items()):
        if spec.format != "parquet":
            continue
        r = check_parquet(source_file(ws, name), full=deep)
        out[name] = {
            "pages": r.pages,
            "pages_with_crc": r.pages_with_crc,
            "stats_checked": r.chunks_stats_checked,
        }
    return out


def _quarantine_problems(ws: Any, frames: Any) -> list[str]:
    """One message per source whose quarantine is total or above its declared share."""
    problems: list[str] = []
    for name, f in frames.frames.items():
        a = f.accounting
        if not a.input_rows:
            continue
        share = a.quarantined_rows / a.input_rows
        limit = ws.config.sources[name].max_quarantine_share
        top = ", ".join(
            f"{k}={v}"
            for k, v in sorted(a.quarantine_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        )
        if a.quarantined_rows == a.input_rows:
            problems.append(
                f"source '{name}': all {a.input_rows:,} rows quarantined ({top}); "
                "check its declared column types and allowed values"
            )
        elif share > limit:
            problems.append(
                f"source '{name}': {share:.1%} of rows quarantined, above its "
                f"max_quarantine_share of {limit:.1%} (sources.{name}.max_quarantine_share): {top}"
            )
    return problems


def _refuse(problems: list[str]) -> None:
    if problems:
        raise BadInputError("validate: " + "\n  ".join(problems))


def register(app: typer.Typer) -> None:
    """Add this module's commands or sub-app to the root app."""
    app.command("init")(init)
    app.command("sample")(sample)
    app.command("validate")(validate)
