"""Sources that reference only loaded sources are read side by side (engine/source_order.py
waves); what the stage returns and which error it raises must not depend on that: frames in
load order, and the first failing source in load order is the error."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import engine.sources as sources_mod
from engine.errors import BadInputError
from engine.source_keys import KeyOrder
from engine.source_order import load_order, waves
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def test_every_source_of_a_wave_references_only_earlier_waves(clean_csv_workspace: Path) -> None:
    ws = Workspace.open(clean_csv_workspace)
    order = load_order(ws)
    cut = waves(ws, order)
    assert [n for wave in cut for n in wave] == [n for n in order if any(n in w for w in cut)]
    assert sorted(n for wave in cut for n in wave) == sorted(order)
    seen: set[str] = set()
    for wave in cut:
        for name in wave:
            refs = {
                c.references.partition(".")[0]
                for c in ws.source(name).columns.values()
                if c.references
            }
            assert refs - {name} <= seen
        seen.update(wave)
    assert len(cut) >= 2  # the sample's children reference its subjects


def test_frames_come_back_in_load_order(clean_csv_workspace: Path) -> None:
    ws = Workspace.open(clean_csv_workspace)
    frames = load_sources(ws, "EU-DE", AS_OF).frames
    assert list(frames) == load_order(ws)


def test_the_first_failing_source_in_load_order_is_the_error(clean_csv_workspace: Path) -> None:
    ws = Workspace.open(clean_csv_workspace)
    wave = waves(ws, load_order(ws))[1]
    first, later = wave[0], wave[-1]
    for name in (first, later):  # both fail; the later one is the smaller file, read first
        path = ws.source_path(name)
        pl.read_csv(path, infer_schema=False).with_columns(extra=pl.lit("x")).write_csv(path)
    for _ in range(3):
        with pytest.raises(BadInputError, match=rf"source '{first}' has undeclared column"):
            load_sources(Workspace.open(clean_csv_workspace), "EU-DE", AS_OF)


def _duplicated_loan(root: Path) -> tuple[Workspace, str]:
    path = root / "data" / "loans.csv"
    df = pl.read_csv(path, infer_schema=False)
    pl.concat([df, df[1:2]]).write_csv(path)  # row 2 again, at the end
    return Workspace.open(root), str(df["jurisdiction"][1])


def test_a_key_order_asked_early_is_used_only_for_the_state_it_was_read_from(
    clean_csv_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, j = _duplicated_loan(clean_csv_workspace)
    real = sources_mod.key_order
    asked: list[str] = []

    def stale(w: Workspace, name: str, jurisdiction: str) -> KeyOrder | None:
        got = real(w, name, jurisdiction)
        asked.append(name)
        if name != "loans" or got is None:
            return got
        # A wrong answer for another state of the file (as if it changed since): ignored.
        moved = replace(got.state, mtime_ns=got.state.mtime_ns - 1)
        return KeyOrder(moved, increasing=True)

    monkeypatch.setattr(sources_mod, "key_order", stale)
    loans = load_sources(ws, j, AS_OF).frames["loans"]
    assert "loans" in asked
    assert loans.accounting.quarantine_reasons.get("duplicate_key:loan_id") == 2


def test_the_early_key_order_is_what_settles_a_childs_uniqueness(
    clean_csv_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same wrong answer bound to the file's real state is believed: the early answer is
    # what the pass uses (so the test above shows the binding, not a second look).
    ws, j = _duplicated_loan(clean_csv_workspace)
    real = sources_mod.key_order

    def wrong(w: Workspace, name: str, jurisdiction: str) -> KeyOrder | None:
        got = real(w, name, jurisdiction)
        return KeyOrder(got.state, increasing=True) if got and name == "loans" else got

    monkeypatch.setattr(sources_mod, "key_order", wrong)
    loans = load_sources(ws, j, AS_OF).frames["loans"]
    assert "duplicate_key:loan_id" not in loans.accounting.quarantine_reasons
