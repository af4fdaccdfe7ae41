"""Persona profiles: size, share, traits in plain words, a readable name, KPIs.

Traits are the persona centroid's z-scores against the population (mean/std of each
feature over all customers); |z| >= TRAIT_Z is a distinguishing trait. Names combine up to
two adjectives from the strongest traits with a noun from the persona's dominant
descriptor. KPIs come from outcome data in the governed frames when the purpose let it
through; every reported cell with fewer than k customers behind it is suppressed
(`engine.pseudonym.kanon.suppress_small_cells`) and recorded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.enforce import GovernedFrames
from engine.features import KEY, FeatureFrame
from engine.features.spec import FeatureSpec
from engine.pseudonym.kanon import suppress_small_cells
from engine.segment.grouped import group_means
from engine.segment.model import PersonaProfile
from engine.segment.strategies import NEAR_CONSTANT_RTOL

TRAIT_Z = 0.5
MAX_TRAITS = 4
# A descriptor share counts every customer: those without a value are a "(missing)" label.
MISSING = "(missing)"
# Weight of a `headline` feature's (and of risk's) adjective when ranking name words: the
# headline axes of a lending persona lead its name ("high-value low-risk trader").
HEADLINE_WEIGHT = 1.5


@dataclass(frozen=True)
class Population:
    mean: dict[str, float]
    std: dict[str, float]

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {f: {"mean": _r(self.mean[f]), "std": _r(self.std[f])} for f in sorted(self.mean)}


def _r(x: float | None, digits: int = 6) -> float:
    if x is None or not math.isfinite(x):
        return 0.0
    return round(float(x), digits)


def feature_values(features: FeatureFrame) -> np.ndarray:
    """The cluster features as one float64 matrix (population and centroids share it)."""
    return features.frame.select(features.features).to_numpy().astype(np.float64)


def population(features: FeatureFrame, matrix: np.ndarray | None = None) -> Population:
    # numpy's pairwise sum over one contiguous column is fixed-order; see grouped.py.
    if matrix is None:
        matrix = feature_values(features)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(matrix, axis=0) if matrix.size else np.zeros(len(features.features))
        std = np.nanstd(matrix, axis=0) if matrix.size else np.zeros(len(features.features))
    return Population(
        mean={f: _finite(mean[i]) for i, f in enumerate(features.features)},
        std={f: _finite(std[i]) for i, f in enumerate(features.features)},
    )


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _zscores(centroid: dict[str, float], pop: Population) -> dict[str, float]:
    return {
        f: (v - pop.mean[f]) / pop.std[f]
        if pop.std[f] > NEAR_CONSTANT_RTOL * max(1.0, abs(pop.mean[f]))
        else 0.0
        for f, v in centroid.items()
    }


def _pair(words: list[str] | None) -> tuple[str | None, str | None]:
    if not words:
        return None, None
    return words[0] or None, words[1] or None


def traits(z: dict[str, float], specs: Mapping[str, FeatureSpec]) -> list[str]:
    """Plain-word traits from the declared `describe` phrases, strongest first."""
    ranked = sorted(
        (
            (abs(v), f, v)
            for f, v in z.items()
            if abs(v) >= TRAIT_Z and f in specs and specs[f].describe
        ),
        key=lambda t: (-t[0], t[1]),
    )
    out: list[str] = []
    for _, f, v in ranked[:MAX_TRAITS]:
        hi, lo = _pair(specs[f].describe)
        word = hi if v > 0 else lo
        if word:
            out.append(word)
    return out


def _adjectives(z: dict[str, float], specs: Mapping[str, FeatureSpec]) -> list[str]:
    """Candidate adjectives, strongest first, without repeats."""
    cands: list[tuple[float, str, str]] = []
    risk_parts = [float(specs[f].risk or 0.0) * z[f] for f in z if f in specs and specs[f].risk]
    if risk_parts:
        risk = float(np.mean(risk_parts))
        if abs(risk) >= TRAIT_Z:
            word = "high-risk" if risk > 0 else "low-risk"
            cands.append((HEADLINE_WEIGHT * abs(risk), "risk", word))
    for f, v in z.items():
        spec = specs.get(f)
        if spec is None or not spec.adjective or abs(v) < TRAIT_Z:
            continue
        hi, lo = _pair(spec.adjective)
        adj = hi if v > 0 else lo
        if adj:
            weight = HEADLINE_WEIGHT if spec.headline else 1.0
            cands.append((weight * abs(v), f, adj))
    out: list[str] = []
    for _, _, word in sorted(cands, key=lambda t: (-t[0], t[1])):
        if word not in out:
            out.append(word)
    return out


def _noun(
    z: dict[str, float],
    modes: dict[str, tuple[str, float]],
    specs: Mapping[str, FeatureSpec],
) -> str:
    """The declared noun of lowest rank that applies: a cluster feature's `noun` when the
    persona is high on it, a descriptor's `nouns[value]` when value is its majority."""
    ranked = sorted(
        ((s.noun_rank, f) for f, s in specs.items() if s.noun or s.nouns), key=lambda t: t
    )
    for _, f in ranked:
        spec = specs[f]
        if spec.noun and z.get(f, 0.0) >= TRAIT_Z:
            return spec.noun
        mode = modes.get(f)
        if spec.nouns and mode and mode[1] >= 0.5 and mode[0] in spec.nouns:
            return spec.nouns[mode[0]]
    return "customer"


