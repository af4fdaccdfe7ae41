"""k-anonymity: small cells suppressed and recorded; violating groups listed."""

from __future__ import annotations

import polars as pl
import pytest

from engine.errors import UsageError
from engine.pseudonym.kanon import SUPPRESSED_FLAG, check_k_anonymity, suppress_small_cells


def test_small_cells_are_nulled_flagged_and_recorded() -> None:
    df = pl.DataFrame(
        {
            "persona": ["saver", "trader", "micro", "ghost"],
            "customers": [120, 4, 10, None],
            "avg_balance": [1000.0, 98765.4, 200.0, 5.0],
            "median_age": [40, 33, 51, 20],
        }
    )
    out, records = suppress_small_cells(df, "customers", 10, "persona_profiles")
    assert out[SUPPRESSED_FLAG].to_list() == [False, True, False, True]
    assert out["customers"].to_list() == [120, None, 10, None]
    assert out["avg_balance"].to_list() == [1000.0, None, 200.0, None]
    assert out["median_age"].to_list() == [40, None, 51, None]
    assert out["persona"].to_list() == df["persona"].to_list()
    assert [r["cell"] for r in records] == [{"persona": "trader"}, {"persona": "ghost"}]
    assert all(r["table"] == "persona_profiles" and r["k"] == 10 for r in records)
    assert all(r["reason"] == "k_anonymity_below_minimum" for r in records)
    # The records never carry the suppressed figures.
    assert "98765" not in repr(records) and "4" not in repr([r["cell"] for r in records])


def test_nothing_suppressed_when_all_cells_reach_k() -> None:
    df = pl.DataFrame({"queue": ["EDD", "CDD"], "count": [11, 12]})
    out, records = suppress_small_cells(df, "count", 11, "routing")
    assert records == [] and out["count"].to_list() == [11, 12]


def test_check_k_anonymity_lists_small_groups() -> None:
    df = pl.DataFrame(
        {
            "age_band": ["25-34"] * 5 + ["65+"] * 2 + [None],
            "district": ["SW1A"] * 5 + ["M1"] * 2 + ["M1"],
            "token": [f"m1.{i:032x}" for i in range(8)],
        }
    )
    bad = check_k_anonymity(df, ["age_band", "district"], 3)
    assert bad == [
        {"group": {"age_band": "65+", "district": "M1"}, "size": 2},
        {"group": {"age_band": None, "district": "M1"}, "size": 1},
    ]
    assert check_k_anonymity(df, ["age_band", "district"], 1) == []


def test_bad_arguments_are_refused() -> None:
    df = pl.DataFrame({"c": [1]})
    with pytest.raises(UsageError):
        suppress_small_cells(df, "count", 5, "t")
    with pytest.raises(UsageError):
        suppress_small_cells(df, "c", 0, "t")
    with pytest.raises(UsageError):
        check_k_anonymity(df, ["age"], 5)
