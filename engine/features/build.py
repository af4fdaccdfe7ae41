"""build_features: the workspace's declared features over the governed frames.

Contract (owned here):
    build_features(governed: GovernedFrames, as_of: date, config: WorkspaceConfig)
        -> FeatureFrame

One row per governed subject (the declared subjects source), sorted by token. A feature
whose inputs the policy removed is not computed and is recorded in
`FeatureFrame.unavailable` with the policy's reason; the others degrade gracefully.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

import polars as pl

from engine.errors import BadInputError
from engine.features.aggregate import SourceAggregates
from engine.features.attach import attach
from engine.features.compile import Window, row_expr
from engine.features.model import KEY, FeatureFrame
from engine.features.spec import FeatureRole, FeatureSpec, Transform
from engine.side_by_side import run_in_order

# The working column of the rows' subject positions (no source column carries this name).
POSITION = "__pgov_subject_at"

if TYPE_CHECKING:
    from engine.config import WorkspaceConfig
    from engine.enforce import GovernedFrames


def for_purpose(config: WorkspaceConfig, purpose: str) -> dict[str, FeatureSpec]:
    return {n: f for n, f in config.features.items() if purpose in f.purposes}


def governed_name(column_actions: Mapping[str, Mapping[str, str]], source: str, col: str) -> str:
    entry = column_actions.get(f"{source}.{col}")
    return str(entry.get("output", col)) if entry else col


def unavailable_reason(spec: FeatureSpec, governed: GovernedFrames, subjects: str) -> str | None:
    """Why this feature cannot be built from the governed frames, or None."""
    if spec.source is None:
        return None
    if spec.source not in governed.frames:
        return f"source '{spec.source}' not available for this purpose"
    frame = governed.frames[spec.source]
    if KEY not in frame.columns:
        return f"source '{spec.source}' has no subject column under this plan"
    missing: list[str] = []
    for col in spec.inputs():
        out = governed_name(governed.column_actions, spec.source, col)
        entry = governed.column_actions.get(f"{spec.source}.{col}", {})
        if out not in frame.columns:
            why = entry.get("reason")
            missing.append(f"{spec.source}.{col}" + (f" (dropped: {why})" if why else ""))
        elif entry.get("action") == "generalise" and not _label_pass_through(spec, col):
            missing.append(f"{spec.source}.{col} (generalised to '{out}' by policy)")
    if missing:
        return f"column(s) {', '.join(missing)} not available"
    return None


def _label_pass_through(spec: FeatureSpec, col: str) -> bool:
    # A descriptor whose input the policy already generalised to a label (age band, income
    # band) takes the policy's label as it is.
    return spec.role in (FeatureRole.DESCRIPTOR, FeatureRole.INPUT) and col == spec.column


def _source_df(governed: GovernedFrames, source: str, columns: set[str]) -> pl.DataFrame:
    """The source with the needed columns under their declared names (a zero-copy select:
    the governed frame's own chunks)."""
    frame = governed.frames[source]
    rename = {governed_name(governed.column_actions, source, c): c for c in sorted(columns)}
    rename.pop(KEY, None)
    return frame.select(pl.col(KEY), *[pl.col(g).alias(d) for g, d in rename.items()])


def _positions(governed: GovernedFrames, sources: set[str]) -> dict[str, pl.Series] | None:
    """Per source, its rows' subject positions, when every source of the build has them
    over one token list of distinct tokens: then a position stands for exactly one token,
    and grouping and joining on it gives what the tokens give. Else None (group on the
    tokens)."""
    out: dict[str, pl.Series] = {}
    tokens: pl.Series | None = None
    for source in sorted(sources):
        at = governed.subject_positions.get(source)
        if at is None or at.frame is not governed.frames.get(source):
            return None
        if tokens is None:
            tokens = at.tokens
        elif at.tokens is not tokens:
            return None
        out[source] = at.at
    if tokens is None or tokens.n_unique() != tokens.len():
        return None
    return out


def build_features(
    governed: GovernedFrames,
    as_of: date,
    config: WorkspaceConfig,
    done: Callable[[str], None] | None = None,
) -> FeatureFrame:
    """`done(source)`, when given, is called once a source's rows are no longer read here (so
    a refresh can let them go before the next source's aggregates)."""
    subjects = config.subjects
    frame = governed.frames.get(subjects)
    if frame is None or KEY not in frame.columns:
        raise BadInputError(
            f"features: expected the subjects source '{subjects}' among the governed frames; "
            f"found: {', '.join(sorted(governed.frames)) or 'none'}"
        )
    declared = for_purpose(config, governed.purpose)
    unavailable: dict[str, str] = {}
    built: dict[str, FeatureSpec] = {}
    for name, spec in declared.items():
        why = unavailable_reason(spec, governed, subjects)
        if why is None:
            built[name] = spec
        else:
            unavailable[name] = why
    for name, spec in list(built.items()):
        if spec.transform is Transform.COMBINE:
            terms = [t for t in spec.terms or {} if t in built]
            if not terms:
                del built[name]
                unavailable[name] = "none of its terms is available: " + ", ".join(
                    f"{t} ({unavailable.get(t, 'not declared for this purpose')})"
                    for t in spec.terms or {}
                )

    window = Window(as_of)
    by_source: dict[str, dict[str, FeatureSpec]] = {}
    for name, spec in built.items():
        if spec.source is not None:
            by_source.setdefault(spec.source, {})[name] = spec

    aggregated = {
        s for s, specs in by_source.items() if any(x.is_aggregation for x in specs.values())
    }
    positions = _positions(governed, {subjects} | aggregated)
    # Subjects are grouped and joined on their positions when the frames carry them (4-byte
    # numbers instead of 40+ byte tokens); the token column comes along for the output.
    key = KEY if positions is None else POSITION
    row_specs = {n: s for n, s in by_source.get(subjects, {}).items() if not s.is_aggregation}
    needed = {c for s in row_specs.values() for c in s.inputs()}
    base = _with_positions(_source_df(governed, subjects, needed), positions, subjects)
    # The subjects' own features, one row per subject, in the output's order (by token):
    # sorted beside the sources' aggregates, the joins below keep that order, so the output
    # needs no sort of every feature column at the end.
    subjects_lf = (
        base.lazy()
        .select(
            pl.col(KEY),
            *([] if positions is None else [pl.col(POSITION)]),
            *[row_expr(s, base.schema, window).alias(n) for n, s in row_specs.items()],
        )
        .unique(subset=[key], keep="first")
        .sort(KEY, multithreaded=False)
    )

    def aggregated_part(source: str, specs: dict[str, FeatureSpec]) -> pl.DataFrame:
        cols = {c for s in specs.values() for c in s.inputs()}
        src = _source_df(governed, source, cols)
        agg = SourceAggregates(source=source, schema=dict(src.schema), window=window)
        src = _with_positions(src, positions, source)
        for name, spec in specs.items():
            agg.add(name, spec)
        # Per source, one row per subject: the sources' rows are never joined.
        part = agg.frame(src, key)
        del src
        if done is not None and source != subjects:
            done(source)
        return part

    jobs: dict[str | None, Callable[[], pl.DataFrame]] = {None: subjects_lf.collect}
    jobs.update(
        (source, partial(aggregated_part, source, specs))
        for source in sorted(by_source)
        if (specs := {n: s for n, s in by_source[source].items() if s.is_aggregation})
    )
    # Sources are aggregated two at a time (engine/side_by_side.py), joined in name order.
    done_parts = run_in_order(
        jobs, lambda source: base.height if source is None else governed.frames[source].height
    )
    joined = done_parts.pop(None)
    indicators: list[str] = []
    fills: dict[str, pl.Expr] = {}
    for source, part in done_parts.items():
        assert source is not None
        indicator = f"has_{source}"
        part = part.with_columns(pl.lit(1, dtype=pl.Int8).alias(indicator))
        # Per-subject work only (each part is one row per subject): by position when the
        # frames carry positions, else the in-memory engine's join (half the streaming
        # engine's CPU at this size).
        by_position = attach(joined, part, key) if key == POSITION else None
        joined = by_position if by_position is not None else _left_join(joined, part, key)
        indicators.append(indicator)
        fills[indicator] = pl.lit(0, dtype=pl.Int8)
    del done_parts

    # Combines read the other features before their fills: a term a subject has no rows for
    # adds 0. Evaluated by the streaming engine as before: the two engines' horizontal sums
    # add the terms in different orders (other last bits).
    combines: list[pl.Expr] = []
    for name, spec in built.items():
        if spec.transform is Transform.COMBINE:
            parts: list[pl.Expr] = [
                pl.col(t).cast(pl.Float64).fill_null(0.0) * w
                for t, w in (spec.terms or {}).items()
                if t in built
            ]
            expr = pl.sum_horizontal(parts)
            if spec.scale is not None:
                expr = expr * spec.scale
            combines.append((expr.log1p() if spec.log1p else expr).alias(name))
    if combines:
        joined = joined.lazy().with_columns(combines).collect()
    medians = _medians(joined, built)
    for name, spec in built.items():
        fill = spec.fill
        if fill is None or spec.transform is Transform.COMBINE:
            continue
        if fill == "median":
            fills[name] = pl.lit(medians.get(name))
        else:
            fills[name] = pl.lit(fill)
    filled = joined.with_columns(pl.col(c).fill_null(e).alias(c) for c, e in fills.items())

    roles = {n: s.role for n, s in built.items()}
    features = [n for n, r in roles.items() if r is FeatureRole.CLUSTER]
    descriptors = [n for n, r in roles.items() if r is FeatureRole.DESCRIPTOR]
    kpis = {
        n: built[n].kind.value
        for n, r in roles.items()
        if r in (FeatureRole.KPI, FeatureRole.OUTCOME)
    }
    inputs = [n for n, r in roles.items() if r is FeatureRole.INPUT]
    casts = [pl.col(f).cast(pl.Float64) for f in features]
    casts += [pl.col(d).cast(pl.String) for d in descriptors]
    out = filled.with_columns(casts).select(
        KEY, *features, *indicators, *descriptors, *kpis, *inputs
    )
    if not out.get_column(KEY).is_sorted():  # in order already: the subjects were sorted
        # One row per key, so any sort gives the same order; the threaded one costs about
        # three times the CPU on these string keys.
        out = out.sort(KEY, multithreaded=False)
    return FeatureFrame(
        frame=out,
        features=features,
        descriptors=descriptors,
        indicators=indicators,
        unavailable=dict(sorted(unavailable.items())),
        as_of=as_of,
        kpis=kpis,
        inputs=inputs,
        specs=dict(built),
        specs_declared=dict(declared),
    )


def _left_join(frame: pl.DataFrame, part: pl.DataFrame, key: str) -> pl.DataFrame:
    return (
        frame.lazy()
        .join(part.lazy(), on=key, how="left", maintain_order="left")
        .collect(engine="in-memory")
    )


def _with_positions(
    df: pl.DataFrame, positions: dict[str, pl.Series] | None, source: str
) -> pl.DataFrame:
    if positions is None:
        return df
    return df.hstack([positions[source].alias(POSITION)])


def _medians(frame: pl.DataFrame, built: dict[str, FeatureSpec]) -> dict[str, float]:
    """Median of each 'median'-filled feature over the subjects that have a value: a subject
    without the input sits in the middle of the axis (its has_<source> says so)."""
    names = [n for n, s in built.items() if s.fill == "median"]
    if not names:
        return {}
    row = frame.select(pl.col(n).cast(pl.Float64).median() for n in names).row(0)
    return {n: float(v) if v is not None else 0.0 for n, v in zip(names, row, strict=True)}
