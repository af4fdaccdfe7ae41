"""`pgov report`: an evidence pack for one persona version, or a chain's trend.

The version is verified first (signature, file digests, inputs, bundle, audit entry, and
the predecessor used for the diff); one that does not verify is refused with exit 4 and
the refusal is audited. Output is one self-contained HTML file, or a PDF printed by
headless Chromium.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from engine.cli._common import WorkspaceOpt, console, handle_errors, open_workspace
from engine.errors import PgovError, UsageError


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@handle_errors
def report(
    version: str | None = typer.Argument(
        None, help="Version: JURISDICTION/PURPOSE/VERSION_ID (or .../latest, .../current)."
    ),
    trend: str | None = typer.Option(
        None, "--trend", help="JURISDICTION/PURPOSE: KPIs, sizes and tiers across the chain."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.html or .pdf)."),
    pdf: bool = typer.Option(False, "--pdf", help="Print to PDF through headless Chromium."),
    actor: str = typer.Option("pgov", "--actor", help="Who asked for the report (audited)."),
    workspace: Path = WorkspaceOpt,
) -> None:
    """Self-contained HTML (or PDF) evidence pack of a verified version, or a chain's trend."""
    from engine.audit import record

    if (version is None) == (trend is None):
        raise UsageError("give exactly one of VERSION or --trend JURISDICTION/PURPOSE")
    ws = open_workspace(workspace)
    subject = version or str(trend)
    try:
        if trend is not None:
            parts = trend.strip("/").split("/")
            if len(parts) != 2 or not all(parts):
                raise UsageError(f"--trend wants JURISDICTION/PURPOSE, got '{trend}'")
            from engine.report.trend import build_trend, trend_html

            t = build_trend(ws, parts[0], parts[1])
            html = trend_html(t)
            summary = f"{len(t.versions)} version(s), {len(t.flags)} drift flag(s)"
        else:
            from engine.report.evidence import load_evidence
            from engine.report.html import version_html
            from engine.versions import resolve_version

            ev = load_evidence(ws, resolve_version(ws, version or ""))
            html = version_html(ev)
            subject = ev.ref
            summary = f"lineage verified, {len(ev.governance.proofs)} audit entries proven"
        if pdf:
            from engine.report.browser import print_pdf

            with tempfile.TemporaryDirectory(prefix="pgov-report-") as tmp:
                page = Path(tmp) / "report.html"
                page.write_text(html, encoding="utf-8")
                print_pdf(page, output)
        else:
            _write(output, html)
    except PgovError as exc:
        record(ws, "report_refused", actor, subject=subject, reason=type(exc).__name__)
        raise
    record(
        ws,
        "report_generated",
        actor,
        subject=subject,
        kind="trend" if trend else "version",
        format="pdf" if pdf else "html",
    )
    console.print(f"wrote {output} ({subject}: {summary})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
