"""Every source but the subjects source finds its rows' subjects in the flags table through
one lookup by hashed id (per run of equal ids), and the subjects source takes its own rows'
flags by position: the governed rows, accounting, published tokens and subject positions
are exactly the row-by-row join's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
import pytest
from test_policy_support import AS_OF, HmacPseudonymiser, customer, make_ws, request
from test_policy_support import source_frames as frames

import engine.enforce as enforce_module
from engine.enforce import GovernedFrames, enforce
from engine.enforce_joins import _MISSING, TOKEN, SubjectLookup, _HashIndex
from engine.enforce_joins import row_for_row as _row_for_row
from engine.policy import decide
from engine.workspace import Workspace

MKT, KYC = "marketing_segmentation", "kyc_aml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("runs"))


def txn(i: int, cid: str | None, ts: datetime) -> dict[str, Any]:
    return {
        "txn_id": f"T{i}",
        "customer_id": cid,
        "jurisdiction": "EU-DE",
        "ts": ts,
        "amount": 10.0 + i,
        "direction": "debit" if i % 2 else "credit",
        "channel": "card",
    }


def grouped_transactions() -> list[dict[str, Any]]:
    """Runs of one subject each: kept, excluded, unknown (not in crm) and null subjects,
    with rows of a retention rule inside runs; C0 comes back in a second run."""
    recent, old = datetime(2026, 10, 1, 12), datetime(2023, 1, 1, 12)
    order = ["C0"] * 5 + ["C1"] * 4 + ["CX"] * 3 + [None] * 3 + ["C2"] * 6 + ["C0"] * 3
    return [txn(i, cid, old if i % 4 == 0 else recent) for i, cid in enumerate(order)]


def governed(ws: Workspace, purpose: str) -> GovernedFrames:
    plan = decide(
        ws, request("analyst-eu" if purpose == MKT else "compliance-lead", "EU-DE", purpose)
    )
    crm = [
        customer("C0"),
        customer("C1", objection_direct_marketing=True, consent_withdrawn=True),
        customer("C2", last_activity_date=date(2020, 1, 1)),
        customer("C3"),
    ]
    sf = frames(ws, "EU-DE", {"crm": crm, "transactions": grouped_transactions()})
    return enforce(sf, plan, HmacPseudonymiser(), AS_OF)


@pytest.mark.parametrize("purpose", [MKT, KYC])
def test_subject_lookup_gives_the_row_join_result(
    ws: Workspace, purpose: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_runs = governed(ws, purpose)
    monkeypatch.setattr(SubjectLookup, "per_row", lambda self, keys, flags: None)
    monkeypatch.setattr(enforce_module, "row_for_row", lambda table, keys: False)
    by_rows = governed(ws, purpose)
    assert by_runs.frames.keys() == by_rows.frames.keys()
    for name, frame in by_rows.frames.items():
        assert by_runs.frames[name].equals(frame), name
    assert by_runs.accounting == by_rows.accounting
    for name, at in by_rows.subject_positions.items():
        assert by_runs.subject_positions[name].at.equals(at.at)
    assert by_runs.subject_tokens.keys() == by_rows.subject_tokens.keys()
    for k, tokens in by_rows.subject_tokens.items():
        assert by_runs.subject_tokens[k].equals(tokens)
    # The scenario reaches every kind of row: kept, excluded subject, unknown subject.
    reasons = by_runs.accounting["transactions"].excluded_by_reason
    assert reasons.get("subject_unknown") == 6
    assert reasons.get("subject_excluded", 0) > 0
    assert by_runs.accounting["transactions"].kept > 0


def _lookup_vs_join(keys: pl.Series, table: pl.DataFrame) -> None:
    excluded = table.get_column("flag")
    got = SubjectLookup(table, excluded).per_row(keys, ["other", TOKEN])
    assert got is not None
    right = table.with_columns(
        pl.col("flag").alias("_subject_excluded"),
        pl.lit(True).alias("_known"),
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(TOKEN),
    ).select("k", "_subject_excluded", "_known", "other", TOKEN)
    want = keys.to_frame().join(right, on="k", how="left", maintain_order="left").drop("k")
    want = want.with_columns(pl.col("_known").fill_null(False))
    # The lookup gives `_subject_excluded` as enforce reads it: known, and excluded or unknown.
    known_excluded = pl.col("_known") & pl.col("_subject_excluded").fill_null(True)
    want = want.with_columns(known_excluded.alias("_subject_excluded"))
    assert pl.DataFrame(list(got.values())).equals(want)


def test_lookup_matches_a_left_join_with_nulls_and_misses() -> None:
    table = pl.DataFrame({"k": ["a", "b", "c"], "flag": [True, None, False], "other": [1, None, 3]})
    runs = ["a"] * 3 + ["b"] * 3 + [None] * 3 + ["z"] * 2 + ["a"] * 3 + ["c"]
    _lookup_vs_join(pl.Series("k", runs), table)
    # Scattered rows (a run per row), a single row, and no rows at all.
    _lookup_vs_join(pl.Series("k", ["c", "z", "a", None, "b", "a", "c"]), table)
    _lookup_vs_join(pl.Series("k", ["b"]), table)
    _lookup_vs_join(pl.Series("k", [], dtype=pl.String), table)


def test_lookup_checks_the_id_itself_not_only_its_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ids whose hashes are equal (forced here: every hash one value, the table's one id)
    are not taken for each other: the id found by hash is compared with the row's own."""
    table = pl.DataFrame({"k": ["a"], "flag": [False], "other": [7]})
    monkeypatch.setattr(
        pl.Series, "hash", lambda self, *a, **k: pl.Series([5] * self.len(), dtype=pl.UInt64)
    )
    lookup = SubjectLookup(table, table.get_column("flag"))
    at = lookup.positions(pl.Series("k", ["a", "b", "b", "a"]))
    assert at is not None
    assert at.to_list() == [0, None, None, 0]


