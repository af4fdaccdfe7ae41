"""Declared features: what `[features.<name>]` in pgov.toml may say (pydantic, at the edge).

A feature names its source, its input column(s), a transform from a small vocabulary
(docs/segmentation.md lists it), a role, a neutral fill and the purposes that may use it.
This module only checks a declaration's shape and its references to declared columns and
types; engine/features/compile.py turns it into Polars expressions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.conditions import Condition

if TYPE_CHECKING:
    from engine.config import SourceSpec


class Transform(StrEnum):
    # Row-level: one value per row of the subjects source (or per row, then aggregated).
    VALUE = "value"
    LOG1P = "log1p"
    CLIP = "clip"
    RATIO = "ratio"
    BAND = "band"
    AGE_YEARS = "age_years"
    DAYS_SINCE = "days_since"
    MONTHS_SINCE = "months_since"
    # Per-subject aggregations over a window (one group_by per source).
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    STD = "std"
    CV = "cv"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"
    ANY = "any"
    PRESENT = "present"
    SHARE = "share"
    RECENCY_DAYS = "recency_days"
    ACTIVE_MONTHS = "active_months"
    MONTHLY_CV = "monthly_cv"
    MONTHLY_PEAK = "monthly_peak"
    # A weighted sum of other declared features (after they are built).
    COMBINE = "combine"


ROW_TRANSFORMS = frozenset(
    {
        Transform.VALUE,
        Transform.LOG1P,
        Transform.CLIP,
        Transform.RATIO,
        Transform.BAND,
        Transform.AGE_YEARS,
        Transform.DAYS_SINCE,
        Transform.MONTHS_SINCE,
    }
)
AGGREGATIONS = frozenset(set(Transform) - ROW_TRANSFORMS - {Transform.COMBINE})
# Aggregations that read no value column (only rows, times or a condition).
COLUMNLESS = frozenset(
    {Transform.COUNT, Transform.RECENCY_DAYS, Transform.ACTIVE_MONTHS, Transform.PRESENT}
)
# Transforms whose input must be a date or datetime column.
TEMPORAL = frozenset({Transform.AGE_YEARS, Transform.DAYS_SINCE, Transform.MONTHS_SINCE})
# Transforms that accept a column of any type (the value is passed through or only tested).
ANY_TYPE = frozenset({Transform.VALUE, Transform.LATEST, Transform.PRESENT, Transform.COUNT})
NUMERIC_TYPES = frozenset({"int", "float", "bool"})


class FeatureRole(StrEnum):
    CLUSTER = "cluster"  # a numeric axis the strategies cluster on
    DESCRIPTOR = "descriptor"  # a label describing personas (shares per persona)
    KPI = "kpi"  # a per-persona figure, not clustered
    OUTCOME = "outcome"  # an observed result (default, conversion): KPI and prediction label
    INPUT = "input"  # only an input of other features or a KYC fact; never reported


class OutcomeKind(StrEnum):
    BOOLEAN = "boolean"  # KPI: rate
    NUMERIC = "numeric"  # KPI: mean (and sum)
    MONEY = "money"  # aggregated in integer cents: exact, order-independent sums


PURPOSES = ("marketing_segmentation", "credit_risk_segmentation", "kyc_aml")


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str | None = None
    column: str | None = None
    columns: list[str] | None = None
    transform: Transform = Transform.VALUE
    role: FeatureRole = FeatureRole.CLUSTER
    kind: OutcomeKind = OutcomeKind.NUMERIC
    # Neutral value for subjects without the input: a number, a label (descriptors),
    # "median" (of the subjects that have a value), or absent (null = not observed).
    fill: float | str | bool | None = None
    purposes: list[str] = Field(default_factory=lambda: list(PURPOSES))
    # Aggregation window: rows with time_column in the last `window_months` calendar months
    # up to as-of (all rows up to as-of when window_months is absent).
    time_column: str | None = None
    window_months: int | None = Field(default=None, ge=1, le=120)
    where: Condition | None = None
    # Per-row value multiplied by this column before aggregating (e.g. amount x rate).
    times: str | None = None
    order_by: str | None = None  # latest: the row with the greatest order_by wins
    sign_when: Condition | None = None  # monthly_cv: rows not matching count negative
    scale_when: Condition | None = None  # monthly_cv: rows whose monthly mean scales the std
    shrink: float | None = Field(default=None, gt=0)  # towards fill by n / (n + shrink)
    per_month: bool = False
    log1p: bool = False
    scale: float | None = None
    clip: list[float | None] | None = None
    bands: list[float] | None = None
    labels: list[str] | None = None
    terms: dict[str, float] | None = None
    kyc_fact: str | None = None
    # KPIs of kind numeric or money report their sum (`<name>_sum`) beside the mean, unless
    # a sum means nothing (a sum of per-customer averages): `sum = false`.
    sum: bool = True
    # Persona wording: trait phrases and name adjectives [when high, when low] ("" = none);
    # `risk` = the direction (+1/-1) in which this feature means riskier (one "high-risk" /
    # "low-risk" adjective from all of them); `headline` weighs the adjective up in names.
    describe: list[str] | None = None
    adjective: list[str] | None = None
    risk: float | None = None
    headline: bool = False
    # Name nouns: a cluster feature's `noun` when the persona is high on it; a descriptor's
    # `nouns = {value = noun}` when that value is the persona's majority. Lowest rank wins.
    noun: str | None = None
    nouns: dict[str, str] | None = None
    noun_rank: int = 100

    def inputs(self) -> list[str]:
        """Declared columns this feature reads from its source."""
        cols: list[str] = []
        for c in [
            self.column,
            *(self.columns or []),
            self.time_column,
            self.times,
            self.order_by,
        ]:
            if c and c not in cols:
                cols.append(c)
        for cond in (self.where, self.sign_when, self.scale_when):
            if cond is not None:
                cols += sorted(cond.fields() - set(cols))
        return cols

    def value_column(self) -> str | None:
        return self.column or (self.columns[0] if self.columns else None)

    @property
    def is_aggregation(self) -> bool:
        return self.transform in AGGREGATIONS

    @model_validator(mode="after")
    def _shape(self) -> FeatureSpec:
        t = self.transform
        if t is Transform.COMBINE:
            if not self.terms:
                raise ValueError("transform 'combine' needs terms = {feature = weight, ...}")
            if self.source or self.column or self.columns:
                raise ValueError("transform 'combine' reads other features, not a source")
        else:
            if not self.source:
                raise ValueError(f"transform '{t}' needs a source")
            if self.value_column() is None and t not in COLUMNLESS | {
                Transform.ANY,
                Transform.SHARE,
            }:
                raise ValueError(f"transform '{t}' needs a column")
            if t is Transform.ANY and self.value_column() is None and self.where is None:
                raise ValueError("transform 'any' needs a boolean column or a where condition")
        if t is Transform.RATIO and len(self.columns or []) != 2:
            raise ValueError("transform 'ratio' needs columns = [numerator, denominator]")
        timed = (Transform.MONTHLY_CV, Transform.MONTHLY_PEAK, Transform.ACTIVE_MONTHS)
        if t in (*timed, Transform.RECENCY_DAYS) and not self.time_column:
            raise ValueError(f"transform '{t}' needs a time_column")
        if t in timed and self.window_months is None:
            raise ValueError(f"transform '{t}' needs window_months")
        if t is Transform.SHARE and self.where is None:
            raise ValueError("transform 'share' needs a where condition")
        if t is Transform.LATEST and not self.order_by:
            raise ValueError("transform 'latest' needs order_by (the column saying which row)")
        if self.per_month and self.window_months is None:
            raise ValueError("per_month needs window_months")
        if t is Transform.CLIP and not self.clip:
            raise ValueError("transform 'clip' needs clip = [min, max]")
        if self.clip is not None and len(self.clip) != 2:
            raise ValueError("clip is [min, max] (either may be omitted with a null-free pair)")
        if t is Transform.BAND and not self.bands:
            raise ValueError("transform 'band' needs bands = [...] and labels = [...]")
        if self.bands is not None:
            if any(b <= a for a, b in zip(self.bands, self.bands[1:], strict=False)):
                raise ValueError("bands must be strictly ascending")
            if self.labels is None or len(self.labels) != len(self.bands) + 1:
                raise ValueError("labels needs one more entry than bands (the top band)")
            if self.role not in (FeatureRole.DESCRIPTOR, FeatureRole.INPUT):
                raise ValueError("a banded feature is a label: its role is descriptor or input")
        numeric_fill = isinstance(self.fill, float | int) and not isinstance(self.fill, bool)
        if self.role is FeatureRole.DESCRIPTOR and numeric_fill:
            raise ValueError("a descriptor's fill is a label (text)")
        if self.role in (FeatureRole.CLUSTER, FeatureRole.KPI, FeatureRole.OUTCOME):
            if isinstance(self.fill, str) and self.fill != "median":
                raise ValueError("a numeric feature's fill is a number or 'median'")
            if self.bands is not None:
                raise ValueError("bands make a label; a numeric role cannot use them")
        unknown = sorted(set(self.purposes) - set(PURPOSES))
        if unknown:
            raise ValueError(f"unknown purpose(s) {', '.join(unknown)}; known: {PURPOSES}")
        for pair, what in ((self.describe, "describe"), (self.adjective, "adjective")):
            if pair is not None and len(pair) != 2:
                raise ValueError(f"{what} is [when high, when low]")
        return self

    def check_against(self, name: str, sources: dict[str, SourceSpec]) -> list[tuple[str, str]]:
        """(key path, message) for every reference to an undeclared source/column or a
        column of the wrong type for the transform."""
        errors: list[tuple[str, str]] = []
        path = f"features.{name}"
        if self.source is None:
            return errors
        if self.source not in sources:
            return [(f"{path}.source", f"'{self.source}' is not a declared source")]
        cols = sources[self.source].columns
        keyed: list[tuple[str, str | None]] = [
            ("column", self.column),
            ("time_column", self.time_column),
            ("times", self.times),
            ("order_by", self.order_by),
        ]
        keyed += [("columns", c) for c in self.columns or []]
        for key, col in keyed:
            if col is not None and col not in cols:
                errors.append(
                    (f"{path}.{key}", f"'{col}' is not a declared column of '{self.source}'")
                )
        for key, cond in (
            ("where", self.where),
            ("sign_when", self.sign_when),
            ("scale_when", self.scale_when),
        ):
            if cond is not None:
                for f in sorted(cond.fields() - set(cols)):
                    errors.append(
                        (f"{path}.{key}", f"'{f}' is not a declared column of '{self.source}'")
                    )
        if errors:
            return errors
        value = self.value_column()
        if value is not None:
            vtype = cols[value].type.value
            t = self.transform
            if t in TEMPORAL and vtype not in ("date", "datetime"):
                errors.append(
                    (f"{path}.transform", f"'{t}' needs a date column; '{value}' is {vtype}")
                )
            elif t not in TEMPORAL and t not in ANY_TYPE and vtype not in NUMERIC_TYPES:
                errors.append(
                    (f"{path}.transform", f"'{t}' needs a numeric column; '{value}' is {vtype}")
                )
            elif (
                self.role in (FeatureRole.CLUSTER, FeatureRole.KPI, FeatureRole.OUTCOME)
                and t in (Transform.VALUE, Transform.LATEST)
                and vtype not in NUMERIC_TYPES
            ):
                errors.append(
                    (f"{path}.role", f"role '{self.role}' needs a number; '{value}' is {vtype}")
                )
        tcol = self.time_column
        if tcol is not None and cols[tcol].type.value not in ("date", "datetime"):
            errors.append(
                (f"{path}.time_column", f"'{tcol}' is {cols[tcol].type.value}, not a date")
            )
        return errors


def check_features(
    features: dict[str, FeatureSpec], sources: dict[str, SourceSpec], subjects: str
) -> list[tuple[str, str]]:
    """Cross-feature checks: references, types, row transforms on the subjects source,
    combine terms that exist, KYC fact names used once."""
    errors: list[tuple[str, str]] = []
    facts: dict[str, str] = {}
    for name, f in features.items():
        path = f"features.{name}"
        errors += f.check_against(name, sources)
        if f.source is not None and f.source != subjects and not f.is_aggregation:
            errors.append(
                (
                    f"{path}.transform",
                    f"'{f.transform}' is per row; source '{f.source}' is not the subjects "
                    f"source '{subjects}', so it needs an aggregation (sum, mean, latest, ...)",
                )
            )
        for term in f.terms or {}:
            if term not in features:
                errors.append((f"{path}.terms.{term}", "not a declared feature"))
            elif features[term].transform is Transform.COMBINE:
                errors.append((f"{path}.terms.{term}", "a combine cannot read another combine"))
        fact = f.kyc_fact
        if fact is not None:
            taken = facts.get(fact) or (fact if fact in features and fact != name else None)
            if taken:
                errors.append(
                    (f"{path}.kyc_fact", f"'{fact}' is already declared by features.{taken}")
                )
            facts[fact] = name
    return errors


def describe_error(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)
