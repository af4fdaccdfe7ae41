"""Duplicate keys are found by sorting 64-bit key hashes of the key columns alone, then
confirmed on the keys themselves: a shared hash alone (a collision) never quarantines a
row, a null key never counts, and the answer is exactly `is_duplicated`'s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

import engine.source_keys as source_keys
from engine.source_keys import duplicate_rows


def _lf(**cols: Sequence[object]) -> pl.LazyFrame:
    return pl.LazyFrame(cols).with_row_index("_row", offset=1)


def test_colliding_hashes_of_different_keys_are_not_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every key hashes alike: all rows are candidates, only the real repeat is a duplicate.
    monkeypatch.setattr(source_keys, "key_hash", lambda key: pl.lit(5, pl.UInt64))
    rows = duplicate_rows(_lf(id=["a", "b", "c", "a"]), "_row", [pl.col("id")])
    assert rows.to_list() == [1, 4]


def test_unique_keys_mark_nothing_and_null_keys_never_count() -> None:
    lf = _lf(id=["a", None, None, "d"])
    assert duplicate_rows(lf, "_row", [pl.col("id")]).to_list() == []
    pair = _lf(a=[1, 1, None, None, 2], b=["x", "x", "y", "y", None])
    # Rows 3-4 and 5 have a null key part: not duplicates (they are `required:` failures).
    assert duplicate_rows(pair, "_row", [pl.col("a"), pl.col("b")]).to_list() == [1, 2]


def test_rows_agree_with_is_duplicated_on_many_keys() -> None:
    keys = [f"k{i % 4_000}" if i % 3 == 0 else f"u{i}" for i in range(20_000)]
    lf = _lf(id=keys)
    rows = duplicate_rows(lf, "_row", [pl.col("id")])
    expected = lf.filter(pl.col("id").is_duplicated()).collect()["_row"]
    assert rows.to_list() == expected.to_list()
    assert len(rows) > 0


def test_keys_in_increasing_order_are_unique_without_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(key: pl.Expr) -> pl.Expr:
        raise AssertionError("strictly increasing keys need no hash")

    monkeypatch.setattr(source_keys, "key_hash", never)
    assert duplicate_rows(_lf(id=["a1", None, "a2", "b", None]), "_row", [pl.col("id")]).len() == 0
    assert duplicate_rows(_lf(id=[3, 7, 9_000_000_000]), "_row", [pl.col("id")]).len() == 0
    assert duplicate_rows(_lf(id=[None, None]), "_row", [pl.col("id")]).len() == 0


@pytest.mark.parametrize(
    ("ids", "rows"),
    [
        (["a", "b", "b", "c"], [2, 3]),  # ordered, one repeat: not strictly increasing
        ([1, 2, 3, 1], [1, 4]),  # increasing, then back to the start
        (["a", None, "a"], [1, 3]),  # a null between two equal keys
    ],
)
def test_a_repeat_in_nearly_ordered_keys_is_found(ids: list[object], rows: list[int]) -> None:
    assert duplicate_rows(_lf(id=ids), "_row", [pl.col("id")]).to_list() == rows


def test_an_ordered_key_with_a_repeat_across_row_groups_is_found(tmp_path: Path) -> None:
    # The comparison with the previous row must hold across Parquet row groups and the
    # streaming engine's batches, not only inside each.
    ids = [f"T{i:07d}" for i in range(30_000)]
    ids[20_000] = ids[19_999]
    path = tmp_path / "t.parquet"
    pl.DataFrame({"id": ids}).write_parquet(path, row_group_size=10_000)
    lf = pl.scan_parquet(path, row_index_name="_row", row_index_offset=1)
    assert duplicate_rows(lf, "_row", [pl.col("id")]).to_list() == [20_000, 20_001]
