"""NDJSON sources go through the same scoped scan and contract as Parquet and CSV."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from engine.sources import load_sources
from engine.workspace import Workspace


def test_ndjson_source_is_scoped_and_checked(clean_csv_workspace: Path) -> None:
    data = clean_csv_workspace / "data"
    surveys = pl.read_csv(data / "surveys.csv", infer_schema_length=0).with_columns(
        pl.col("financial_literacy").cast(pl.Int64)
    )
    surveys = surveys.with_columns(
        financial_literacy=pl.when(pl.int_range(pl.len()) == 0)
        .then(9)
        .otherwise(pl.col("financial_literacy"))
    )
    surveys.write_ndjson(data / "surveys.ndjson")
    toml = clean_csv_workspace / "pgov.toml"
    text = toml.read_text().replace(
        'path = "data/surveys.csv"\nformat = "csv"',
        'path = "data/surveys.ndjson"\nformat = "ndjson"',
    )
    toml.write_text(text)
    j = str(surveys["jurisdiction"][0])
    sf = load_sources(Workspace.open(clean_csv_workspace), j, date(2026, 11, 1)).frames["surveys"]
    assert sf.spec.format == "ndjson"
    assert set(sf.frame["jurisdiction"]) == {j}
    assert sf.quarantine["_reasons"].to_list() == [["range:financial_literacy"]]
    assert sf.quarantine["_row"].to_list() == [1]
    assert sf.accounting.balanced()
