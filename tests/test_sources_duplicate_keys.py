"""Duplicate keys are found by sorting 64-bit key hashes, then confirmed on the keys
themselves: a shared hash alone (a collision) never quarantines a row."""

from __future__ import annotations

import polars as pl

from engine.sources import KEY_HASH, _mark_duplicates


def _frame(keys: list[str | None], hashes: list[int | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": keys,
            "__check0": [False] * len(keys),
            "__bad": [False] * len(keys),
            KEY_HASH: pl.Series(hashes, dtype=pl.UInt64),
        }
    )


def test_colliding_hashes_of_different_keys_are_not_duplicates() -> None:
    df = _frame(["a", "b", "c", "a"], [5, 5, 9, 5])  # a, b collide; a repeats for real
    out = _mark_duplicates(df, pl.col("id"), "__check0")
    assert out["__check0"].to_list() == [True, False, False, True]
    assert out["__bad"].to_list() == [True, False, False, True]
    assert KEY_HASH not in out.columns


def test_unique_hashes_mark_nothing_and_null_keys_never_count() -> None:
    df = _frame(["a", None, None, "d"], [1, None, None, 4])
    out = _mark_duplicates(df, pl.col("id"), "__check0")
    assert not out["__check0"].any() and not out["__bad"].any()


def test_marks_agree_with_is_duplicated_on_many_keys() -> None:
    keys = [f"k{i % 4_000}" if i % 3 == 0 else f"u{i}" for i in range(20_000)]
    df = pl.DataFrame({"id": keys}).with_columns(
        pl.lit(False).alias("__check0"),
        pl.lit(False).alias("__bad"),
        pl.col("id").hash().alias(KEY_HASH),
    )
    out = _mark_duplicates(df, pl.col("id"), "__check0")
    assert out["__check0"].to_list() == df["id"].is_duplicated().to_list()
    assert out["__check0"].sum() > 0
