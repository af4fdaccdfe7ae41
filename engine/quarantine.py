"""Quarantine: where rows that broke their data contract wait, sealed, for repair.

    write_quarantine(ws, run_id, sources, seal) -> dict
    read_quarantine_rows(path, open_) -> pl.DataFrame

Layout: quarantine/<jurisdiction>/<run_id>/
    report.json            per source: row numbers, reason codes (which name the field),
                           counts, input digest. No values: safe to read and to ship.
    <source>.rows.sealed   seal(Parquet bytes of the quarantined rows as read, with `_row`
                           and `_reasons`). The rows may hold personal data, so they are kept
                           for repair but unreadable without the key (the keyring's AES-GCM
                           sealer for purpose "quarantine").

A run directory is written to a temporary sibling and renamed into place: a crash leaves no
half report, and an existing run is never overwritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine.errors import BadInputError, PgovError, UsageError
from engine.sources import REASONS, ROW, SourceFrames
from engine.workspace import Workspace

log = structlog.get_logger("pgov.quarantine")

REPORT = "report.json"
SEALED_SUFFIX = ".rows.sealed"


def quarantine_dir(ws: Workspace, jurisdiction: str, run_id: str) -> Path:
    return ws.quarantine_dir / jurisdiction / run_id


def _safe_name(value: str, what: str) -> str:
    if not value or "/" in value or "\\" in value or value in (".", "..") or value.startswith("."):
        raise UsageError(f"quarantine: {what} '{value}' is not a safe directory name")
    return value


def _parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd")
    return buf.getvalue()


def build_report(run_id: str, sources: SourceFrames) -> dict[str, Any]:
    """The value-free report: what was quarantined, where, and why."""
    per_source: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name, sf in sorted(sources.frames.items()):
        acc = sf.accounting
        q = sf.quarantine
        rows = [
            {"row": int(r), "reasons": list(reasons)}
            for r, reasons in q.select(ROW, REASONS).iter_rows()
        ]
        per_source[name] = {
            "path": sf.path,
            "input_digest": sf.input_digest,
            "input_rows": acc.input_rows,
            "valid_rows": acc.valid_rows,
            "quarantined_rows": acc.quarantined_rows,
            "reasons": dict(sorted(acc.quarantine_reasons.items())),
            "rows": rows,
        }
        counts[name] = acc.quarantined_rows
    return {
        "run_id": run_id,
        "jurisdiction": sources.jurisdiction,
        "as_of": sources.as_of.isoformat(),
        "counts": counts,
        "sources": per_source,
    }


def write_quarantine(
    ws: Workspace,
    run_id: str,
    sources: SourceFrames,
    seal: Callable[[bytes], bytes],
) -> dict[str, Any]:
    """Write the report and sealed rows; returns the report (plus paths and sealed digests)."""
    jurisdiction = _safe_name(sources.jurisdiction, "jurisdiction")
    final = quarantine_dir(ws, jurisdiction, _safe_name(run_id, "run id"))
    if final.exists():
        raise UsageError(f"{final}: quarantine for run '{run_id}' exists; runs are never rewritten")
    report = build_report(run_id, sources)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sealed: dict[str, dict[str, Any]] = {}
    try:
        for name, sf in sorted(sources.frames.items()):
            if sf.quarantine.height == 0:
                continue
            blob = seal(_parquet_bytes(sf.quarantine))
            file = f"{name}{SEALED_SUFFIX}"
            (tmp / file).write_bytes(blob)
            sealed[name] = {"file": file, "sha256": hashlib.sha256(blob).hexdigest()}
        report["sealed"] = sealed
        data = json.dumps(report, sort_keys=True, indent=1).encode("utf-8")
        (tmp / REPORT).write_bytes(data + b"\n")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report["report_path"] = str(final.relative_to(ws.root) / REPORT)
    log.info(
        "quarantine.written",
        run_id=run_id,
        jurisdiction=jurisdiction,
        quarantined=sum(report["counts"].values()),
    )
    return report


def read_quarantine_rows(path: Path, open_: Callable[[bytes], bytes]) -> pl.DataFrame:
    """The quarantined rows of one `<source>.rows.sealed` file, opened with the key."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no sealed quarantine file here")
    try:
        plain = open_(path.read_bytes())
    except PgovError:
        raise
    except Exception as exc:  # a sealer's own error type: never echo its message
        raise BadInputError(f"{path}: sealed rows do not open ({type(exc).__name__})") from None
    try:
        return pl.read_parquet(io.BytesIO(plain))
    except pl.exceptions.PolarsError as exc:
        raise BadInputError(f"{path}: opened rows are not Parquet ({type(exc).__name__})") from None
