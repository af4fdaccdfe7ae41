"""Unreadable or mis-shaped source files fail closed with a BadInputError naming the file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.errors import BadInputError, UsageError
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _load(root: Path) -> None:
    load_sources(Workspace.open(root), "EU-DE", AS_OF)


def test_missing_file_names_the_file(clean_csv_workspace: Path) -> None:
    (clean_csv_workspace / "data" / "wallets.csv").unlink()
    with pytest.raises(BadInputError, match=r"data/wallets\.csv: source 'wallets' file not found"):
        _load(clean_csv_workspace)


def test_missing_declared_column_names_file_and_column(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "bureau.csv"
    pl.read_csv(path, infer_schema=False).drop("utilisation").write_csv(path)
    with pytest.raises(
        BadInputError, match=r"data/bureau\.csv: .*lacks declared column\(s\): utilisation"
    ):
        _load(clean_csv_workspace)


def test_undeclared_extra_column_is_refused(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "crm.csv"
    pl.read_csv(path, infer_schema=False).with_columns(mothers_maiden_name=pl.lit("x")).write_csv(
        path
    )
    with pytest.raises(
        BadInputError, match=r"data/crm\.csv: .*undeclared column\(s\): mothers_maiden_name"
    ):
        _load(clean_csv_workspace)


def test_wrong_delimiter_is_named(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "surveys.csv"
    pl.read_csv(path, infer_schema=False).write_csv(path, separator=";")
    with pytest.raises(BadInputError, match=r"data/surveys\.csv: .*delimiter"):
        _load(clean_csv_workspace)


def test_wrong_encoding_is_named_without_values(clean_csv_workspace: Path) -> None:
    path = clean_csv_workspace / "data" / "crm.csv"
    text = path.read_text(encoding="utf-8").replace("Berlin", "Bärlin")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(BadInputError, match=r"data/crm\.csv: .*could not be read as csv") as err:
        _load(clean_csv_workspace)
    assert "Bärlin" not in str(err.value) and "rlin" not in str(err.value)


def test_unreadable_parquet_names_the_file(workspace_copy: Path) -> None:
    (workspace_copy / "data" / "loans.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(BadInputError, match=r"data/loans\.parquet: source 'loans' is not readable"):
        _load(workspace_copy)


def test_parquet_column_of_wrong_kind_names_column(workspace_copy: Path) -> None:
    path = workspace_copy / "data" / "wallets.parquet"
    df = pl.read_parquet(path).with_columns(asset_count=pl.concat_list("asset_count"))
    df.write_parquet(path)
    with pytest.raises(
        BadInputError, match=r"wallets\.parquet: .*column 'asset_count' is stored as"
    ):
        _load(workspace_copy)


def test_undeclared_jurisdiction_is_a_usage_error(sample_ws: Workspace) -> None:
    with pytest.raises(UsageError, match="jurisdiction 'EU-XX' is not declared"):
        load_sources(sample_ws, "EU-XX", AS_OF)


def test_parquet_stored_as_text_is_typed_by_the_contract(workspace_copy: Path) -> None:
    path = workspace_copy / "data" / "bureau.parquet"
    df = pl.read_parquet(path)
    df.with_columns(pl.col("credit_score").cast(pl.String)).write_parquet(path)
    sf = load_sources(Workspace.open(workspace_copy), "UK", AS_OF).frames["bureau"]
    assert sf.frame.schema["credit_score"] == pl.Int64
    assert sf.accounting.balanced()
