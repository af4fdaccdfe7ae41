"""input_rows == valid_rows + quarantined_rows per source, whatever the dirt; planted dirt
lands in quarantine with the reason the manifest promises."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.sample import SampleSummary, generate
from engine.sample.generate import Format
from engine.sample.workspace import init_workspace
from engine.sources import SourceFrames, load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _all(ws: Workspace) -> dict[str, SourceFrames]:
    return {j: load_sources(ws, j, AS_OF) for j in ws.config.jurisdictions}


def _assert_balanced(
    ws: Workspace, loaded: dict[str, SourceFrames], summary: SampleSummary
) -> None:
    for name in ws.config.sources:
        total = 0
        for frames in loaded.values():
            acc = frames.frames[name].accounting
            assert acc.input_rows == acc.valid_rows + acc.quarantined_rows
            assert frames.frames[name].frame.height == acc.valid_rows
            assert frames.frames[name].quarantine.height == acc.quarantined_rows
            assert sum(acc.quarantine_reasons.values()) >= acc.quarantined_rows
            total += acc.input_rows
        assert total == summary.rows[name]  # every row belongs to exactly one jurisdiction


def _assert_planted_land(loaded: dict[str, SourceFrames], summary: SampleSummary) -> None:
    for planted in summary.planted:
        reasons: dict[int, list[str]] = {}
        for frames in loaded.values():
            q = frames.frames[planted.source].quarantine
            reasons.update({int(r): list(rs) for r, rs in q.select("_row", "_reasons").iter_rows()})
        for row in planted.rows:
            assert planted.reason in reasons.get(row, []), (planted.kind, planted.source, row)


def test_sample_dirt_lands_in_quarantine_with_the_right_reason(
    sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    loaded = _all(sample_ws)
    _assert_balanced(sample_ws, loaded, sample_summary)
    _assert_planted_land(loaded, sample_summary)
    kinds = {p.kind for p in sample_summary.planted}
    assert kinds == {
        "null_required", "malformed_email", "duplicate_id", "out_of_range",
        "future_date", "orphan", "not_allowed",
    }  # fmt: skip


def test_csv_dirt_including_wrong_types_lands_in_quarantine(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root, "csv")
    summary = generate(600, 5, root / "data", "csv", dirt_rate=0.01, as_of=AS_OF)
    assert summary.planted_by_kind()["wrong_type"] > 0
    ws = Workspace.open(root)
    loaded = _all(ws)
    _assert_balanced(ws, loaded, summary)
    _assert_planted_land(loaded, summary)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rate=st.sampled_from([0.0, 0.001, 0.02, 0.1, 0.3]), seed=st.integers(0, 10_000))
def test_accounting_identity_holds_across_dirt_rates(
    tmp_path_factory: pytest.TempPathFactory, rate: float, seed: int
) -> None:
    root = tmp_path_factory.mktemp("acct") / "ws"
    init_workspace(root, "parquet")
    summary = generate(150, seed, root / "data", "parquet", dirt_rate=rate, as_of=AS_OF)
    ws = Workspace.open(root)
    loaded = _all(ws)
    _assert_balanced(ws, loaded, summary)
    _assert_planted_land(loaded, summary)
    quarantined = sum(
        f.accounting.quarantined_rows for s in loaded.values() for f in s.frames.values()
    )
    assert (quarantined == 0) == (rate == 0.0)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_sample_written_in_customer_blocks_keeps_ids_order_and_dirt_rows(
    tmp_path: Path, fmt: Format
) -> None:
    # Blocks of 250 customers: the path a 10M sample takes, at test size.
    root = tmp_path / "ws"
    init_workspace(root, fmt)
    summary = generate(
        900,
        5,
        root / "data",
        fmt,
        dirt_rate=0.01,
        as_of=AS_OF,
        block_customers=250,
    )
    ws = Workspace.open(root)
    assert not list((root / "data").glob(".*parts"))  # block files are joined, then removed
    loaded = _all(ws)
    _assert_balanced(ws, loaded, summary)
    _assert_planted_land(loaded, summary)
    blocked = {p.source for p in summary.planted if p.source in ("transactions", "app_events")}
    assert blocked == {"transactions", "app_events"}
    for name, key in (("transactions", "txn_id"), ("app_events", "event_id")):
        df = pl.read_parquet(ws.source_path(name)) if fmt == "parquet" else None
        if df is None:
            df = pl.read_csv(ws.source_path(name), infer_schema=False)
        assert df.height == summary.rows[name]
        assert df[key].is_unique().all(), name  # ids continue across blocks
        keyed = df.select("jurisdiction", key)
        assert keyed.equals(keyed.sort("jurisdiction", key)), name
    again = generate(
        900,
        5,
        tmp_path / "again",
        fmt,
        dirt_rate=0.01,
        as_of=AS_OF,
        block_customers=250,
    )
    assert again.files == summary.files
