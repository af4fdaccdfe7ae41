"""The jurisdiction predicate runs inside the scan: other jurisdictions' rows are never loaded."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.sources import load_sources, scoped_scan
from engine.workspace import Workspace


def test_plan_shows_selection_inside_the_scan(sample_ws: Workspace) -> None:
    plan = scoped_scan(sample_ws, "transactions", "UK").explain()
    scan_at = plan.index("Parquet SCAN")
    selection = plan.index('SELECTION: col("jurisdiction") == "UK"')
    assert selection > scan_at
    assert "FILTER" not in plan  # no filter left above the scan


def test_row_groups_of_other_jurisdictions_are_skipped(
    sample_ws: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    with pl.Config(verbose=True):
        out = scoped_scan(sample_ws, "transactions", "SG").collect()
    log = capfd.readouterr().err
    read, total = map(int, re.search(r"reading (\d+) / (\d+) row groups", log).groups())  # type: ignore[union-attr]
    assert total >= 20 and read <= total // 4
    assert set(out["jurisdiction"]) == {"SG"}


def test_loaded_frames_hold_only_the_requested_jurisdiction(
    sample_ws: Workspace, sample_as_of: date
) -> None:
    frames = load_sources(sample_ws, "BR", sample_as_of)
    for sf in frames.frames.values():
        assert set(sf.frame["jurisdiction"]) <= {"BR"}
        assert set(sf.quarantine["jurisdiction"]) <= {"BR"}
        full = pl.scan_parquet(sample_ws.path(sf.path)).filter(pl.col("jurisdiction") == "BR")
        assert sf.accounting.input_rows == full.select(pl.len()).collect().item()


def test_csv_scan_carries_the_predicate_too(clean_csv_workspace: Path) -> None:
    plan = scoped_scan(Workspace.open(clean_csv_workspace), "crm", "SG").explain()
    assert plan.index('SELECTION: col("jurisdiction") == "SG"') > plan.index("Csv SCAN")
