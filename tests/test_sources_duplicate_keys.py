"""Duplicate keys are found by sorting 64-bit key hashes of the key columns alone, then
confirmed on the keys themselves: a shared hash alone (a collision) never quarantines a
row, a null key never counts, and the answer is exactly `is_duplicated`'s."""

from __future__ import annotations

from collections.abc import Sequence

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