def unique_names(candidates: list[tuple[list[str], str]]) -> list[str]:
    """Names from (adjectives, noun), unique within the version.

    Two adjectives by default; on a clash the later persona (smaller, since ids are in size
    order) takes a third adjective, and a numeric suffix only as the last resort.
    """
    used: set[str] = set()
    names: list[str] = []
    for adjs, noun in candidates:
        name = " ".join([*adjs[:2], noun])
        if name in used and len(adjs) > 2:
            name = " ".join([*adjs[:3], noun])
        base, n = name, 2
        while name in used:
            name = f"{base} {n}"
            n += 1
        used.add(name)
        names.append(name)
    return names


def _customer_outcomes(
    labelled: pl.DataFrame, features: FeatureFrame
) -> tuple[pl.DataFrame, list[str]]:
    """Per customer: persona_id and one column per declared KPI/outcome (null = not
    observed). Boolean outcomes become 0/1 so their mean is the rate. `labelled` is the
    feature frame with a persona_id column: its rows are the customers (one each), so the
    KPIs are read in place rather than joined back on the token."""
    kpis = sorted(k for k in features.kpis if k in labelled.columns)
    return labelled.select(KEY, "persona_id", *[pl.col(k).cast(pl.Float64) for k in kpis]), kpis


KpiIntervals = dict[int, dict[str, list[float] | None]]


def persona_kpis(
    labelled: pl.DataFrame,
    features: FeatureFrame,
    governed: GovernedFrames | None,
    k: int,
) -> tuple[dict[int, dict[str, float | None]], KpiIntervals, list[dict[str, Any]]]:
    """persona_id -> {kpi: value | None}, persona_id -> {kpi: [low, high] | None}, and the
    k-anonymity suppression records.

    Each KPI cell is the mean over the persona's customers for whom it is observed; the
    number of those customers is the cell's count, and a count below k suppresses the cell
    and its interval. The interval is the 95% normal-approximation interval of that mean
    (mean ± 1.96 s/√n, s the sample standard deviation), computed from per-persona sums of
    values and of squares in a fixed order (np.bincount), so it is reproducible.
    """
    per_customer, kpis = _customer_outcomes(labelled, features)
    if not kpis:
        return {}, {}, []
    labels = per_customer["persona_id"].to_numpy()
    values = per_customer.select(pl.col(kpis).cast(pl.Float64).fill_null(float("nan"))).to_numpy()
    grouped = group_means(labels, values)
    squares = group_means(labels, values * values).means
    n = grouped.observed.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(squares - grouped.means**2, 0.0) * n / np.maximum(n - 1.0, 1.0)
        half = np.where(n > 1, 1.96 * np.sqrt(var / np.maximum(n, 1.0)), 0.0)
    g = grouped.means.shape[0]
    # A mean cannot leave the range of the values it averages (a rate stays within 0..1).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing KPI column
        lo_obs, hi_obs = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    low = np.maximum(grouped.means - half, lo_obs)
    high = np.minimum(grouped.means + half, hi_obs)
    # Boolean outcomes report their rate (the mean of 0/1); numeric and money KPIs also
    # their sum (unless declared `sum = false`), money summed in integer cents (exact
    # whatever the row order); a sum's interval is its count times the mean's.
    summed = [
        j
        for j, name in enumerate(kpis)
        if features.kpis.get(name) != "boolean"
        and (name not in features.specs or features.specs[name].sum)
    ]
    sums = np.full((g, len(summed)), np.nan)
    _, inv = np.unique(labels, return_inverse=True)
    for i, j in enumerate(summed):
        col = values[:, j]
        seen = ~np.isnan(col)
        money = features.kpis.get(kpis[j]) == "money"
        weights = np.round(col[seen] * 100) if money else col[seen]
        total = np.bincount(inv[seen], weights=weights, minlength=g)
        sums[:, i] = np.where(n[:, j] > 0, total / 100 if money else total, np.nan)
    names = [*kpis, *(f"{kpis[j]}_sum" for j in summed)]
    counts = np.concatenate([grouped.observed, grouped.observed[:, summed]], axis=1)
    sum_low = np.fmin(low[:, summed] * n[:, summed], sums)
    sum_high = np.fmax(high[:, summed] * n[:, summed], sums)
    long = pl.DataFrame(
        {
            "persona_id": np.repeat(grouped.labels, len(names)).astype(np.int64),
            "kpi": names * g,
            "value": np.concatenate([grouped.means, sums], axis=1).reshape(-1),
            "low": np.concatenate([low, sum_low], axis=1).reshape(-1),
            "high": np.concatenate([high, sum_high], axis=1).reshape(-1),
            "n": counts.reshape(-1).astype(np.uint32),
        }
    ).with_columns(
        pl.col("persona_id").cast(pl.String),
        pl.col("value", "low", "high").fill_nan(None),
    )
    table, records = suppress_small_cells(long, "n", k, "persona_kpis")
    out: dict[int, dict[str, float | None]] = {}
    intervals: KpiIntervals = {}
    for row in table.iter_rows(named=True):  # one row per persona x KPI, not per customer
        pid, v = int(row["persona_id"]), row["value"]
        out.setdefault(pid, {})[row["kpi"]] = None if v is None else _r(v)
        bounds = None if v is None else [_r(row["low"]), _r(row["high"])]
        intervals.setdefault(pid, {})[row["kpi"]] = bounds
    return out, intervals, records


