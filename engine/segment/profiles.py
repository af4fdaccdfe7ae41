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
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.enforce import GovernedFrames
from engine.features import KEY, FeatureFrame
from engine.pseudonym.kanon import suppress_small_cells
from engine.segment.grouped import group_means
from engine.segment.model import PersonaProfile

TRAIT_Z = 0.5
MAX_TRAITS = 4
# A loan 30+ days past due is the usual "delinquent" line in credit reporting.
DELINQUENT_DPD = 30

# feature -> (phrase when high, phrase when low)
PHRASES: dict[str, tuple[str, str]] = {
    "recency_days": ("inactive recently", "recently active"),
    "frequency_log": ("frequent transactions", "few transactions"),
    "monetary_log": ("high spend and income flows", "low spend and income flows"),
    "cashflow_cv": ("volatile cash flow", "steady cash flow"),
    "seasonality": ("seasonal income", "even income through the year"),
    "credit_score": ("high credit score", "low credit score"),
    "utilisation": ("high credit utilisation", "low credit utilisation"),
    "delinquencies_log": ("past delinquencies", "clean credit history"),
    "loan_amount_log": ("large loans", "small or no loans"),
    "loan_tenure_months": ("long loan tenure", "short or no loan tenure"),
    "loan_dpd_log": ("loans past due", "loans paid on time"),
    "logins_log": ("frequent app logins", "rare app logins"),
    "sessions_log": ("heavy app use", "light app use"),
    "features_used_log": ("uses many app features", "uses few app features"),
    "support_contacts_log": ("frequent support contacts", "rare support contacts"),
    "crypto_volume_log": ("high crypto trading", "little crypto trading"),
    "crypto_assets_log": ("diversified crypto holdings", "few crypto assets"),
    "crypto_active_days": ("active crypto trading days", "few crypto trading days"),
    "customer_tenure_months": ("long-standing customer", "new customer"),
    "value_proxy_log": ("high value", "low value"),
}
# feature -> (adjective when high, adjective when low) for names; None = not name-worthy.
ADJECTIVES: dict[str, tuple[str | None, str | None]] = {
    "value_proxy_log": ("high-value", "low-value"),
    "cashflow_cv": ("cash-flow-volatile", "steady"),
    "seasonality": ("seasonal", None),
    "recency_days": ("dormant", None),
    "frequency_log": ("active", "infrequent"),
    "monetary_log": ("high-flow", "low-flow"),
    "logins_log": ("app-engaged", "app-light"),
    "sessions_log": ("app-engaged", "app-light"),
    "support_contacts_log": ("support-heavy", None),
    "crypto_assets_log": ("diversified", None),
    "customer_tenure_months": ("long-standing", "new"),
    "loan_amount_log": ("large-loan", None),
}
# Risk is one adjective from several credit features: sign = direction that means riskier.
RISK_SIGNS: dict[str, float] = {
    "credit_score": -1.0,
    "utilisation": 1.0,
    "delinquencies_log": 1.0,
    "loan_dpd_log": 1.0,
}
EMPLOYMENT_NOUNS: dict[str, str] = {
    "salaried": "salary earner",
    "gig": "gig worker",
    "self_employed": "freelancer",
    "business_owner": "business owner",
    "retired": "retiree",
    "student": "student",
}


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


def population(features: FeatureFrame) -> Population:
    # numpy's pairwise sum over one contiguous column is fixed-order; see grouped.py.
    matrix = features.frame.select(features.features).to_numpy().astype(np.float64)
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
        f: (v - pop.mean[f]) / pop.std[f] if pop.std[f] > 1e-12 else 0.0
        for f, v in centroid.items()
    }


def traits(z: dict[str, float]) -> list[str]:
    ranked = sorted(
        ((abs(v), f, v) for f, v in z.items() if abs(v) >= TRAIT_Z and f in PHRASES),
        key=lambda t: (-t[0], t[1]),
    )
    return [PHRASES[f][0 if v > 0 else 1] for _, f, v in ranked[:MAX_TRAITS]]


def _adjectives(z: dict[str, float]) -> list[str]:
    """Candidate adjectives, strongest first, without repeats."""
    cands: list[tuple[float, str, str]] = []
    risk_parts = [RISK_SIGNS[f] * z[f] for f in RISK_SIGNS if f in z]
    if risk_parts:
        risk = float(np.mean(risk_parts))
        if abs(risk) >= TRAIT_Z:
            # Risk and value are the headline axes of a lending persona: weighted up so they
            # lead the name when present ("high-value low-risk trader").
            cands.append((1.5 * abs(risk), "risk", "high-risk" if risk > 0 else "low-risk"))
    for f, (hi, lo) in ADJECTIVES.items():
        if f in z and abs(z[f]) >= TRAIT_Z:
            word = hi if z[f] > 0 else lo
            if word:
                weight = 1.5 if f == "value_proxy_log" else 1.0
                cands.append((weight * abs(z[f]), f, word))
    out: list[str] = []
    for _, _, word in sorted(cands, key=lambda t: (-t[0], t[1])):
        if word not in out:
            out.append(word)
    return out


