"""Data contracts as Polars expressions: each declared column cast to its declared type (a
value that does not fit becomes null) and one boolean expression per check, true where a row
fails it. engine/sources.py evaluates them all in one lazy pass per source.

Reason codes name the check and the field ("type:credit_score", "format:email"), never a
value.
"""

from __future__ import annotations

import functools
import operator
from datetime import date, datetime, timedelta

import phonenumbers
import polars as pl

from engine.config import ColumnSpec, ColumnType
from engine.errors import BadInputError, ConfigError

DTYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STR: pl.String(),
    ColumnType.INT: pl.Int64(),
    ColumnType.FLOAT: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.DATE: pl.Date(),
    ColumnType.DATETIME: pl.Datetime("us"),
}

_EMAIL = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# E.164 with optional separators, or a national number with a trunk 0.
_PHONE = r"^(?:\+[1-9][0-9]{6,14}|0[0-9]{6,13})$"
_COUNTRIES: tuple[str, ...] = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
FORMATS = ("email", "phone", "country", "iso_date")


def blank(value: pl.Expr) -> pl.Expr:
    """True where a string is empty or only white space (what `strip_chars() == ""` says).

    Stripping every value of a large column was most of a scan's contract-check time. Only a
    value whose first byte is not printable ASCII ('!'..'~') can be all white space (ASCII
    white space sorts before '!', every other white space character is multi-byte, so its
    first byte sorts after '~'); only those few values are stripped.
    """
    maybe = (value < "!") | (value > "~")
    return (pl.when(maybe).then(value).str.strip_chars() == "").fill_null(False)


def typed_expr(col: str, raw: pl.DataType, spec: ColumnSpec, rel: str, name: str) -> pl.Expr:
    """The column cast to its declared type; a value that does not fit becomes null."""
    target = DTYPES[spec.type]
    c = pl.col(col)
    if raw == target:
        expr = c
    elif raw == pl.String:
        s = c.str.strip_chars()
        if spec.type == ColumnType.STR:
            expr = c
        elif spec.type == ColumnType.INT:
            expr = s.cast(pl.Int64, strict=False)
        elif spec.type == ColumnType.FLOAT:
            expr = s.cast(pl.Float64, strict=False)
        elif spec.type == ColumnType.BOOL:
            expr = s.str.to_lowercase().replace_strict(
                _BOOLS, default=None, return_dtype=pl.Boolean
            )
        elif spec.type == ColumnType.DATE:
            expr = s.str.to_date("%Y-%m-%d", strict=False)
        else:
            expr = pl.coalesce(
                s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
                s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
            )
    elif spec.type == ColumnType.STR and (raw == pl.Categorical or isinstance(raw, pl.Enum)):
        expr = c.cast(pl.String)
    elif spec.type == ColumnType.INT and raw.is_integer():
        expr = c.cast(pl.Int64, strict=False)
    elif spec.type == ColumnType.INT and raw.is_float():
        expr = pl.when(c == c.round()).then(c.cast(pl.Int64, strict=False))
    elif spec.type == ColumnType.FLOAT and raw.is_numeric():
        expr = c.cast(pl.Float64)
    elif spec.type == ColumnType.DATETIME and isinstance(raw, pl.Datetime):
        if raw.time_zone is not None:  # timestamps are stored as naive UTC
            expr = c.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(target)
        else:
            expr = c.cast(target)
    elif spec.type == ColumnType.DATETIME and raw == pl.Date:
        expr = c.cast(target)
    else:
        raise BadInputError(
            f"{rel}: source '{name}' column '{col}' is stored as {raw}; the contract says "
            f"{spec.type.value}"
        )
    if spec.type == ColumnType.FLOAT:
        expr = pl.when(expr.is_finite()).then(expr)  # NaN and infinities are not amounts
    return expr


def _one_of(value: pl.Expr, allowed: list[str]) -> pl.Expr:
    """`value.is_in(allowed)`; a short list as a chain of equalities, which compare the
    string views' inline prefixes instead of hashing every value (2-3x cheaper)."""
    if not allowed or len(allowed) > 16:
        return value.is_in(pl.Series(allowed, dtype=pl.String).implode())
    return functools.reduce(operator.or_, [value == v for v in dict.fromkeys(allowed)])


def _format_ok(expr: pl.Expr, fmt: str, rel: str, name: str, col: str) -> pl.Expr:
    if fmt == "email":
        return expr.str.contains(_EMAIL)
    if fmt == "phone":
        return expr.str.replace_all(r"[ ()./-]", "").str.contains(_PHONE)
    if fmt == "country":
        return expr.is_in(pl.Series(_COUNTRIES).implode())
    if fmt == "iso_date":
        return expr.str.to_date("%Y-%m-%d", strict=False).is_not_null()
    raise ConfigError(
        f"{rel}: source '{name}' column '{col}' names unknown format '{fmt}' "
        f"(known: {', '.join(FORMATS)})"
    )


def check_exprs(
    col: str,
    raw: pl.Expr,
    typed: pl.Expr,
    spec: ColumnSpec,
    as_of: date,
    rel: str,
    name: str,
) -> list[tuple[str, pl.Expr]]:
    """(reason code, boolean expression true where the row fails) per check."""
    out: list[tuple[str, pl.Expr]] = []

    def reason(code: str, failed: pl.Expr) -> None:
        out.append((f"{code}:{col}", failed))

    missing = raw.is_null()
    if spec.type == ColumnType.STR:
        missing = missing | blank(typed)
    if spec.required:
        reason("required", missing)
    reason("type", raw.is_not_null() & typed.is_null())
    present = typed.is_not_null()
    if spec.min is not None or spec.max is not None:
        if spec.type not in (ColumnType.INT, ColumnType.FLOAT):
            raise ConfigError(f"{rel}: source '{name}' column '{col}': min/max need int or float")
        low = typed < spec.min if spec.min is not None else pl.lit(False)
        high = typed > spec.max if spec.max is not None else pl.lit(False)
        reason("range", present & (low | high))
    if spec.format is not None:
        if spec.type != ColumnType.STR:
            raise ConfigError(f"{rel}: source '{name}' column '{col}': format needs type str")
        reason("format", present & ~missing & ~_format_ok(typed, spec.format, rel, name, col))
    if spec.allowed is not None:
        reason("not_allowed", present & ~_one_of(typed.cast(pl.String), spec.allowed))
    if spec.not_future:
        if spec.type == ColumnType.DATE:
            reason("future", typed > pl.lit(as_of))
        elif spec.type == ColumnType.DATETIME:
            # Anything on the refresh day itself is allowed; the day after is the future.
            limit = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
            reason("future", typed >= pl.lit(limit, dtype=pl.Datetime("us")))
        else:
            raise ConfigError(f"{rel}: source '{name}' column '{col}': not_future needs a date")
    return out
