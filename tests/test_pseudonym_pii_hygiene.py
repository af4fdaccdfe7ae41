"""PII hygiene end to end: after real refreshes, no file written outside data/ and keys/ and
no captured log line contains any raw e-mail, phone, national id, name, address or customer
id of the input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
import structlog

from engine.config import Purpose
from engine.logs import configure_logging
from engine.request import RefreshRequest
from engine.workspace import Workspace

IDENTIFIERS = ["customer_id", "email", "phone", "national_id", "full_name", "address"]
AS_OF = date(2026, 11, 1)


def _raw_values(crm: Path) -> set[str]:
    df = pl.read_parquet(crm, columns=IDENTIFIERS)
    # Short fragments (e.g. 3-letter names) would match unrelated text; real identifiers
    # of the sample are all longer than this.
    return {
        v
        for c in IDENTIFIERS
        for v in df[c].drop_nulls().cast(pl.String).unique().to_list()
        if len(v) >= 6
    }


def _texts(path: Path) -> list[str]:
    """Every string a file exposes: decoded bytes, plus every cell of a Parquet file
    (compression and dictionary pages would hide values from a byte search)."""
    out = [path.read_bytes().decode("utf-8", "ignore")]
    if path.suffix == ".parquet":
        df = pl.read_parquet(path)
        out += [
            "\n".join(df[c].cast(pl.String).drop_nulls().to_list())
            for c, t in df.schema.items()
            if t in (pl.String, pl.Categorical) or t.is_temporal()
        ]
    return out


def _numbers(path: Path) -> set[str]:
    """Numeric cells as whole values: an identifier stored in a number column is the whole
    value, while a substring search of random 128-bit token bodies' decimal digits finds
    some 9-digit national id by chance."""
    if path.suffix != ".parquet":
        return set()
    df = pl.read_parquet(path)
    return {
        v
        for c, t in df.schema.items()
        if t.is_numeric()
        for v in df[c].cast(pl.String).drop_nulls().unique().to_list()
    }


def _hits(texts: list[str], values: set[str]) -> set[str]:
    blob = "\n".join(texts)
    return {v for v in values if v in blob}


@pytest.mark.slow
def test_refresh_outputs_and_logs_hold_no_raw_identifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.pseudonym.lifecycle import init_keys
    from engine.refresh import run_refresh
    from engine.sample import generate
    from engine.sample.workspace import init_workspace

    root = tmp_path / "ws"
    init_workspace(root, "parquet")
    ws = Workspace.open(root)
    try:
        configure_logging(ws, ws.logs_dir / "pgov.jsonl", "DEBUG")
        init_keys(ws)
        generate(1500, 7, ws.data_dir, "parquet", as_of=AS_OF)
        for purpose, actor in [
            (Purpose.MARKETING, "analyst-uk"),
            (Purpose.KYC_AML, "compliance-lead"),
        ]:
            req = RefreshRequest(actor=actor, jurisdiction="UK", purpose=purpose, as_of=AS_OF)
            run_refresh(ws, req)
        structlog.get_logger("pii-test").info("done", email="x@y.org")
    finally:
        structlog.reset_defaults()

    raw = _raw_values(ws.data_dir / "crm.parquet")
    assert len(raw) > 1000
    # Positive control: the scanner does find values where they are.
    assert _hits(_texts(ws.data_dir / "crm.parquet"), raw)

    written = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in ("data", "keys")
    ]
    kinds = {p.relative_to(root).parts[0] for p in written}
    assert {"versions", "audit", "logs", "outbox", "quarantine"} <= kinds
    leaks = {
        str(p.relative_to(root)): sorted(_hits(_texts(p), raw) | (_numbers(p) & raw))[:3]
        for p in written
    }
    assert {k: v for k, v in leaks.items() if v} == {}
    captured = capsys.readouterr()
    assert _hits([captured.out, captured.err], raw) == set()
    assert "x@y.org" not in (ws.logs_dir / "pgov.jsonl").read_text()
