"""Rows with a null or undeclared jurisdiction are in no scope: `pgov validate` reports them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from engine.cli import app
from engine.sources import unscoped_rows
from engine.workspace import Workspace


def test_unscoped_rows_are_counted_and_reported(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "loans.csv"
    df = pl.read_csv(path, infer_schema=False)
    at = pl.int_range(pl.len())
    df.with_columns(
        jurisdiction=pl.when(at == 0)
        .then(None)
        .when(at == 1)
        .then(pl.lit("EU-XX"))
        .otherwise(pl.col("jurisdiction"))
    ).write_csv(path)
    counts = unscoped_rows(Workspace.open(clean_csv_workspace))
    assert counts["loans"] == 2 and counts["crm"] == 0
    result = CliRunner().invoke(
        app, ["validate", "-j", "UK", "-w", str(clean_csv_workspace), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unscoped_rows"]["loans"] == 2
    crm = data["sources"]["crm"]
    assert crm["input_rows"] == crm["valid_rows"] + crm["quarantined_rows"]
