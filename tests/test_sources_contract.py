"""Each contract check sends the offending row to quarantine with its reason code."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _edit(ws_root: Path, source: str, row: int, **values: str | None) -> tuple[str, str]:
    """Set cells of 1-based data row `row` in a CSV source; returns (jurisdiction, key)."""
    path = ws_root / "data" / f"{source}.csv"
    df = pl.read_csv(path, infer_schema=False)
    at = pl.int_range(pl.len()) == row - 1
    df = df.with_columns(
        [
            pl.when(at).then(pl.lit(v, dtype=pl.String)).otherwise(pl.col(c)).alias(c)
            for c, v in values.items()
        ]
    )
    df.write_csv(path)
    return str(df["jurisdiction"][row - 1]), str(df[df.columns[0]][row - 1])


def _reasons(ws_root: Path, jurisdiction: str, source: str) -> dict[int, list[str]]:
    sf = load_sources(Workspace.open(ws_root), jurisdiction, AS_OF).frames[source]
    return {int(r): list(rs) for r, rs in sf.quarantine.select("_row", "_reasons").iter_rows()}


def test_clean_sample_passes_every_contract(clean_csv_workspace: Path) -> None:
    ws = Workspace.open(clean_csv_workspace)
    for j in ws.config.jurisdictions:
        for sf in load_sources(ws, j, AS_OF).frames.values():
            assert sf.accounting.quarantined_rows == 0, (j, sf.name, sf.accounting)


@pytest.mark.parametrize(
    ("source", "row", "values", "reason"),
    [
        ("bureau", 3, {"credit_score": "n/a"}, "type:credit_score"),
        ("bureau", 3, {"credit_score": "712.5"}, "type:credit_score"),
        ("bureau", 3, {"credit_score": "9999"}, "range:credit_score"),
        ("bureau", 3, {"credit_score": None}, "required:credit_score"),
        ("bureau", 3, {"report_date": "2027-01-05"}, "future:report_date"),
        ("bureau", 3, {"report_date": "05/01/2026"}, "type:report_date"),
        ("crm", 4, {"email": "anna.example.com"}, "format:email"),
        ("crm", 4, {"email": "   "}, "required:email"),
        ("crm", 4, {"phone": "call me"}, "format:phone"),
        ("crm", 4, {"country": "XX"}, "format:country"),
        ("crm", 4, {"customer_type": "corporate"}, "not_allowed:customer_type"),
        ("crm", 4, {"marketing_consent": "maybe"}, "type:marketing_consent"),
        (
            "crm",
            4,
            {"marketing_consent_at": "2026-11-02T00:00:00.000000"},
            "future:marketing_consent_at",
        ),
        ("crm", 4, {"annual_income": "NaN"}, "type:annual_income"),
        ("loans", 2, {"status": "pending"}, "not_allowed:status"),
        ("loans", 2, {"amount": "-1"}, "range:amount"),
        ("transactions", 5, {"ts": "2027-01-01T10:00:00.000000"}, "future:ts"),
        ("transactions", 5, {"customer_id": "CUS999999999"}, "orphan:customer_id"),
        ("transactions", 5, {"txn_id": None}, "required:txn_id"),
    ],
)
def test_bad_cell_lands_in_quarantine_with_reason(
    clean_csv_workspace: Path, source: str, row: int, values: dict[str, str | None], reason: str
) -> None:
    j, _ = _edit(clean_csv_workspace, source, row, **values)
    found = _reasons(clean_csv_workspace, j, source)
    assert reason in found[row]


def test_timestamp_on_refresh_day_is_not_future(clean_csv_workspace: Path) -> None:
    j, _ = _edit(clean_csv_workspace, "transactions", 5, ts="2026-11-01T23:59:59.000000")
    assert 5 not in _reasons(clean_csv_workspace, j, "transactions")


def test_every_row_of_a_duplicated_key_is_quarantined(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "crm.csv"
    df = pl.read_csv(path, infer_schema=False)
    df = pl.concat([df, df[1:2]])  # row 2 again, at the end (row N+1)
    df.write_csv(path)
    j = str(df["jurisdiction"][1])
    cid = str(df["customer_id"][1])
    found = _reasons(clean_csv_workspace, j, "crm")
    assert found[2] == ["duplicate_key:customer_id"]
    assert found[df.height] == ["duplicate_key:customer_id"]
    # The ambiguous customer's child rows reference no valid customer: orphans.
    sf = load_sources(Workspace.open(clean_csv_workspace), j, date(2026, 11, 1))
    tx = sf.frames["transactions"]
    assert cid not in tx.frame["customer_id"].to_list()
    assert tx.quarantine.filter(pl.col("customer_id") == cid)["_reasons"].to_list()
    assert all(
        r == ["orphan:customer_id"]
        for r in tx.quarantine.filter(pl.col("customer_id") == cid)["_reasons"].to_list()
    )


def test_valid_frame_has_declared_types_and_row_numbers(clean_csv_workspace: Path) -> None:
    ws = Workspace.open(clean_csv_workspace)
    sf = load_sources(ws, "EU-DE", AS_OF).frames["crm"]
    schema = sf.frame.schema
    assert schema["date_of_birth"] == pl.Date
    assert schema["marketing_consent"] == pl.Boolean
    assert schema["marketing_consent_at"] == pl.Datetime("us")
    assert schema["annual_income"] == pl.Float64
    assert sf.frame.columns[0] == "_row"
    rows = sf.frame["_row"].to_list()
    assert rows == sorted(rows) and rows[0] >= 1
    # _row points at the same record in the file (1-based, header not counted).
    raw = pl.read_csv(clean_csv_workspace / "data" / "crm.csv", infer_schema=False)
    first = sf.frame.row(0, named=True)
    assert raw["customer_id"][first["_row"] - 1] == first["customer_id"]


def test_several_failures_on_one_row_count_once(clean_csv_workspace: Path) -> None:
    j, _ = _edit(clean_csv_workspace, "bureau", 3, credit_score="9999", report_date="2030-01-01")
    sf = load_sources(Workspace.open(clean_csv_workspace), j, AS_OF).frames["bureau"]
    assert sf.accounting.quarantined_rows == 1
    assert sf.accounting.quarantine_reasons == {"range:credit_score": 1, "future:report_date": 1}
    assert sf.quarantine["credit_score"].to_list() == ["9999"]  # kept as read, for repair
