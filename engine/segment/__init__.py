"""Segmentation: strategies (rules, k-means, GMM), validation gates, persona profiles.

Contract (owned here):
    segment(features: FeatureFrame, spec: SegmentationSpec, k_min: int, seed: int,
            governed: GovernedFrames | None = None) -> Segmentation

`k_min` is the policy's k-anonymity minimum (smallest publishable persona or cell), not the
lower end of the cluster-count range (that is `spec.k_min`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import numpy as np
import polars as pl

from engine.config import SegmentationSpec
from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import KEY, FeatureFrame
from engine.segment.ahead import Early
from engine.segment.gates import (
    canonical_labels,
    merge_small,
    min_size_gate,
    silhouette_gate,
    stability_gates,
)
from engine.segment.model import GateResult, PersonaProfile, Segmentation
from engine.segment.profiles import Profiles, build_profiles, profile_basis
from engine.segment.silhouette import rescore
from engine.segment.strategies import (
    KMeansStrategy,
    feature_matrix,
    informative,
    make_strategy,
    sample_indices,
    selection_rows,
)

# value_kpis' result: the value.json document and its suppressed cells.
ValueKpis = tuple[dict[str, Any], list[dict[str, Any]]]

__all__ = [
    "GateResult",
    "PersonaProfile",
    "Segmentation",
    "content_ordered",
    "governed_reads",
    "segment",
]


def _selection_silhouette(strategy: object, gate_labels: np.ndarray) -> float | None:
    """The silhouette selection computed for the chosen k, if the gate would compute the
    same number: same rows, and a partition equal to the chosen candidate's on them."""
    scores = getattr(strategy, "scores_", None)
    k = getattr(strategy, "k_", None)
    chosen = getattr(strategy, "selection_labels_", None)
    # A fixed k is not scored (its k_scores entry is a placeholder 0.0).
    if not isinstance(strategy, KMeansStrategy) or not scores or len(scores) < 2:
        return None
    if k not in scores:
        return None
    if chosen is None or len(chosen) != len(gate_labels):
        return None
    a, b = np.asarray(chosen, dtype=np.int64), gate_labels
    pairs = np.unique(a * (int(b.max()) + 1) + b)
    same = len(pairs) == len(np.unique(a)) == len(np.unique(b))
    if same:
        return float(scores[k])
    # Refined on the whole fitting sample, a few of these rows changed persona: rescore from
    # the candidate's per-row sums instead of a second pass over the distance matrix.
    kept = getattr(strategy, "selection_scored_", None)
    return rescore(kept, gate_labels) if kept is not None else None


def segment(
    features: FeatureFrame,
    spec: SegmentationSpec,
    k_min: int,
    seed: int,
    governed: GovernedFrames | None = None,
) -> Segmentation:
    """Fit the configured strategy, merge personas below k, run the gates, profile."""
    # Constant and near-constant axes go before any strategy sees them (clustering, models,
    # z-scores, names); the version's params say which and why.
    values = _start_customer_values(spec, governed)
    kept, dropped = informative(features, list(features.features))
    features, positions = _content_order(replace(features, features=kept))
    if spec.strategy == "predictive":
        from engine.segment.predictive import segment_predictive

        seg, kpis = segment_predictive(features, spec, k_min, seed, governed), None
    else:
        seg, kpis = _segment(features, spec, k_min, seed, governed, positions, values)
    seg = replace(
        seg,
        params={**seg.params, "dropped_features": dict(sorted(dropped.items()))},
        kpi_units=_kpi_units(features),
    )
    return with_value(seg, spec, governed, k_min, values, kpis)


T = TypeVar("T")


