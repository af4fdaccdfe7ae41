"""Synthetic identities: names, e-mails, phones, national IDs, addresses per jurisdiction.

Every identifier is a bijection of the customer number, so each is unique per customer and
distinctive enough that a test can grep outputs for it without false positives. All domains
are reserved `example.*` domains. Rows arrive grouped by region (contiguous slices), so each
region's formats are built on its slice only, never with a per-row Python loop.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.errors import UsageError
from engine.sample.geo import (
    CITIES,
    GIVEN,
    MIDDLE,
    NAME_CAPACITY,
    REGIONS,
    STEMS,
    STREETS,
    SUFFIXES,
)

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DNI = "TRWAGMYFPDXBNJZSQVHLCKE"  # Spanish DNI check letters (number mod 23)
_NRIC = "ABCDEFGHIZJ"


def _digits(x: np.ndarray, width: int) -> pl.Series:
    """Zero-padded decimal strings of non-negative ints below 10**width."""
    return (pl.Series(x.astype(np.int64) + 10**width)).cast(pl.String).str.slice(1)


def _pick(options: str | tuple[str, ...], idx: np.ndarray) -> pl.Series:
    return pl.Series(list(options)).gather(idx.astype(np.int64) % len(options))


def _perm(n: np.ndarray, mult: int, add: int, modulus: int) -> np.ndarray:
    """Affine bijection on [0, modulus) (mult coprime to modulus): unique, scrambled numbers."""
    return (n.astype(np.int64) * mult + add) % modulus


def _national_id(region: str, n: np.ndarray, rank: np.ndarray, birth: np.ndarray) -> pl.Series:
    q9 = _perm(n, 69_069, 4_321, 10**9)
    q8 = _perm(n, 48_271, 1_234, 10**8)
    frame = pl.DataFrame({"q9": _digits(q9, 9), "q8": _digits(q8, 8)})
    if region == "BR":  # CPF ddd.ddd.ddd-dd
        chk = _digits(q9 % 97, 2)
        expr = pl.format(
            "{}.{}.{}-{}",
            pl.col("q9").str.slice(0, 3),
            pl.col("q9").str.slice(3, 3),
            pl.col("q9").str.slice(6, 3),
            pl.lit(chk),
        )
    elif region == "EU-DE":  # Steuer-ID: 11 digits, first not zero
        expr = pl.format("7{}{}", pl.col("q9"), pl.lit(_digits(q9 % 7, 1)))
    elif region == "EU-ES":  # DNI: 8 digits + check letter
        expr = pl.format("{}{}", pl.col("q8"), pl.lit(_pick(_DNI, q8 % 23)))
    elif region == "EU-FR":  # NIR: 13 digits + key 97 - (n mod 97)
        first13 = (1 + n % 2) * 10**12 + (birth % 100) * 10**10 + q9
        expr = pl.format(
            "{}{}", pl.lit(_digits(first13, 13)), pl.lit(_digits(97 - first13 % 97, 2))
        )
    elif region == "EU-IT":  # codice fiscale shape: 6 letters, yy, month letter, dd, Hddd, letter
        letters = [_pick(_LETTERS, (q8 // 26**k) % 26) for k in range(6)]
        expr = pl.format(
            "{}{}{}{}{}{}{}{}{}H501{}",
            *[pl.lit(s) for s in letters],
            pl.lit(_digits(birth % 100, 2)),
            pl.lit(_pick("ABCDEHLMPRST", n)),
            pl.lit(_digits(1 + n % 28, 2)),
            pl.lit(_pick(_LETTERS, q9)),
        )
    elif region == "EU-NL":  # BSN: 9 digits
        expr = pl.col("q9")
    elif region == "SG":  # NRIC: S/T + 7 digits + letter (rank keeps 7 digits unique)
        q7 = _perm(rank, 7_919, 17, 10**7)
        expr = pl.format(
            "{}{}{}",
            pl.lit(_pick("ST", q7)),
            pl.lit(_digits(q7, 7)),
            pl.lit(_pick(_NRIC, q7 % 11)),
        )
    elif region == "UK":  # NINO: 2 letters + 6 digits + A-D
        expr = pl.format(
            "{}{}{}{}",
            pl.lit(_pick("ABCEGHJKLM", q8 // 10**7)),
            pl.lit(_pick("ABCEHJKLMN", (q8 // 10**6) % 10)),
            pl.col("q8").str.slice(2, 6),
            pl.lit(_pick("ABCD", n)),
        )
    else:  # US SSN ddd-dd-dddd (US-CA and US-NY share the global numbering)
        expr = pl.format(
            "{}-{}-{}",
            pl.col("q9").str.slice(0, 3),
            pl.col("q9").str.slice(3, 2),
            pl.col("q9").str.slice(5, 4),
        )
    return frame.select(expr).to_series()


def _postcode(region: str, n: np.ndarray, rng: np.random.Generator) -> pl.Series:
    k = len(n)
    a = rng.integers(0, 10**6, size=k)
    if region == "EU-NL":
        return pl.DataFrame({"d": _digits(1000 + a % 9000, 4), "l": _pick(_LETTERS, a)}).select(
            pl.format("{} {}{}", "d", "l", pl.lit(_pick(_LETTERS, a // 26)))
        )["d"]
    if region == "UK":
        return pl.DataFrame(
            {"a": _pick(("SW1A", "EC2V", "N1", "E14", "W11", "SE1"), a), "b": _digits(a % 10, 1)}
        ).select(pl.format("{} {}{}", "a", "b", pl.lit(_pick("ABDEFGHJLNPQRSTUWXYZ", a // 7))))["a"]
    if region == "BR":
        return pl.DataFrame({"x": _digits(a % 10**5, 5), "y": _digits(a % 1000, 3)}).select(
            pl.format("{}-{}", "x", "y")
        )["x"]
    if region == "SG":
        return _digits(a % 10**6, 6)
    return _digits(a % 10**5, 5)


def identities(
    n: np.ndarray, region_idx: np.ndarray, birth_year: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """Direct identifiers and location quasi-identifiers for customers numbered `n`.

    `region_idx` must be sorted (rows grouped by region), as the generator produces them.
    """
    if len(n) and int(n.max()) >= NAME_CAPACITY:
        raise UsageError(f"sample: at most {NAME_CAPACITY} customers have unique names")
    m = _perm(n, 1_000_003, 11, NAME_CAPACITY)
    g, m = m % 8, m // 8
    mid, m = m % len(MIDDLE), m // len(MIDDLE)
    ini, m = m % 26, m // 26
    st, sf = m % len(STEMS), (m // len(STEMS)) % len(SUFFIXES)
    given_all = [name for r in REGIONS for name in GIVEN[r.jurisdiction]]
    given = pl.Series(given_all).gather(region_idx.astype(np.int64) * 8 + g)
    family = (
        pl.DataFrame({"s": _pick(STEMS, st), "f": _pick(SUFFIXES, sf)})
        .select(pl.concat_str("s", "f"))
        .to_series()
    )
    num = pl.Series((n + 1).astype(np.int64)).cast(pl.String)
    tld = pl.Series([r.tld for r in REGIONS]).gather(region_idx.astype(np.int64))
    phone_prefix = pl.Series([r.phone_prefix for r in REGIONS]).gather(region_idx.astype(np.int64))
    frame = pl.DataFrame(
        {
            "given": given,
            "middle": _pick(MIDDLE, mid),
            "initial": _pick(_LETTERS, ini),
            "family": family,
            "num": num,
            "tld": tld,
            "pp": phone_prefix,
            "phone_digits": _digits(_perm(n, 48_271, 7_654_321, 10**8), 8),
            "house": pl.Series(rng.integers(1, 250, size=len(n))).cast(pl.String),
        }
    )
    counts = np.bincount(region_idx, minlength=len(REGIONS))
    starts = np.concatenate([[0], np.cumsum(counts)])
    ids, posts, streets, geos = [], [], [], []
    for k, region in enumerate(REGIONS):
        lo, hi = int(starts[k]), int(starts[k + 1])
        if lo == hi:
            continue
        sl = n[lo:hi]
        rank = np.arange(hi - lo)
        ids.append(_national_id(region.jurisdiction, sl, rank, birth_year[lo:hi]))
        posts.append(_postcode(region.jurisdiction, sl, rng))
        street_names = STREETS[region.jurisdiction]
        streets.append(
            pl.DataFrame({"s": _pick(street_names, rng.integers(0, 1000, size=hi - lo))}).select(
                pl.format("{}, " + CITIES[region.jurisdiction], "s")
            )["s"]
        )
        lat = np.round(region.lat + rng.normal(0, 0.08, size=hi - lo), 5)
        lon = np.round(region.lon + rng.normal(0, 0.08, size=hi - lo), 5)
        geos.append(
            pl.DataFrame({"a": lat, "o": lon}).select(
                pl.format("{},{}", pl.col("a").cast(pl.String), pl.col("o").cast(pl.String))
            )["a"]
        )
    frame = frame.with_columns(
        national_id=pl.concat(ids) if ids else pl.Series([], dtype=pl.String),
        postcode=pl.concat(posts) if posts else pl.Series([], dtype=pl.String),
        street=pl.concat(streets) if streets else pl.Series([], dtype=pl.String),
        precise_geolocation=pl.concat(geos) if geos else pl.Series([], dtype=pl.String),
    )
    return frame.select(
        full_name=pl.format("{} {} {}. {}", "given", "middle", "initial", "family"),
        email=pl.format(
            "{}.{}{}@example.{}",
            pl.col("given").str.to_lowercase(),
            pl.col("family").str.to_lowercase(),
            "num",
            "tld",
        ),
        phone=pl.concat_str("pp", "phone_digits"),
        national_id="national_id",
        address=pl.format("{} {}", "house", "street"),
        postcode="postcode",
        precise_geolocation="precise_geolocation",
    )
