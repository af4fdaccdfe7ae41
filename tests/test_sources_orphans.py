"""Orphan rows are found by an anti join against the referenced source's valid values, not
a literal `is_in` inside the contract pass: the answer must be `is_in`'s exactly (nulls,
repeated parents, integer ids), and a reference between columns of different declared
types keeps the `is_in` form."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pytest

from engine.source_refs import joinable, marked, orphan_query


def _lf(**cols: Sequence[object]) -> pl.LazyFrame:
    return pl.LazyFrame(cols).with_row_index("_row", offset=1)


def _is_in_rows(lf: pl.LazyFrame, parents: pl.Series) -> list[int]:
    v = pl.col("v")
    return lf.filter(v.is_not_null() & ~v.is_in(parents.implode())).collect()["_row"].to_list()


@pytest.mark.parametrize(
    ("values", "parents"),
    [
        (["a", None, "b", "c", "a", "", " "], ["a", "a", None, " "]),
        ([3, None, 7, 9_000_000_000, 3], [9_000_000_000, None, 3, 3]),
        (["x", "y"], []),
        ([None, None], ["x"]),
    ],
)
def test_orphan_rows_are_exactly_is_in_s_answer(
    values: list[object], parents: list[object]
) -> None:
    lf = _lf(v=values)
    dtype = lf.collect_schema()["v"]
    parent = pl.Series("p", parents, dtype=dtype)
    got = orphan_query(lf, "_row", pl.col("v"), parent).collect()["_row"].sort().to_list()
    assert got == _is_in_rows(lf, parent)


def test_orphans_agree_with_is_in_on_many_values() -> None:
    values = [f"c{i % 7_919}" if i % 5 else None for i in range(40_000)]
    parent = pl.Series("p", [f"c{i}" for i in range(0, 9_000, 3)])
    lf = _lf(v=values)
    got = orphan_query(lf, "_row", pl.col("v"), parent).collect()["_row"].sort().to_list()
    assert got == _is_in_rows(lf, parent)
    assert 0 < len(got) < len(values)


def test_only_same_typed_references_take_the_join() -> None:
    assert joinable(pl.String(), pl.Series(["a"]))
    assert not joinable(pl.Int64(), pl.Series(["1"]))


def test_marked_rows_are_true_and_no_rows_mark_nothing() -> None:
    lf = _lf(v=["a", "b", "c"])
    rows = pl.Series("_row", [3, 1], dtype=pl.UInt32)

    def flags(r: pl.Series) -> list[bool]:
        return lf.with_columns(marked(r, "_row").alias("m")).collect()["m"].to_list()

    assert flags(rows) == [True, False, True]
    assert flags(rows.clear()) == [False] * 3
