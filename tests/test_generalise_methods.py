"""Generalisation methods: band edges, birthdays, per-country districts, refusals."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from engine.errors import PolicyError
from engine.pseudonym import generalise_expr

AS_OF = date(2026, 11, 23)


def _apply(df: pl.DataFrame, column: str, method: str, params: dict | None = None) -> list:
    return df.select(generalise_expr(column, method, params or {}, AS_OF))[column].to_list()


def test_age_band_counts_completed_years_as_of_the_refresh_date() -> None:
    dob = [
        date(2008, 11, 23),  # 18 today
        date(2008, 11, 24),  # 17 until tomorrow
        date(2001, 11, 24),  # 24
        date(2001, 11, 23),  # 25 today
        date(1961, 11, 23),  # 65 today
        date(1961, 12, 1),  # 64
        date(2004, 2, 29),  # leap-day birth: 22
        None,
    ]
    out = _apply(pl.DataFrame({"dob": dob}), "dob", "age_band")
    assert out == ["18-24", "<18", "18-24", "25-34", "65+", "55-64", "18-24", None]


def test_age_band_custom_edges() -> None:
    out = _apply(
        pl.DataFrame({"dob": [date(2000, 1, 1), date(1950, 1, 1)]}),
        "dob",
        "age_band",
        {"bands": [21, 60]},
    )
    assert out == ["21-59", "60+"]


def test_postcode_district_per_country() -> None:
    df = pl.DataFrame(
        {
            "pc": [
                "SW1A 1AA",
                "m11ae",
                "10115",
                "75008",
                "28013",
                "00184",
                "1012 AB",
                "018956",
                "01310-100",
                "94103-1234",
                "A1B 2C3",
                None,
            ],
            "country": [
                "UK",
                "GB",
                "EU-DE",
                "FR",
                "ES",
                "IT",
                "NL",
                "SG",
                "BR",
                "US-CA",
                "CA",
                "DE",
            ],
        }
    )
    out = _apply(df, "pc", "postcode_district", {"country_column": "country"})
    assert out == ["SW1A", "M1", "10", "75", "28", "001", "1012", "01", "01310", "941", "A1B", None]


def test_postcode_district_single_country_and_generic() -> None:
    df = pl.DataFrame({"pc": ["EC1A 1BB", "W1A0AX"]})
    assert _apply(df, "pc", "postcode_district", {"country": "UK"}) == ["EC1A", "W1A"]
    assert _apply(df, "pc", "postcode_district") == ["EC1A", "W1A"]


def test_income_band() -> None:
    df = pl.DataFrame({"inc": [0.0, 14_999.99, 15_000.0, 99_999.0, 150_000.0, None]})
    assert _apply(df, "inc", "income_band") == [
        "0-15k",
        "0-15k",
        "15k-30k",
        "75k-100k",
        "150k+",
        None,
    ]


def test_date_coarsening_keeps_a_date() -> None:
    df = pl.DataFrame(
        {"d": [date(2024, 5, 17), None], "ts": [datetime(2024, 12, 31, 23, 59), None]}
    )
    assert _apply(df, "d", "date_month") == [date(2024, 5, 1), None]
    assert _apply(df, "d", "date_year") == [date(2024, 1, 1), None]
    assert _apply(df, "ts", "date_month") == [date(2024, 12, 1), None]


def test_top_and_bottom_coding() -> None:
    df = pl.DataFrame({"x": [1.0, 50.0, 1e9, None]})
    assert _apply(df, "x", "top_code", {"max": 100}) == [1.0, 50.0, 100.0, None]
    assert _apply(df, "x", "bottom_code", {"min": 10}) == [10.0, 50.0, 1e9, None]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("k_anonymise", {}),
        ("top_code", {}),
        ("top_code", {"max": "100"}),
        ("bottom_code", {"min": True}),
        ("age_band", {"bands": [30, 20]}),
        ("income_band", {"bands": []}),
    ],
)
def test_unknown_method_or_bad_params_is_a_policy_error(method: str, params: dict) -> None:
    with pytest.raises(PolicyError):
        generalise_expr("x", method, params, AS_OF)


def test_age_band_lookup_agrees_with_the_band_chain_on_every_age() -> None:
    """Age bands are looked up per whole age (a table of the ages between the edges); every
    age, in range or not, gets the band the plain when-chain over the edges gives."""
    import itertools
    from datetime import timedelta

    from engine.pseudonym.generalise import _age, _bands

    dob = [date(1880, 1, 1) + timedelta(days=d) for d in range(0, 60_000, 7)] + [None]
    df = pl.DataFrame({"dob": dob})
    for edges in ([18, 25, 35, 45, 55, 65], [0, 50], [5], [10, 5000]):
        labels = [f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)]
        labels.append(f"{edges[-1]}+")
        chain = df.select(_bands(_age(pl.col("dob"), AS_OF), edges, labels).alias("dob"))
        assert _apply(df, "dob", "age_band", {"bands": edges}) == chain["dob"].to_list()


def test_postcode_district_by_country_column_agrees_with_each_country_rule() -> None:
    """The per-row-country rule (one digit pass, a per-row length) gives what the single
    country rule gives for each country, and the generic rule for any other."""
    pcs = ["10115", "SW1A 1AA", "W1A0AX", "75008", "1012 AB", "238823", "01310-100", " 8 0 3 3 1"]
    pcs += ["", "ABC", None, "123 456"]
    for country in ["DE", "EU-DE", "GB", "uk", "US-CA", "FR", "ES", "IT", "NL", "SG", "BR", "XX"]:
        df = pl.DataFrame({"pc": pcs, "country": [country] * len(pcs)})
        by_column = _apply(df, "pc", "postcode_district", {"country_column": "country"})
        code = country.upper().removeprefix("EU-").split("-")[0]
        assert by_column == _apply(df, "pc", "postcode_district", {"country": code}), country


def test_postcode_district_for_a_frame_gives_what_the_per_row_rule_gives() -> None:
    """Given the frame it runs on, the district rule is chosen once when every row's country
    takes the same rule (a jurisdiction's rows): the values are the per-row rule's, for one
    country, for countries sharing a rule, with nulls and unknown countries, and mixed."""
    pcs = ["10115", "SW1A 1AA", "W1A0AX", "75008", "1012 AB", " 8 0 3 3 1", "", "ABC", None]
    cases = [
        ["EU-DE"] * len(pcs),
        ["DE", "FR", "es", "SG", "EU-FR", "DE", "DE", "FR", "ES"],  # all two digits
        ["UK", "GB", "uk", "GB", "UK", "GB", "GB", "UK", "GB"],
        ["XX", None, "CA", None, "XX", "ZZ", None, "CA", "XX"],  # all the generic rule
        [None] * len(pcs),
        ["DE", "GB", "US-CA", None, "NL", "DE", "XX", "BR", "DE"],  # mixed: per row
    ]
    params = {"country_column": "country"}
    for countries in cases:
        df = pl.DataFrame(
            {"pc": pcs, "country": countries}, schema_overrides={"country": pl.String}
        )
        per_row = _apply(df, "pc", "postcode_district", params)
        for_frame = df.select(generalise_expr("pc", "postcode_district", params, AS_OF, frame=df))[
            "pc"
        ].to_list()
        assert for_frame == per_row, countries
    # An empty frame, and a frame without the country column, keep the per-row form.
    empty = pl.DataFrame({"pc": [], "country": []}, schema={"pc": pl.String, "country": pl.String})
    assert (
        empty.select(generalise_expr("pc", "postcode_district", params, AS_OF, frame=empty)).height
        == 0
    )


def test_postcode_district_for_one_country_does_not_run_the_per_row_rule() -> None:
    from engine.pseudonym.generalise import _one_country

    df = pl.DataFrame({"country": ["EU-DE", "DE", " de "]})
    assert _one_country(df, "country") == (True, "DE")
    assert _one_country(pl.DataFrame({"country": ["DE", "GB"]}), "country")[0] is False
    assert _one_country(pl.DataFrame({"country": ["DE", "FR"]}), "country")[0] is True
    assert _one_country(None, "country") == (False, None)