def _modes(
    frame: pl.DataFrame, descriptors: list[str], k: int
) -> dict[int, dict[str, tuple[str, float]]]:
    """persona_id -> descriptor -> (most common value, share), when that value has >= k."""
    out: dict[int, dict[str, tuple[str, float]]] = {}
    for d in descriptors:
        top = (
            frame.lazy()
            .with_columns(pl.col(d).cast(pl.String).fill_null(MISSING))
            .group_by("persona_id", d)
            .agg(pl.len().alias("n"))
            .with_columns(share=pl.col("n") / pl.col("n").sum().over("persona_id"))
            .sort(["persona_id", "n", d], descending=[False, True, False])
            .group_by("persona_id", maintain_order=True)
            .first()
            .filter(pl.col("n") >= k)
            .sort("persona_id")
            .collect()
        )
        for row in top.iter_rows(named=True):  # one row per persona
            out.setdefault(int(row["persona_id"]), {})[d] = (str(row[d]), float(row["share"]))
    return out


# The cluster features as one matrix and their population statistics: what the profiles
# need of the features alone, before any persona is known.
Basis = tuple[np.ndarray, Population]
# build_profiles' result: the profiles, the cells suppressed, the population statistics.
Profiles = tuple[list[PersonaProfile], list[dict[str, Any]], Population]


def profile_basis(features: FeatureFrame) -> Basis:
    matrix = feature_values(features)
    return matrix, population(features, matrix)


def build_profiles(
    features: FeatureFrame,
    labels: np.ndarray,
    k: int,
    governed: GovernedFrames | None = None,
    stability: dict[int, float] | None = None,
    basis: Basis | None = None,
) -> Profiles:
    """Profiles in persona_id order (ids are 0..m-1, by size descending). `basis`: this
    `features`' profile_basis, when already made."""
    matrix, pop = profile_basis(features) if basis is None else basis
    frame = features.frame.with_columns(pl.Series("persona_id", labels, dtype=pl.Int64))
    total = frame.height
    grouped = group_means(labels, matrix)
    stats = pl.DataFrame(
        {
            "persona_id": grouped.labels.astype(np.int64),
            "size": grouped.sizes.astype(np.int64),
            **{f: grouped.means[:, i] for i, f in enumerate(features.features)},
        }
    )
    modes = _modes(frame, features.descriptors, k)
    kpis, kpi_intervals, suppressed = persona_kpis(frame, features, governed, k)

    rows = stats.to_dicts()
    z_by: dict[int, dict[str, float]] = {}
    candidates: list[tuple[list[str], str]] = []
    for row in rows:  # one per persona
        pid = int(row["persona_id"])
        centroid = {f: float(row[f]) for f in features.features}
        z_by[pid] = _zscores(centroid, pop)
        candidates.append(
            (
                _adjectives(z_by[pid], features.specs),
                _noun(z_by[pid], modes.get(pid, {}), features.specs),
            )
        )
    names = unique_names(candidates)

    profiles: list[PersonaProfile] = []
    for row, name in zip(rows, names, strict=True):
        pid, size = int(row["persona_id"]), int(row["size"])
        small = size < k
        if small:
            # Only reachable when the whole population is below k (small clusters are merged
            # first); the persona's figures are withheld and the min_size gate fails.
            suppressed.append(
                {
                    "table": "personas",
                    "cell": {"persona_id": str(pid)},
                    "reason": "k_anonymity_below_minimum",
                    "k": k,
                    "columns": ["centroid", "traits", "kpis", "descriptors"],
                }
            )
        profiles.append(
            PersonaProfile(
                persona_id=pid,
                name=name,
                size=size,
                share=_r(size / total if total else 0.0),
                traits=[] if small else traits(z_by[pid], features.specs),
                centroid={} if small else {f: _r(float(row[f])) for f in features.features},
                kpis={} if small else kpis.get(pid, {}),
                kpi_intervals={} if small else kpi_intervals.get(pid, {}),
                descriptors={}
                if small
                else {
                    d: f"{v} ({share:.0%})" for d, (v, share) in sorted(modes.get(pid, {}).items())
                },
                stability=None if stability is None else stability.get(pid),
            )
        )
    return profiles, suppressed, pop
