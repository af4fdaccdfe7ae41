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

Phones take a vectorised fast path first (see `_fast_e164`): international numbers written
as "+" and digits, with optional spaces or dashes, whose country code is one we know the
rules of. Everything else, and every number the fast path is not sure about, goes to
libphonenumber, once per distinct (value, region). The fast path is exact, not a heuristic:
a test compares it with libphonenumber on tens of thousands of generated numbers of every
covered country and format, and the benchmark on a million.

Spec strings, as the enforcement plan carries them: "email", "phone", "phone:<column>"
(the region is read from that column of the same row, e.g. "country"), "national_id".
"""

from __future__ import annotations

from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, region_code_for_country_code

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


# Country calling codes with a fast path: those of the regions personagov's jurisdictions
# name. Adding one is safe: the rules below are read from libphonenumber's own metadata.
FAST_PHONE_REGIONS = ("BR", "DE", "ES", "FR", "GB", "IT", "NL", "SG", "US")
_INTERNATIONAL = r"^\+[0-9][0-9 \-]*$"


@cache
def _fast_rules() -> tuple[tuple[str, str | None, tuple[int, ...]], ...]:
    """(calling code, national prefix pattern, possible national lengths) per fast region.

    libphonenumber reads "+<digits>" as: the first 1-3 digits that form an assigned calling
    code, then the national number, from which it strips a national prefix when the
    region's `national_prefix_for_parsing` matches at its start, then it checks the
    national number's length against the region's possible lengths (local-only included).
    A code is used here only if no shorter prefix of it is itself a calling code.
    """
    rules = []
    for region in FAST_PHONE_REGIONS:
        cc = phonenumbers.country_code_for_region(region)
        code = str(cc)
        if any(int(code[:i]) in COUNTRY_CODE_TO_REGION_CODE for i in range(1, len(code))):
            continue
        meta = PhoneMetadata.metadata_for_region_or_calling_code(
            cc, region_code_for_country_code(cc)
        )
        if meta is None or meta.general_desc is None:
            continue
        desc = meta.general_desc
        lengths = tuple(sorted(set(desc.possible_length) | set(desc.possible_length_local_only)))
        rules.append((code, meta.national_prefix_for_parsing or None, lengths))
    return tuple(rules)


def _fast_e164(values: pl.Series) -> pl.Series:
    """E.164 or the marked form for the numbers the fast path is sure of; null otherwise.

    Sure means: "+", digits, spaces or dashes only; a fast calling code; and a national
    number that does not start with the region's national prefix (libphonenumber would
    strip it: those go to libphonenumber). The answer then depends on the length only.
    The shared pieces (digits, length) are computed once, not once per calling code.
    """
    rules = _fast_rules()
    df = (
        values.rename("v")
        .to_frame()
        .with_columns(
            pl.col("v").str.contains(_INTERNATIONAL).fill_null(False).alias("intl"),
            pl.col("v").str.replace_all(r"[ \-]", "").str.slice(1).alias("body"),
        )
    )
    body, size = pl.col("body"), pl.col("body").str.len_bytes().cast(pl.Int64)
    # The fast calling codes are prefix-free (`_fast_rules`): a number starts with at most
    # one, so one alternation over every code's national prefix tells whether it starts with
    # its own code's; a regex per code went over every number once per code.
    national = [f"{code}(?:{prefix})" for code, prefix, _ in rules if prefix]
    if national:
        df = df.with_columns(body.str.contains(f"^(?:{'|'.join(national)})").alias("national"))
    possible = pl.lit(None, dtype=pl.Boolean)
    for code, prefix, lengths in rules:
        sure = body.str.starts_with(code)
        if prefix:
            sure = sure & ~pl.col("national")
        fits = (size - len(code)).is_in(pl.Series(lengths, dtype=pl.Int64).implode())
        possible = pl.when(sure).then(fits).otherwise(possible)
    formatted = pl.when(possible).then(pl.lit("+") + body).otherwise(UNNORMALISED_MARK + body)
    out = df.select(pl.when(pl.col("intl") & possible.is_not_null()).then(formatted))
    return out.to_series().rename(values.name)


def _phone_batch(s: pl.Series, default_region: str | None) -> pl.Series:
    """The fast path where it is sure; libphonenumber for the rest, once per distinct
    (value, region) pair, then mapped back (it is a Python library: the loop runs over
    unique pairs, not rows)."""
    df = s.struct.unnest() if s.dtype == pl.Struct else s.to_frame("v")
    df = df.rename(dict(zip(df.columns, ["v", "c"][: df.width], strict=True)))
    if "c" not in df.columns:
        df = df.with_columns(c=pl.lit(None, dtype=pl.String))
    df = df.with_columns(pl.col("v").str.strip_chars(), pl.col("c").cast(pl.String))
    df = df.with_columns(_fast_e164(df["v"]).alias("f"))
    slow = pl.col("v").is_not_null() & (pl.col("v") != "") & pl.col("f").is_null()
    uniq = df.filter(slow).select("v", "c").unique()
    if uniq.height == 0:  # the fast path was sure of every number: nothing to map back
        return df.get_column("f").rename(s.name)
    out = [
        e164(v, _region(c, default_region))
        for v, c in zip(uniq["v"].to_list(), uniq["c"].to_list(), strict=True)
    ]
    mapped = uniq.with_columns(n=pl.Series(out, dtype=pl.String))
    res = df.join(mapped, on=["v", "c"], how="left", nulls_equal=True, maintain_order="left")
    return res.select(pl.coalesce("f", "n"))["f"].rename(s.name)


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