def _in_background(job: Callable[[], T]) -> Callable[[], T]:
    """`job` started on a thread of its own; the returned call gives its result or raises
    its error, where the caller would have run it."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(job)
    pool.shutdown(wait=False)
    return future.result


def _start_customer_values(
    spec: SegmentationSpec, governed: GovernedFrames | None
) -> Callable[[], pl.DataFrame] | None:
    """The per-customer value (value.customer_cltv), started before the fits: it reads the
    governed value source only, never the personas, and Polars releases the GIL, so it runs
    on the core the fits (which hold the GIL) leave idle."""
    if spec.value is None or governed is None:
        return None
    from engine.segment.value import customer_cltv

    return _in_background(partial(customer_cltv, governed, spec.value))


def content_ordered(features: FeatureFrame) -> FeatureFrame:
    """The rows in an order set by their values, not by their tokens.

    Every fitting sample, bootstrap resample, k-means start and label tie is drawn by row
    position; in token order the personas, and whether a small jurisdiction's pass the
    stability gates, would change with the pseudonymisation key (a new workspace's keys, a
    rotation). Ordered by a hash of the numbers segmentation reads (features, fill
    indicators, KPIs and outcomes), the fit depends on the data and the seed alone: rows
    equal in all of those are interchangeable to every fit and keep token order among
    themselves (a stable sort). Assignments are sorted by token again at the end.
    """
    return _content_order(features)[0]


def _content_order(features: FeatureFrame) -> tuple[FeatureFrame, pl.Series | None]:
    """`content_ordered`, with each row's position before it (POSITION) when the rows came
    in strictly ascending token order: the assignments go back to token order by sorting
    those integers rather than the tokens (0.045 -> 0.002 CPU s on 111k customers)."""
    frame = features.frame
    read = [*features.features, *features.indicators, *features.kpis]
    columns = [c for c in dict.fromkeys(read) if c in frame.columns]
    if frame.height < 2 or not columns:
        return features, None
    # One stable multithreaded sort by the hash: half the cost of argsort and a gather.
    by = pl.Series("_content_order", _row_hash(frame, columns))
    if not _strictly_ascending(frame[KEY]):
        return replace(features, frame=frame.sort(by, maintain_order=True)), None
    positions = pl.Series(POSITION, np.arange(frame.height, dtype=np.uint32))
    moved = frame.with_columns(positions).sort(by, maintain_order=True)
    return replace(features, frame=moved.drop(POSITION)), moved[POSITION]


# The column carrying a row's position in token order while the rows are in content order.
POSITION = "_token_position"


def _strictly_ascending(tokens: pl.Series) -> bool:
    """Every token above the one before it (so unique, and token order is row order)."""
    n = tokens.len()
    return n < 2 or bool((tokens.slice(1) > tokens.slice(0, n - 1)).all())


def _row_hash(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    # Our own mix of each value's float64 bits (FNV-1a over 64-bit words, then splitmix64's
    # finaliser) rather than Polars' hash_rows, which may change between Polars versions:
    # the order, hence the personas, must not. One pass per column, vectorised over rows.
    # In place: one array for the whole mix, not two fresh ones per column (fresh pages cost
    # more than the arithmetic in them here).
    h = np.full(frame.height, 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for name in columns:
        column = frame[name]
        if column.dtype != pl.Float64:
            column = column.cast(pl.Float64, strict=False)
        # A float column without nulls is read in place (no cast, no fill).
        values = (column.fill_null(np.nan) if column.null_count() else column).to_numpy()
        np.bitwise_xor(h, np.ascontiguousarray(values, dtype=np.float64).view(np.uint64), out=h)
        np.multiply(h, prime, out=h)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        np.bitwise_xor(h, h >> np.uint64(shift), out=h)
        np.multiply(h, np.uint64(mult), out=h)
    np.bitwise_xor(h, h >> np.uint64(31), out=h)
    return h


def governed_reads(spec: SegmentationSpec) -> frozenset[str]:
    """The governed sources whose rows `segment` reads beside the features (value KPIs, a
    predictive outcome named `source.column`): the refresh lets every other source's rows go
    before segmenting."""
    names: set[str] = set()
    if spec.value is not None:
        names.add(spec.value.source)
        if spec.value.applications_source:
            names.add(spec.value.applications_source)
    if spec.strategy == "predictive" and spec.predictive is not None:
        source, _, column = spec.predictive.outcome.partition(".")
        if column:
            names.add(source)
    return frozenset(names)


def with_value(
    seg: Segmentation,
    spec: SegmentationSpec,
    governed: GovernedFrames | None,
    k_min: int,
    per_customer: Callable[[], pl.DataFrame] | None = None,
    kpis: Callable[[], ValueKpis] | None = None,
) -> Segmentation:
    """Add the declared value KPIs (CLTV distribution, approval rates) as value.json.
    `kpis`: value_kpis of these personas, already started (by `_segment`)."""
    if spec.value is None or governed is None:
        return seg

    from engine.segment.value import value_kpis

    try:
        if kpis is not None:
            doc, suppressed = kpis()
        else:
            doc, suppressed = value_kpis(seg.assignments, governed, spec.value, k_min, per_customer)
    except BadInputError as exc:
        # The purpose's policy withheld a declared column: say so, publish without value.
        doc, suppressed = {"format": "pgov.value/1", "unavailable": exc.message}, []
    return replace(
        seg,
        artifacts={**seg.artifacts, "value.json": doc},
        suppressed=[*seg.suppressed, *suppressed],
    )


def _segment(
    features: FeatureFrame,
    spec: SegmentationSpec,
    k_min: int,
    seed: int,
    governed: GovernedFrames | None = None,
    positions: pl.Series | None = None,
    per_customer: Callable[[], pl.DataFrame] | None = None,
) -> tuple[Segmentation, Callable[[], ValueKpis] | None]:
    """The segmentation, and its value KPIs started beside the gates and profiles."""
    strategy = make_strategy(spec, seed)
    columns = strategy.columns(features)
    x = feature_matrix(features, columns)
    # What the profiles need of the features alone (a copy and two column reductions,
    # GIL-free NumPy), made on the core the fits leave idle: they hold the GIL.
    basis = _in_background(partial(profile_basis, features))

    def profiles_of(labels: np.ndarray) -> Profiles:
        # Per-persona stability is added below, once the gates have it.
        return build_profiles(features, labels, k_min, governed, None, basis())

    # k-means: the steps after the fit start for the best-scoring candidate while its
    # stability is checked (engine/segment/ahead.py); used when it is the one chosen.
    after = None
    if isinstance(strategy, KMeansStrategy):
        early = strategy.ahead = Early(strategy, x, k_min, profiles_of)
        with early.window():
            strategy.fit_matrix(x)
            after = early.taken(strategy.k_)
    else:
        strategy.fit_matrix(x)
    if after is not None:
        merges, labels = after.merges, after.labels
    else:
        raw = strategy.predict_matrix(x)
        merged, merges = merge_small(raw, x, k_min, to_space=strategy.transform)
        labels = canonical_labels(merged)
    kpis: Callable[[], ValueKpis] | None = None
    if spec.value is not None and governed is not None:
        from engine.segment.value import value_kpis

        # The value figures need each customer's persona only (sizes, sorted values, integer
        # sums: row order does not matter), not the profiles: they are made on another
        # thread while the gates and profiles are (both mostly Polars and NumPy, GIL-free).
        by_persona = pl.DataFrame(
            {KEY: features.frame[KEY], "persona_id": pl.Series(labels, dtype=pl.Int64)}
        )
        kpis = _in_background(
            partial(value_kpis, by_persona, governed, spec.value, k_min, per_customer)
        )

    idx = sample_indices(len(x), spec.sample_size, seed)
    # Silhouette and stability are judged on the selection rows of the fitting sample, the
    # rows model selection scored and refitted (all of the sample when it is small).
    idx = idx[selection_rows(len(idx), seed)]
    gates: list[GateResult] = [min_size_gate(labels, k_min, merges)]
    chosen = strategy.params()
    same_sample = chosen.get("sample_size") == spec.sample_size and chosen.get("seed") == seed
    # Model selection scored the chosen k's silhouette on these very rows; when the sample's
    # personas are the same partition (no merge changed them), that figure is the gate's.
    known = _selection_silhouette(strategy, labels[idx]) if same_sample else None
    z_sample = strategy.transform(x[idx])
    gates.append(silhouette_gate(z_sample, labels[idx], spec.min_silhouette, seed, known))
    # Model selection already refitted the chosen k on these very rows (same resamples and
    # seeds): those refits are reused, so checking stability while choosing k costs nothing
    # extra unless the best-silhouette k turns out unstable.
    stab, per_persona = stability_gates(
        strategy,
        x[idx],
        labels[idx],
        spec.bootstrap_runs,
        spec.stability_threshold,
        seed,
        cached=strategy.boot_labels_ if same_sample else None,
    )
    gates += stab

    profiles, suppressed, pop = after.finished if after is not None else profiles_of(labels)
    if per_persona is not None:
        profiles = [replace(p, stability=per_persona.get(p.persona_id)) for p in profiles]
    names = pl.DataFrame(
        {
            "persona_id": [p.persona_id for p in profiles],
            "persona_name": [p.name for p in profiles],
        },
        schema={"persona_id": pl.Int64, "persona_name": pl.String},
    )
    assignments = _token_ordered(
        pl.DataFrame({KEY: features.frame[KEY], "persona_id": pl.Series(labels, dtype=pl.Int64)}),
        names,
        positions,
    )
    params = {
        **strategy.params(),
        "k_anonymity": k_min,
        "bootstrap_runs": spec.bootstrap_runs,
        "stability_threshold": spec.stability_threshold,
        "min_silhouette": spec.min_silhouette,
        "features": list(columns),
        "unavailable_features": dict(features.unavailable),
        "merged_small_clusters": len(merges),
        "as_of": features.as_of.isoformat() if features.as_of else None,
    }
    seg = Segmentation(
        strategy=strategy.name,
        params=params,
        assignments=assignments,
        personas=profiles,
        gates=gates,
        suppressed=suppressed,
        population=pop.as_dict(),
    )
    return seg, kpis


def _token_ordered(
    frame: pl.DataFrame, names: pl.DataFrame, positions: pl.Series | None
) -> pl.DataFrame:
    """The assignments with persona names, sorted by token: by each row's position in token
    order when known (then the token column is marked sorted, as a sort by it leaves it)."""
    if positions is None:
        return frame.join(names, on="persona_id", how="left").sort(KEY)
    return (
        frame.with_columns(positions)
        .join(names, on="persona_id", how="left")
        .sort(POSITION)
        .drop(POSITION)
        .with_columns(pl.col(KEY).set_sorted())
    )


def _kpi_units(features: FeatureFrame) -> dict[str, str]:
    units: dict[str, str] = {}
    for name, kind in features.kpis.items():
        if kind == "boolean":
            units[name] = "share"
        elif kind == "money":
            units[name] = "money"
            if name not in features.specs or features.specs[name].sum:
                units[f"{name}_sum"] = "money"
    return units