def _noun(z: dict[str, float], modes: dict[str, tuple[str, float]]) -> str:
    if z.get("crypto_volume_log", 0.0) >= TRAIT_Z:
        return "trader"
    ctype = modes.get("customer_type")
    if ctype and ctype[0] == "smb" and ctype[1] >= 0.5:
        return "microbusiness"
    if z.get("loan_amount_log", 0.0) >= TRAIT_Z:
        return "borrower"
    emp = modes.get("employment_type")
    if emp and emp[1] >= 0.5 and emp[0] in EMPLOYMENT_NOUNS:
        return EMPLOYMENT_NOUNS[emp[0]]
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
    assignments: pl.DataFrame, features: FeatureFrame, governed: GovernedFrames | None
) -> tuple[pl.DataFrame, list[str]]:
    """Per customer: persona_id and one column per available KPI (null = not observed)."""
    lf = assignments.lazy().select(KEY, "persona_id")
    kpis: list[str] = []
    if "value_proxy_log" in features.features:
        lf = lf.join(
            features.frame.lazy().select(KEY, pl.col("value_proxy_log").exp() - 1.0),
            on=KEY,
            how="left",
        ).rename({"value_proxy_log": "value_proxy"})
        kpis.append("value_proxy")
    frames = governed.frames if governed is not None else {}

    def cols(src: str) -> set[str]:
        return set(frames[src].columns) if src in frames else set()

    outcome_cols = cols("outcomes")
    loan_cols = cols("loans")
    per_loan: list[pl.Expr] = []
    if KEY in loan_cols:
        if "amount" in loan_cols:
            # In cents: an exact, order-independent mean (see grouped.py).
            cents = (pl.col("amount").cast(pl.Float64) * 100).round().cast(pl.Int64)
            per_loan.append((cents.mean() / 100).alias("avg_loan_amount"))
        if "tenure_months" in loan_cols:
            per_loan.append(
                pl.col("tenure_months").cast(pl.Float64).mean().alias("avg_loan_tenure_months")
            )
        if "days_past_due" in loan_cols:
            per_loan.append(
                (pl.col("days_past_due").max() >= DELINQUENT_DPD)
                .cast(pl.Float64)
                .alias("delinquency_rate")
            )
        if "defaulted" not in outcome_cols:
            if "default_flag" in loan_cols:
                per_loan.append(pl.col("default_flag").any().cast(pl.Float64).alias("default_rate"))
            elif "status" in loan_cols:
                per_loan.append(
                    pl.col("status")
                    .is_in(["defaulted", "written_off"])
                    .any()
                    .cast(pl.Float64)
                    .alias("default_rate")
                )
    if per_loan:
        lf = lf.join(frames["loans"].lazy().group_by(KEY).agg(per_loan), on=KEY, how="left")
        kpis += [e.meta.output_name() for e in per_loan]
    bureau_cols = cols("bureau")
    if "delinquency_rate" not in kpis and {KEY, "delinquencies_24m"} <= bureau_cols:
        lf = lf.join(
            frames["bureau"]
            .lazy()
            .group_by(KEY)
            .agg(
                (pl.col("delinquencies_24m").max() > 0).cast(pl.Float64).alias("delinquency_rate")
            ),
            on=KEY,
            how="left",
        )
        kpis.append("delinquency_rate")
    out_aggs: list[pl.Expr] = []
    if KEY in outcome_cols:
        for col, kpi in (("converted", "conversion_rate"), ("defaulted", "default_rate")):
            if col in outcome_cols:
                out_aggs.append(pl.col(col).cast(pl.Float64).max().alias(kpi))
    if out_aggs:
        lf = lf.join(frames["outcomes"].lazy().group_by(KEY).agg(out_aggs), on=KEY, how="left")
        kpis += [e.meta.output_name() for e in out_aggs]
    return lf.collect(), sorted(kpis)


KpiIntervals = dict[int, dict[str, list[float] | None]]


def persona_kpis(
    assignments: pl.DataFrame,
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
    per_customer, kpis = _customer_outcomes(assignments, features, governed)
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
    g, m = grouped.means.shape
    # A mean cannot leave the range of the values it averages (a rate stays within 0..1).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing KPI column
        lo_obs, hi_obs = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    low = np.maximum(grouped.means - half, lo_obs)
    high = np.minimum(grouped.means + half, hi_obs)
    long = pl.DataFrame(
        {
            "persona_id": np.repeat(grouped.labels, m).astype(np.int64),
            "kpi": kpis * g,
            "value": grouped.means.reshape(-1),
            "low": low.reshape(-1),
            "high": high.reshape(-1),
            "n": grouped.observed.reshape(-1).astype(np.uint32),
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
            .filter(pl.col(d).is_not_null())
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


def build_profiles(
    features: FeatureFrame,
    labels: np.ndarray,
    k: int,
    governed: GovernedFrames | None = None,
    stability: dict[int, float] | None = None,
) -> tuple[list[PersonaProfile], list[dict[str, Any]], Population]:
    """Profiles in persona_id order (ids are 0..m-1, by size descending)."""
    pop = population(features)
    frame = features.frame.with_columns(pl.Series("persona_id", labels, dtype=pl.Int64))
    total = frame.height
    grouped = group_means(labels, frame.select(features.features).to_numpy())
    stats = pl.DataFrame(
        {
            "persona_id": grouped.labels.astype(np.int64),
            "size": grouped.sizes.astype(np.int64),
            **{f: grouped.means[:, i] for i, f in enumerate(features.features)},
        }
    )
    modes = _modes(frame, features.descriptors, k)
    assignments = frame.select(KEY, "persona_id")
    kpis, kpi_intervals, suppressed = persona_kpis(assignments, features, governed, k)

    rows = stats.to_dicts()
    z_by: dict[int, dict[str, float]] = {}
    candidates: list[tuple[list[str], str]] = []
    for row in rows:  # one per persona
        pid = int(row["persona_id"])
        centroid = {f: float(row[f]) for f in features.features}
        z_by[pid] = _zscores(centroid, pop)
        candidates.append((_adjectives(z_by[pid]), _noun(z_by[pid], modes.get(pid, {}))))
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
                traits=[] if small else traits(z_by[pid]),
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
