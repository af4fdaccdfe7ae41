"""Normalisation before tokenising, so the same person gets the same token in every source.

    email         trim, lower-case
    phone         E.164 via phonenumbers (libphonenumber), region from a column or a default
    national_id   strip separators (space, - . /), upper-case

Values that fail normalisation: blank values (and phone values without a single digit)
become null: there is nothing to tokenise. A phone
number that libphonenumber cannot parse as a possible number is kept in a *marked* form,
"~" followed by its digits: it still tokenises consistently across sources (same digits,
same token), can never collide with a valid E.164 value (those start with "+"), and a KYC
re-identification shows the "~" so operations know the number was never validated. We do
not null them: a KYC record must not lose an identifier because it is badly formatted.

Spec strings, as the enforcement plan carries them: "email", "phone", "phone:<column>"
(the region is read from that column of the same row, e.g. "country"), "national_id".
"""

from __future__ import annotations

import phonenumbers
import polars as pl

from engine.errors import PolicyError

NORMALISERS = ("email", "phone", "national_id")
UNNORMALISED_MARK = "~"
# No default region: guessing one would turn a German national number into a wrong UK
# E.164 value; without a region only "+"-prefixed numbers parse, the rest are marked.
DEFAULT_PHONE_REGION: str | None = None

# Jurisdiction tags and near-ISO names we meet in country columns -> ISO 3166-1 alpha-2.
_REGION_ALIASES = {"UK": "GB", "EL": "GR"}


def _region(country: str | None, default: str | None) -> str | None:
    if not country:
        return default
    c = country.strip().upper()
    if "-" in c:  # jurisdiction tags: "EU-DE" -> "DE", "US-CA" -> "US"
        head, _, tail = c.partition("-")
        c = tail if head == "EU" else head
    return _REGION_ALIASES.get(c, c) if len(c) == 2 else default


def e164(value: str, region: str | None) -> str | None:
    """One phone value -> E.164, the marked digits form when it cannot be parsed, or None
    when it holds no digits at all."""
    try:
        num = phonenumbers.parse(value, region)
        if phonenumbers.is_possible_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = "".join(ch for ch in value if ch.isdigit())
    return UNNORMALISED_MARK + digits if digits else None


def _phone_batch(s: pl.Series, default_region: str | None) -> pl.Series:
    """Parse each distinct (value, region) pair once, then map back: libphonenumber is a
    Python library, so the loop runs over unique pairs, not rows."""
    df = s.struct.unnest() if s.dtype == pl.Struct else s.to_frame("v")
    df = df.rename(dict(zip(df.columns, ["v", "c"][: df.width], strict=True)))
    if "c" not in df.columns:
        df = df.with_columns(c=pl.lit(None, dtype=pl.String))
    df = df.with_columns(pl.col("v").str.strip_chars(), pl.col("c").cast(pl.String))
    uniq = df.filter(pl.col("v").is_not_null() & (pl.col("v") != "")).unique()
    out = [
        e164(v, _region(c, default_region))
        for v, c in zip(uniq["v"].to_list(), uniq["c"].to_list(), strict=True)
    ]
    mapped = uniq.with_columns(n=pl.Series(out, dtype=pl.String))
    res = df.join(mapped, on=["v", "c"], how="left", nulls_equal=True, maintain_order="left")
    return res["n"].rename(s.name)


def email_expr(expr: pl.Expr) -> pl.Expr:
    e = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
    return pl.when(e == "").then(None).otherwise(e)


def national_id_expr(expr: pl.Expr) -> pl.Expr:
    e = expr.cast(pl.String).str.replace_all(r"[\s\-./]", "").str.to_uppercase()
    return pl.when(e == "").then(None).otherwise(e)


def phone_expr(
    expr: pl.Expr, region_col: str | None = None, default_region: str | None = DEFAULT_PHONE_REGION
) -> pl.Expr:
    src = (
        pl.struct(expr.cast(pl.String), pl.col(region_col)) if region_col else expr.cast(pl.String)
    )
    return src.map_batches(lambda s: _phone_batch(s, default_region), return_dtype=pl.String)


def normalise_expr(column: str, spec: str | None) -> pl.Expr:
    """The normalised form of pl.col(column) under `spec` (None: cast to string only)."""
    col = pl.col(column)
    if spec is None:
        return col.cast(pl.String)
    name, _, arg = spec.partition(":")
    if name == "email" and not arg:
        return email_expr(col).alias(column)
    if name == "national_id" and not arg:
        return national_id_expr(col).alias(column)
    if name == "phone":
        return phone_expr(col, arg or None).alias(column)
    raise PolicyError(f"unknown normaliser '{spec}' (known: {', '.join(NORMALISERS)})")
