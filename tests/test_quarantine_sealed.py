"""Quarantine keeps bad rows for repair: a value-free report, rows sealed under a key."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.errors import BadInputError, UsageError
from engine.quarantine import read_quarantine_rows, write_quarantine
from engine.sources import load_sources
from engine.workspace import Workspace

_KEY = b"test-quarantine-key"


def _stream(n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(_KEY + counter.to_bytes(8, "big")).digest()
        counter += 1
    return out[:n]


def seal(data: bytes) -> bytes:
    """A test sealer: XOR keystream plus an HMAC tag (the real one is AES-GCM)."""
    ct = bytes(a ^ b for a, b in zip(data, _stream(len(data)), strict=True))
    return b"TST1" + hmac.new(_KEY, ct, "sha256").digest() + ct


def open_(blob: bytes) -> bytes:
    tag, ct = blob[4:36], blob[36:]
    if not blob.startswith(b"TST1") or not hmac.compare_digest(
        tag, hmac.new(_KEY, ct, "sha256").digest()
    ):
        raise ValueError("bad tag")
    return bytes(a ^ b for a, b in zip(ct, _stream(len(ct)), strict=True))


@pytest.fixture()
def written(workspace_copy: Path, sample_as_of: date) -> tuple[Workspace, dict[str, object], Path]:
    ws = Workspace.open(workspace_copy)
    frames = load_sources(ws, "EU-DE", sample_as_of)
    report = write_quarantine(ws, "run-0001", frames, seal)
    return ws, report, ws.quarantine_dir / "EU-DE" / "run-0001"


def test_report_lists_rows_and_reasons_but_no_values(
    written: tuple[Workspace, dict[str, object], Path],
) -> None:
    ws, report, run_dir = written
    text = (run_dir / "report.json").read_text()
    on_disk = json.loads(text)
    assert on_disk["jurisdiction"] == "EU-DE" and on_disk["run_id"] == "run-0001"
    crm = on_disk["sources"]["crm"]
    assert crm["quarantined_rows"] == len(crm["rows"]) > 0
    assert crm["input_rows"] == crm["valid_rows"] + crm["quarantined_rows"]
    assert all(r["reasons"] and isinstance(r["row"], int) for r in crm["rows"])
    assert report["report_path"] == "quarantine/EU-DE/run-0001/report.json"
    assert set(report) >= {"run_id", "jurisdiction", "sources", "counts", "sealed"}
    raw = pl.read_parquet(ws.source_path("crm")).filter(pl.col("jurisdiction") == "EU-DE")
    for col in ("customer_id", "email", "full_name", "phone", "national_id", "address"):
        for value in raw[col].drop_nulls().to_list():
            assert value not in text, col


def test_sealed_rows_are_unreadable_without_the_key_and_round_trip_with_it(
    written: tuple[Workspace, dict[str, object], Path], sample_as_of: date
) -> None:
    ws, _, run_dir = written
    sealed = run_dir / "crm.rows.sealed"
    blob = sealed.read_bytes()
    with pytest.raises(pl.exceptions.PolarsError):
        pl.read_parquet(blob)
    assert b"@example." not in blob
    rows = read_quarantine_rows(sealed, open_)
    expected = load_sources(ws, "EU-DE", sample_as_of).frames["crm"].quarantine
    assert rows.equals(expected)
    with pytest.raises(
        BadInputError, match=r"crm\.rows\.sealed: sealed rows do not open \(ValueError\)"
    ):
        read_quarantine_rows(sealed, lambda b: open_(b[:-1] + bytes([b[-1] ^ 1])))


def test_a_run_is_never_overwritten(
    written: tuple[Workspace, dict[str, object], Path], sample_as_of: date
) -> None:
    ws, _, run_dir = written
    before = (run_dir / "report.json").read_bytes()
    with pytest.raises(UsageError, match="exists"):
        write_quarantine(ws, "run-0001", load_sources(ws, "EU-DE", sample_as_of), seal)
    assert (run_dir / "report.json").read_bytes() == before
    with pytest.raises(UsageError, match="not a safe directory name"):
        write_quarantine(ws, "../escape", load_sources(ws, "EU-DE", sample_as_of), seal)


def test_failed_seal_leaves_no_half_run(workspace_copy: Path, sample_as_of: date) -> None:
    ws = Workspace.open(workspace_copy)
    frames = load_sources(ws, "UK", sample_as_of)

    def broken(_: bytes) -> bytes:
        raise RuntimeError("kms unavailable")

    with pytest.raises(RuntimeError):
        write_quarantine(ws, "run-x", frames, broken)
    assert not (ws.quarantine_dir / "UK").exists() or not any((ws.quarantine_dir / "UK").iterdir())
