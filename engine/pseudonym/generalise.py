"""Generalisation of quasi-identifiers, selected by the enforcement plan.

    age_band            date of birth -> "<18", "18-24", "25-34", ..., "65+" as of the refresh
                        date (params: "bands" = ascending lower edges, default 18/25/.../65)
    postcode_district   the leading, coarse part of a postcode (per-country rule below)
    income_band         amount -> "0-15k", "15k-30k", ..., "150k+" (params: "bands" edges)
    date_month          date/datetime -> first day of its month (Date)
    date_year           date/datetime -> first day of its year (Date)
    top_code            values above params["max"] become params["max"]
    bottom_code         values below params["min"] become params["min"]

Postcode districts (params "country_column" names the row's country, else "country" gives
one for all rows, else the generic rule applies):

    GB/UK  outward code ("SW1A 1AA" -> "SW1A"; without a space: all but the last 3 chars)
    US     ZIP3, first 3 digits          DE  first 2 digits (Leitregion)
    FR     first 2 (departement)         ES  first 2 (provincia)
    IT     first 3                       NL  4 digits without the letters
    SG     first 2 (postal sector)       BR  first 5 digits of the CEP (sub-region)
    other  the part before the first space, else the first 3 characters

Unknown methods or missing parameters are a PolicyError: a generalisation the engine cannot
apply must never let the raw value through.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl

from engine.errors import PolicyError

DEFAULT_AGE_EDGES = [18, 25, 35, 45, 55, 65]
DEFAULT_INCOME_EDGES = [15_000, 30_000, 50_000, 75_000, 100_000, 150_000]


def _age(dob: pl.Expr, as_of: date) -> pl.Expr:
    """Completed years as of `as_of` (birthday not yet reached this year: one less)."""
    d = dob.cast(pl.Date)
    before_birthday = (d.dt.month() > as_of.month) | (
        (d.dt.month() == as_of.month) & (d.dt.day() > as_of.day)
    )
    return (
        pl.lit(as_of.year, pl.Int32) - d.dt.year().cast(pl.Int32) - before_birthday.cast(pl.Int32)
    )


def _edges(params: dict[str, Any], default: list[int], method: str) -> list[int]:
    edges = params.get("bands", default)
    if (
        not isinstance(edges, list)
        or not edges
        or not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges)
        or sorted(set(edges)) != edges
    ):
        raise PolicyError(f"{method}: 'bands' must be a non-empty ascending list of numbers")
    return [int(e) for e in edges]


def _bands(x: pl.Expr, edges: list[int], labels: list[str]) -> pl.Expr:
    """Left-closed bands [edge_i, edge_i+1) as a when-chain (Expr.cut is deprecated in
    Polars 2); a null value stays null rather than falling through to the last band."""
    chain: Any = pl.when(x.is_null()).then(pl.lit(None, dtype=pl.String))
    for edge, label in zip(edges, labels, strict=False):
        chain = chain.when(x < edge).then(pl.lit(label))
    return chain.otherwise(pl.lit(labels[-1]))


def _age_band(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    edges = _edges(params, DEFAULT_AGE_EDGES, "age_band")
    labels = [f"<{edges[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)]
    labels.append(f"{edges[-1]}+")
    lo, hi = edges[0] - 1, edges[-1]
    if hi - lo > 1000:
        return _bands(_age(expr, as_of), edges, labels)
    # Ages are whole numbers: each age from one below the first edge to the last edge is
    # looked up once (any other age has the first or last band), five times cheaper than a
    # when-chain that builds a string column per band. Same labels, null stays null.
    ages = list(range(lo, hi + 1))
    bands = [labels[bisect.bisect_right(edges, a)] for a in ages]
    return _age(expr, as_of).clip(lo, hi).replace_strict(ages, bands, return_dtype=pl.String)


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n else str(n)


def _income_band(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    edges = _edges(params, DEFAULT_INCOME_EDGES, "income_band")
    labels = [f"0-{_k(edges[0])}"]
    labels += [f"{_k(lo)}-{_k(hi)}" for lo, hi in itertools.pairwise(edges)]
    labels.append(f"{_k(edges[-1])}+")
    return _bands(expr.cast(pl.Float64), edges, labels)


def _digits(e: pl.Expr, n: int) -> pl.Expr:
    return e.str.replace_all(r"\D", "").str.slice(0, n)


def _before(e: pl.Expr, sep: str) -> pl.Expr:
    """The part before the first `sep` (all of it without one): split(sep).list.first()
    without building a list per row."""
    return e.str.splitn(sep, 2).struct.field("field_0")


# Countries whose district is the first n digits of the postcode.
_DISTRICT_DIGITS = {"US": 3, "DE": 2, "FR": 2, "ES": 2, "IT": 3, "NL": 4, "SG": 2, "BR": 5}


def _gb_district(pc: pl.Expr) -> pl.Expr:
    compact = pc.str.replace_all(r"\s", "")
    return (
        pl.when(pc.str.contains(" "))
        .then(_before(pc, " "))
        .otherwise(compact.str.slice(0, compact.str.len_chars() - 3))
    )


def _district_rule(country: str, pc: pl.Expr) -> pl.Expr | None:
    if country == "GB":
        return _gb_district(pc)
    n = _DISTRICT_DIGITS.get(country)
    return None if n is None else _digits(pc, n)


_COUNTRY_ALIASES = {"UK": "GB"}


def _country_code(e: pl.Expr) -> pl.Expr:
    """ "EU-DE" -> "DE", "US-CA" -> "US", "UK" -> "GB", "de" -> "DE"."""
    c = e.cast(pl.String).str.strip_chars().str.to_uppercase()
    c = pl.when(c.str.starts_with("EU-")).then(c.str.slice(3)).otherwise(_before(c, "-"))
    return c.replace(_COUNTRY_ALIASES)


def _rule_key(code: str | None) -> str | int | None:
    """Which district rule a country code takes: "GB", a digit count, or None (generic)."""
    return "GB" if code == "GB" else _DISTRICT_DIGITS.get(code or "")


def _one_country(frame: pl.DataFrame | None, column: str) -> tuple[bool, str | None]:
    """(True, code) when every row of `frame` takes the district rule of country `code`
    (None: the generic rule), judged on the column's distinct values: a jurisdiction's rows
    are nearly always one country. The per-row form costs ten times more (at 1M EU-DE,
    160k postcodes: 0.16 CPU s): a slice by a per-row length and the GB branch over every
    row."""
    if frame is None or column not in frame.columns:
        return False, None
    distinct = frame.get_column(column).unique().to_frame("c")
    codes = distinct.select(_country_code(pl.col("c"))).to_series()
    keys = {_rule_key(c) for c in codes.to_list()}
    if len(keys) != 1:
        return False, None
    return True, codes[0]


def _postcode_district(
    expr: pl.Expr, params: dict[str, Any], as_of: date, frame: pl.DataFrame | None = None
) -> pl.Expr:
    pc = expr.cast(pl.String).str.strip_chars().str.to_uppercase()
    generic = pl.when(pc.str.contains(" ")).then(_before(pc, " ")).otherwise(pc.str.slice(0, 3))
    code: str | None
    if "country" in params:
        given = str(params["country"]).upper()
        one, code = True, _COUNTRY_ALIASES.get(given, given.removeprefix("EU-"))
    elif "country_column" in params:
        one, code = _one_country(frame, str(params["country_column"]))
    else:
        one, code = True, None
    if one:
        rule = None if code is None else _district_rule(code, pc)
        out = generic if rule is None else rule
    else:
        # One rule per row's country: the digit countries share one digit extraction with a
        # per-row length (a when-chain of one branch per country computed every branch over
        # every row, nine regex passes where one does).
        country = _country_code(pl.col(str(params["country_column"])))
        n = country.replace_strict(_DISTRICT_DIGITS, default=None, return_dtype=pl.UInt32)
        out = (
            pl.when(country == "GB")
            .then(_gb_district(pc))
            .when(n.is_not_null())
            .then(pc.str.replace_all(r"\D", "").str.slice(0, n))
            .otherwise(generic)
        )
    return pl.when(out == "").then(None).otherwise(out)


def _date_month(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    return expr.cast(pl.Date).dt.truncate("1mo")


def _date_year(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    return expr.cast(pl.Date).dt.truncate("1y")


def _bound(params: dict[str, Any], name: str, method: str) -> float:
    v = params.get(name)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise PolicyError(f"{method}: parameter '{name}' (a number) is required")
    return float(v)


def _top_code(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    return expr.clip(upper_bound=_bound(params, "max", "top_code"))


def _bottom_code(expr: pl.Expr, params: dict[str, Any], as_of: date) -> pl.Expr:
    return expr.clip(lower_bound=_bound(params, "min", "bottom_code"))


_METHODS: dict[str, Callable[..., pl.Expr]] = {
    "age_band": _age_band,
    "postcode_district": _postcode_district,
    "income_band": _income_band,
    "date_month": _date_month,
    "date_year": _date_year,
    "top_code": _top_code,
    "bottom_code": _bottom_code,
}
METHODS = tuple(_METHODS)


def generalise_expr(
    column: str,
    method: str,
    params: dict[str, Any],
    as_of: date,
    *,
    frame: pl.DataFrame | None = None,
) -> pl.Expr:
    """pl.col(column) generalised by `method`, named `column`; nulls stay null.

    `frame`, when given, is the frame the expression will run on: a method may then choose
    a cheaper form of itself that gives the same values on exactly these rows (postcode
    districts of one country). Without it the expression is right for any frame."""
    fn = _METHODS.get(method)
    if fn is None:
        raise PolicyError(f"unknown generalisation method '{method}' (known: {', '.join(METHODS)})")
    if not isinstance(params, dict):
        raise PolicyError(f"{method}: params must be a table")
    if method == "postcode_district":
        return _postcode_district(pl.col(column), params, as_of, frame).alias(column)
    return fn(pl.col(column), params, as_of).alias(column)
