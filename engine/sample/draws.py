"""Drawing blocks for the sample's tables: the customers' arrays and vectorised categorical,
id and date draws that every table shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from engine.sample import personas as P
from engine.sample.geo import REGIONS
from engine.sample.people import _digits

US_REGION = np.array([r.jurisdiction.startswith("US-") for r in REGIONS])
DAY_US = 86_400_000_000
SEASONAL = P.NAMES.index("seasonal_microbusiness")
RES = 1 << 16  # resolution of categorical draws (uint16)
MONTH_US = 365 * DAY_US // 12  # a twelfth of the year, in microseconds (exact)


@dataclass
class Customers:
    """Per-customer arrays the child tables draw on (index = crm row)."""

    ids: pl.Series
    jurisdiction: pl.Series
    region: np.ndarray
    persona: np.ndarray
    minor: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.persona)

    def block(self, start: int, stop: int) -> Customers:
        """Customers [start, stop): child tables of a large sample are drawn block by block."""
        return Customers(
            ids=self.ids.slice(start, stop - start),
            jurisdiction=self.jurisdiction.slice(start, stop - start),
            region=self.region[start:stop],
            persona=self.persona[start:stop],
            minor=self.minor[start:stop],
            score=self.score[start:stop],
        )


def cdf_table(cdf: np.ndarray) -> np.ndarray:
    """Inverse-CDF lookup table: row g of `cdf` -> the category of each of the RES draws."""
    mid = (np.arange(RES) + 0.5) / RES
    cdf = np.array(cdf, dtype=np.float64)
    cdf[:, -1] = 1.0  # rounding must never leave a draw past the last category
    return np.concatenate([np.searchsorted(row, mid, side="right") for row in cdf]).astype(np.uint8)


def draw(rng: np.random.Generator, table: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One category per row from its group's lookup table: a uint16 draw and one gather."""
    r = rng.integers(0, RES, len(group), dtype=np.uint16)
    return table[(group.astype(np.int64, copy=False) << 16) | r]


def draw_codes(
    rng: np.random.Generator, group: np.ndarray, dists: list[dict[str, float]]
) -> tuple[list[str], np.ndarray]:
    """Sorted labels and one drawn label code per row, from the row's group's distribution.

    Probabilities are quantised to 2**-16; drawing is a table lookup, with no per-group
    masks or binary searches over tens of millions of rows.
    """
    labels = sorted({k for d in dists for k in d})
    weights = np.array([[d.get(label, 0.0) for label in labels] for d in dists])
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    return labels, draw(rng, cdf_table(cdf), group)


def categorical(
    rng: np.random.Generator, group: np.ndarray, dists: list[dict[str, float]]
) -> pl.Series:
    """Draw a category per row from the distribution of the row's group (persona/region)."""
    labels, codes = draw_codes(rng, group, dists)
    return pl.Series(labels).gather(codes.astype(np.uint32))


def serial_ids(prefix: str, count: int, width: int, first: int = 1) -> pl.Series:
    """Sequential fixed-width ids ("LN0000000001"): string order equals generation order."""
    numbers = np.arange(first, first + count)
    return (
        pl.select(pl.concat_str(pl.lit(prefix), pl.lit(_digits(numbers, width))))["literal"]
        if count
        else pl.Series([], dtype=pl.String)
    )


def days_before(as_of: date, days: np.ndarray) -> pl.Series:
    return pl.Series(np.datetime64(as_of, "D") - days.astype("timedelta64[D]"))


def normal(
    rng: np.random.Generator, means: np.ndarray, sds: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    return means[idx] + sds[idx] * rng.standard_normal(len(idx))
