"""Features: per-customer Polars features built only from governed frames.

Contract (owned here):
    build_features(governed: GovernedFrames, as_of: date) -> FeatureFrame
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class FeatureFrame:
    # One row per kept customer, sorted by `customer_id` (the token), numeric feature
    # columns, plus descriptive (non-clustered) columns listed in `descriptors`.
    frame: pl.DataFrame
    features: list[str]  # numeric columns used for clustering, in order
    descriptors: list[str]  # e.g. customer_type, employment_type, age_band: for profiles