def test_lookup_declines_repeated_ids_nulls_and_other_types() -> None:
    """The caller joins instead: a table without flag columns (its ids may repeat), a null
    id in the table, ids of another type than the rows'."""
    flag = pl.Series([False, False])
    assert (
        SubjectLookup(pl.DataFrame({"k": ["a", "a"]}), flag).per_row(pl.Series("k", ["a"]), [])
        is None
    )
    nulls = pl.DataFrame({"k": ["a", None], "flag": [False, True]})
    assert SubjectLookup(nulls, flag).per_row(pl.Series("k", ["a"]), []) is None
    table = pl.DataFrame({"k": ["1", "2"], "flag": [False, True]})
    assert SubjectLookup(table, flag).per_row(pl.Series("k", [1, 2]), []) is None
    repeated = pl.DataFrame({"k": ["a", "a"], "flag": [True, False]})
    assert SubjectLookup(repeated, flag).per_row(pl.Series("k", ["a"]), []) is None


def test_subjects_take_their_own_flags_only_when_the_table_is_their_rows() -> None:
    table = pl.DataFrame({"k": ["a", "b", "c"], "flag": [True, False, True]})
    assert _row_for_row(table, pl.Series("k", ["a", "b", "c"]))
    assert not _row_for_row(table, pl.Series("k", ["b", "a", "c"]))
    assert not _row_for_row(table, pl.Series("k", ["a", "b", None]))
    assert not _row_for_row(table, pl.Series("k", ["a", "b"]))
    # Without a flag column the table's subjects were never made distinct.
    assert not _row_for_row(table.select("k"), pl.Series("k", ["a", "b", "c"]))


def test_hash_index_finds_what_a_sorted_search_finds() -> None:
    """The probing table against a binary search of the sorted hashes: every entry, misses,
    hash 0 and the largest hash, and many hashes sharing a home slot (long probes)."""
    rng = np.random.default_rng(0)
    for n in [0, 1, 2, 3, 100, 5000]:
        hashes = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2)
        if n >= 100:
            hashes[:2] = [0, 2**64 - 1]
            hashes[2:60] = (hashes[2:60] & np.uint64(0xFFFF)) | np.uint64(5 << 50)
        hashes = np.unique(hashes)
        rng.shuffle(hashes)
        index = _HashIndex(hashes)
        queries = np.r_[hashes, rng.integers(0, 2**63, 500, dtype=np.uint64), np.uint64(0)]
        order = np.argsort(hashes)
        at = np.clip(np.searchsorted(hashes[order], queries), 0, max(n - 1, 0))
        want = (
            np.where(hashes[order][at] == queries, order[at], _MISSING)
            if n
            else np.full(len(queries), _MISSING)
        )
        assert (index.find(queries) == want).all(), n
