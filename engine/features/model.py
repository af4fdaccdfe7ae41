"""FeatureFrame: the per-subject features one refresh built, and what it could not build."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from engine.features.spec import FeatureSpec

# The governed subject key: enforce writes every source's subject column as this token.
KEY = "customer_id"


@dataclass(frozen=True)
class FeatureFrame:
    # One row per kept subject, sorted by `customer_id` (the token): numeric cluster
    # features, has_<source> indicators, descriptor labels, KPI/outcome and input columns.
    frame: pl.DataFrame
    features: list[str]  # numeric columns used for clustering, in declaration order
    descriptors: list[str]  # labels for profiles (shares per persona)
    # has_<source> columns (0/1) marking subjects whose values from that source are fills.
    indicators: list[str] = field(default_factory=list)
    # feature -> why it could not be computed (source or column absent under this plan).
    unavailable: dict[str, str] = field(default_factory=dict)
    as_of: date | None = None
    # KPI and outcome columns -> kind ("boolean" | "numeric" | "money"); null = not observed.
    kpis: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # built only for KYC facts / combines
    specs: dict[str, FeatureSpec] = field(default_factory=dict)  # the built ones
    # Every feature declared for this purpose (built or not): KYC fills for withheld facts.
    specs_declared: dict[str, FeatureSpec] = field(default_factory=dict)
