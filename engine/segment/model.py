"""The Segmentation value handed from segment to kyc and store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True)
class GateResult:
    name: str  # "stability", "min_size", "silhouette"
    passed: bool
    value: float
    threshold: float
    detail: str = ""


@dataclass(frozen=True)
class PersonaProfile:
    persona_id: int
    name: str  # readable, generated from the profile
    size: int
    share: float
    traits: list[str]  # plain-words distinguishing traits
    centroid: dict[str, float]
    kpis: dict[str, float | None] = field(default_factory=dict)
    # 95% interval [low, high] of each KPI's mean; None where the KPI is suppressed.
    kpi_intervals: dict[str, list[float] | None] = field(default_factory=dict)
    # Most common value of each descriptor (customer_type, age_band, ...) and its share;
    # only published when that value's count is at least the k-anonymity minimum.
    descriptors: dict[str, str] = field(default_factory=dict)
    stability: float | None = None  # mean bootstrap Jaccard of this persona


@dataclass(frozen=True)
class Segmentation:
    strategy: str
    params: dict[str, Any]
    assignments: pl.DataFrame  # customer_id (token), persona_id, persona_name; sorted by token
    personas: list[PersonaProfile]
    gates: list[GateResult]
    # Cells suppressed for k-anonymity in published tables (lineage records these).
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    # Population mean and std per clustering feature: the yardstick for trait z-scores and
    # for centroid shift between versions.
    population: dict[str, dict[str, float]] = field(default_factory=dict)
    # Extra JSON documents written beside personas.json (file name -> document), e.g. the
    # predictive strategy's model_card.json; signed with the version like every output.
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # KPI -> unit from the declared kind (boolean: share, money: money); others follow the
    # naming convention of engine/report/units.py.
    kpi_units: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return all(g.passed for g in self.gates)
