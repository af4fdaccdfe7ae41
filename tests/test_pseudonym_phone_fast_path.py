"""The vectorised phone fast path agrees with libphonenumber on every generated number.

The corpus covers every country the sample's jurisdictions name, in international and
national forms, with spaces, dashes, dots and brackets, trunk prefixes, "(0)", too short
and too long numbers, and region columns given as ISO codes, jurisdiction tags or nothing.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.pseudonym.normalise import (
    FAST_PHONE_REGIONS,
    _fast_e164,
    _phone_batch,
    _region,
    e164,
)

CALLING = {"BR": "55", "DE": "49", "ES": "34", "FR": "33", "GB": "44", "IT": "39", "NL": "31",
           "SG": "65", "US": "1"}  # fmt: skip
TAGS = {"BR": "BR", "DE": "EU-DE", "ES": "EU-ES", "FR": "EU-FR", "GB": "UK", "IT": "EU-IT",
        "NL": "EU-NL", "SG": "SG", "US": "US-CA"}  # fmt: skip


def _corpus(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    regions = sorted(CALLING)
    values: list[str] = []
    countries: list[str | None] = []
    for i in range(n):
        region = regions[i % len(regions)]
        cc = CALLING[region]
        length = int(rng.integers(3, 15))
        lead = str(rng.integers(0, 10))
        national = lead + "".join(str(d) for d in rng.integers(0, 10, size=length - 1))
        form = int(rng.integers(0, 10))
        if form == 0:
            v = f"+{cc}{national}"
        elif form == 1:
            cut = int(rng.integers(1, length))
            v = f"+{cc} {national[:cut]} {national[cut:]}"
        elif form == 2:
            cut = int(rng.integers(1, length))
            v = f"+{cc}-{national[:cut]}-{national[cut:]}"
        elif form == 3:
            v = f"+{cc} (0){national}"
        elif form == 4:
            v = f"0{national}"
        elif form == 5:
            v = f"({national[:3]}) {national[3:6]}-{national[6:]}"
        elif form == 6:
            v = f"00{cc} {national}"
        elif form == 7:
            v = f"+{cc}.{national[:4]}.{national[4:]}"
        elif form == 8:
            v = f"+{cc}0{national}"  # trunk prefix written after the calling code
        else:
            v = f" +{cc} {national} "
        values.append(v)
        pick = i % 4
        countries.append(
            region if pick == 0 else TAGS[region] if pick == 1 else None if pick == 2 else "DE"
        )
    return pl.DataFrame({"v": values, "c": countries}, schema={"v": pl.String, "c": pl.String})


def test_fast_path_covers_every_sample_country() -> None:
    assert set(CALLING) == set(FAST_PHONE_REGIONS)


def test_fast_path_and_fallback_agree_with_libphonenumber_on_a_large_corpus() -> None:
    df = _corpus(30_000, seed=11)
    got = _phone_batch(df.select(pl.struct("v", "c")).to_series(), None).to_list()
    want = [e164(v.strip(), _region(c, None)) if v.strip() else None for v, c in df.iter_rows()]
    mismatches = [(v, c, g, w) for (v, c), g, w in zip(df.iter_rows(), got, want, strict=True)
                  if g != w]  # fmt: skip
    assert not mismatches, mismatches[:10]
    # The fast path must actually carry the international forms (else this proves nothing).
    fast = _fast_e164(df["v"].str.strip_chars()).drop_nulls().len() / df.height
    assert fast > 0.3


def test_every_possible_length_and_national_prefix_per_country() -> None:
    values = [
        f"+{cc}{lead}{'5' * (length - 1)}"
        for cc in CALLING.values()
        for lead in "0123456789"
        for length in range(1, 18)
    ]
    df = pl.DataFrame({"v": values})
    got = _phone_batch(df["v"], None).to_list()
    assert got == [e164(v, None) for v in values]
