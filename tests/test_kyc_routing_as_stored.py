"""`kyc.io.as_stored(routing)` is the routing a version's files read back as (load_routing
after write_routing), made in memory: a kyc_aml refresh delivers the version it has just
published from it instead of reading routing.parquet back, so the two must be equal, table
(values, dtypes, column order, row order), summaries and ruleset alike."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import engine.kyc.io as kyc_io
from engine.config import Purpose
from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.io import as_stored, load_routing, read_routing, write_routing
from engine.kyc.model import KycRouting
from engine.kyc.ruleset import KycRuleset
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.sample.kyc_facts import synthetic_facts
from engine.workspace import Workspace

AS_OF = date(2026, 11, 23)


@pytest.fixture(scope="module")
def ruleset() -> KycRuleset:
    return evaluate_ruleset()


def _assert_as_stored(routing: KycRouting, directory: Path) -> None:
    write_routing(routing, directory)
    mine, stored = as_stored(routing), load_routing(directory)
    assert mine.table.schema == stored.table.schema
    assert mine.table.equals(stored.table)
    assert mine.table.equals(read_routing(directory))
    assert mine.summaries == stored.summaries
    assert mine.ruleset_version == stored.ruleset_version
    if routing.ruleset is None:
        assert mine.ruleset is None and stored.ruleset is None
    else:
        assert mine.ruleset is not None and stored.ruleset is not None
        assert mine.ruleset.to_json() == stored.ruleset.to_json()


def test_a_routing_as_stored_equals_its_files_read_back(
    ruleset: KycRuleset, tmp_path: Path
) -> None:
    # Unsorted, as routing need not come sorted by token.
    routing = route_facts(synthetic_facts(3000, seed=11), ruleset, None, AS_OF, 90)
    shuffled = routing.table.sample(fraction=1.0, shuffle=True, seed=3)
    _assert_as_stored(KycRouting(routing.ruleset_version, shuffled, routing.summaries,
                                 routing.ruleset), tmp_path / "a")  # fmt: skip


def test_dtypes_the_file_changes_are_changed_in_memory_too(
    ruleset: KycRuleset, tmp_path: Path
) -> None:
    """A column built without a dtype (all null), no ruleset, and no rows at all."""
    routing = route_facts(synthetic_facts(200, seed=5), ruleset, None, AS_OF, 90)
    table = routing.table.with_columns(pl.lit(None).alias("override_id"))
    assert table.schema["override_id"] == pl.Null
    bare = KycRouting(routing.ruleset_version, table, routing.summaries, None)
    _assert_as_stored(bare, tmp_path / "null")
    empty = KycRouting(routing.ruleset_version, routing.table.clear(), {}, routing.ruleset)
    _assert_as_stored(empty, tmp_path / "empty")


def test_a_refresh_delivers_its_version_from_memory_as_stored(
    sample_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(sample_workspace, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    init_keys(ws)
    handed: list[KycRouting] = []
    real = kyc_io.as_stored

    def capture(routing: KycRouting) -> KycRouting:
        handed.append(real(routing))
        return handed[-1]

    read_back: list[Path] = []
    real_load = kyc_io.load_routing

    def load(directory: Path) -> KycRouting:
        read_back.append(directory)
        return real_load(directory)

    monkeypatch.setattr(kyc_io, "as_stored", capture)
    monkeypatch.setattr(kyc_io, "load_routing", load)
    request = RefreshRequest(actor="compliance-lead", jurisdiction="UK",
                             purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1))  # fmt: skip
    result = run_refresh(ws, request)
    # Delivered (an obligation of the new version), never read back from its file.
    assert [d["basis"] for d in result.deliveries] == ["obligation"]
    assert result.version.path not in read_back
    [routing] = handed
    stored = real_load(result.version.path)
    assert routing.table.equals(stored.table) and routing.summaries == stored.summaries
