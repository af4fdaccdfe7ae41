"""Normalisation before tokenising, and what happens to values that fail it."""

from __future__ import annotations

import polars as pl
import pytest

from engine.errors import PolicyError
from engine.pseudonym import Keyring, Pseudonymiser, normalise_expr


def _norm(values: list[str | None], spec: str, **extra: list[str | None]) -> list[str | None]:
    df = pl.DataFrame(
        {"v": values, **extra}, schema={"v": pl.String, **dict.fromkeys(extra, pl.String)}
    )
    return df.select(normalise_expr("v", spec))["v"].to_list()


def test_email_trimmed_and_lower_cased_blank_is_null() -> None:
    assert _norm([" Ana@Example.COM\t", "", "   ", None], "email") == [
        "ana@example.com",
        None,
        None,
        None,
    ]


def test_phone_uses_the_rows_country_for_national_numbers() -> None:
    out = _norm(
        ["07911 123456", "+44 (0)7911-123456", "030 1234567", "(415) 555-0132", "07911 123456"],
        "phone:country",
        country=["UK", "GB", "EU-DE", "US-CA", None],
    )
    assert out[:4] == ["+447911123456", "+447911123456", "+49301234567", "+14155550132"]
    # No region and no "+": not guessed, kept in the marked digits form.
    assert out[4] == "~07911123456"


def test_unparseable_phones_are_marked_and_digitless_ones_nulled() -> None:
    assert _norm(["12", "call me", "+999 123", None], "phone") == ["~12", None, "~999123", None]


def test_marked_phones_tokenise_consistently_and_never_match_valid_ones() -> None:
    p = Pseudonymiser(Keyring.generate())
    df = pl.DataFrame({"phone": ["12-34", "1234", "+447911123456"]})
    toks = df.select(p.token_expr("phone", "marketing", "phone"))["phone"].to_list()
    assert toks[0] == toks[1] != toks[2]


def test_national_id_strips_separators_and_upper_cases() -> None:
    assert _norm(["ab 12-34.56/c", "123.456.789-09", " - ", None], "national_id") == [
        "AB123456C",
        "12345678909",
        None,
        None,
    ]


def test_unknown_normaliser_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown normaliser"):
        normalise_expr("v", "postal")
    with pytest.raises(PolicyError):
        normalise_expr("v", "email:country")
