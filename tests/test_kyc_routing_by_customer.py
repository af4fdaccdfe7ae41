"""`kyc.io.by_customer`: the routing in customer-token order, as the file stores it; a table
already in that order is not sorted again (it would gather every column, lists included)."""

from __future__ import annotations

import polars as pl

from engine.kyc.io import by_customer


def _table(ids: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"customer_id": ids, "reasons": [[f"r{i}"] for i in range(len(ids))]},
        schema={"customer_id": pl.String, "reasons": pl.List(pl.String)},
    )


def test_in_order_is_returned_as_is() -> None:
    t = _table(["kv1.a", "kv1.b", "kv1.c"])
    assert by_customer(t) is t


def test_out_of_order_is_sorted() -> None:
    t = _table(["kv1.c", "kv1.a", "kv1.b"])
    out = by_customer(t)
    assert out.equals(t.sort("customer_id"))
    assert out["customer_id"].to_list() == ["kv1.a", "kv1.b", "kv1.c"]


def test_repeated_or_null_ids_take_the_sort() -> None:
    # Not strictly increasing, or with a null: the sort decides, as it always did.
    for ids in (["kv1.a", "kv1.a", "kv1.b"], [None, "kv1.a"], ["kv1.a", None]):
        t = _table(ids)
        assert by_customer(t) is not t
        assert by_customer(t).equals(t.sort("customer_id"))


def test_empty_and_single() -> None:
    for ids in ([], ["kv1.a"]):
        t = _table(ids)
        assert by_customer(t).equals(t.sort("customer_id"))
