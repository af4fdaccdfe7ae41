"""Enforcement: the EnforcementPlan compiled into Polars expressions over the source frames.

Contract (owned here):
    enforce(sources: SourceFrames, plan: EnforcementPlan, pseudonymiser, as_of) -> GovernedFrames

Order of work, per refresh:
  1. subject facts on the subjects source (age, privacy requests, inactivity), one row per
     customer;
  2. every subject-level rule (exclusions, row rules of the subjects source, nullings)
     evaluated there once,
     giving a small per-customer flag table;
  3. per source: flags joined by subject, per-source row rules, one collect; row accounting
     from the flag columns; excluded rows removed; nullings and column actions applied.
Rules are never evaluated per row in Python: each compiles to one Polars expression.
The token expressions embed keys, so no LazyFrame built here is ever logged or serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from functools import partial

import polars as pl
import structlog

from engine.enforce_actions import Generaliser, action_expr, lineage_entry
from engine.enforce_joins import TOKEN, SubjectLookup, SubjectTokens, row_for_row
from engine.enforce_subjects import SubjectFlags, or_by_reason, subject_facts, subject_flags
from engine.errors import PolicyDenied, PolicyError
from engine.governed import (
    JURISDICTION_MISMATCH,
    REVERSIBLE_DOMAIN,
    SUBJECT,
    SUBJECT_EXCLUDED,
    SUBJECT_UNKNOWN,
    GovernedFrames,
    SourceRowAccounting,
    SubjectPositions,
    TokenSource,
)
from engine.policy.plan import EnforcementPlan, SourcePlan
from engine.side_by_side import THREADS, run_in_order
from engine.sources import SourceFrames

log = structlog.get_logger(__name__)

# The governed-frame types and the join helpers live in their own modules; their names stay
# importable from here, where every reader has always found them.
__all__ = [
    "JURISDICTION_MISMATCH",
    "REVERSIBLE_DOMAIN",
    "SUBJECT",
    "SUBJECT_EXCLUDED",
    "SUBJECT_UNKNOWN",
    "GovernedFrames",
    "SourceRowAccounting",
    "SubjectPositions",
    "TokenSource",
    "enforce",
]


# ---------------------------------------------------------------- per source

# A source's governed rows, accounting, lineage entries and subject positions.
_Governed = tuple[
    pl.DataFrame, SourceRowAccounting, dict[str, dict[str, str]], SubjectPositions | None
]


def _govern_source(
    name: str,
    sources: SourceFrames,
    sp: SourcePlan,
    flags: SubjectFlags,
    plan: EnforcementPlan,
    pseudonymiser: TokenSource,
    generaliser: Generaliser,
    as_of: date,
    subjects_source: str,
    tokens: SubjectTokens,
    lookup: SubjectLookup,
    release: Callable[[pl.DataFrame], None] | None = None,
) -> _Governed:
    """`release(rest)`, when given, replaces the source's rows by `rest` (what is still to
    be copied): the raw columns go as soon as their kept rows exist."""
    subject = sp.subject_column
    # Only `frame` may hold the raw rows from here on (see `release`).
    spec, src_acc, uncarried, frame = (
        sources.frames[name].spec,
        sources.frames[name].accounting,
        sources.frames[name].uncarried,
        sources.frames[name].frame,
    )
    declared = set(spec.columns)
    if "_row" not in frame.columns:
        frame = frame.with_row_index("_row", offset=1)
    # Columns the plan drops need not be here: the scan carries only what the plan uses.
    # A planned column the scan was told no later stage reads (`src.uncarried`) is not built.
    missing = [
        c
        for c, a in sp.columns.items()
        if a.action != "drop" and c not in frame.columns and c not in uncarried
    ]
    if missing or subject not in frame.columns:
        raise PolicyError(
            f"source '{name}' lacks planned column(s): {', '.join(sorted(missing or [subject]))}",
            reasons=["enforce.column_missing"],
        )
    undeclared = [c for c in frame.columns if c != "_row" and c not in declared]
    if undeclared:
        # A column nobody declared has no classification and no action: it never passes.
        log.warning("enforce.undeclared_columns_dropped", source=name, count=len(undeclared))

    lf = frame.lazy()
    keep_flag_cols = list(flags.nullings.get(name, {}).values())
    subject_action = sp.columns.get(subject)
    nulled = {c for n in sp.nullings for c in n.columns}
    # A nulled subject value must never be tokenised: that rare plan tokenises row by row.
    joined_token = (
        subject_action is not None
        and subject_action.action == "pseudonymise"
        and subject not in nulled
    )
    table_df = flags.table
    if joined_token:
        # The join carries each row's subject position (4 bytes), not its token string: the
        # tokens are gathered for the kept rows only.
        table_df = table_df.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(TOKEN))
        keep_flag_cols.append(TOKEN)
    table = table_df.lazy().rename({flags.table.columns[0]: subject})
    if frame.height * 8 <= table_df.height:
        # A small source (a few subjects' requests, wallets) joins only its own subjects:
        # the join otherwise hashes the whole per-subject table (1.6M ids at 10M) per source.
        table = table.filter(pl.col(subject).is_in(frame.get_column(subject).implode()))
    reasons: dict[str, pl.Expr] = {}
    if name == subjects_source:
        own = [*flags.subject_reasons, *keep_flag_cols]
        if row_for_row(flags.table, frame.get_column(subject)):
            # The flags were computed from these very rows, in this order: row i's are its own.
            lf = frame.hstack(table_df.select(own).get_columns()).lazy()
        else:
            lf = lf.join(table.select(subject, *own), on=subject, how="left", maintain_order="left")
        for c, reason in flags.subject_reasons.items():
            reasons[reason] = pl.col(c).fill_null(True)
    else:
        any_subject = (
            pl.any_horizontal(pl.col(c) for c in flags.subject_reasons)
            if flags.subject_reasons
            else pl.lit(False)
        )
        table = table.select(
            subject,
            any_subject.alias("_subject_excluded"),
            pl.lit(True).alias("_known"),
            *keep_flag_cols,
        )
        per_row = lookup.per_row(frame.get_column(subject), keep_flag_cols)
        if per_row is None:
            lf = lf.join(table, on=subject, how="left", maintain_order="left")
        else:
            lf = frame.hstack(list(per_row.values())).lazy()
        known = pl.col("_known").fill_null(False)
        # Child rows of an excluded subject go with it; rows whose subject is not a valid
        # subject cannot be checked against subject rules, so they go too.
        reasons[SUBJECT_EXCLUDED] = known & pl.col("_subject_excluded").fill_null(True)
        reasons[SUBJECT_UNKNOWN] = ~known
        schema = dict(frame.schema)
        for reason, expr in or_by_reason(
            [(r.reason, r.condition) for r in sp.row_rules], schema
        ).items():
            reasons[reason] = reasons[reason] | expr if reason in reasons else expr
    jcol = spec.jurisdiction_column
    if jcol in frame.columns:
        reasons[JURISDICTION_MISMATCH] = (pl.col(jcol) != plan.jurisdiction).fill_null(True)

    names = {reason: f"_r{i}" for i, reason in enumerate(sorted(reasons))}
    lf = lf.with_columns(reasons[r].alias(c) for r, c in names.items())
    excluded = pl.any_horizontal(pl.col(c) for c in names.values()) if names else pl.lit(False)
    # Only the boolean marks are materialised here, never a second copy of the rows: at 10M
    # customers one jurisdiction's transactions are tens of millions of rows. The flags table
    # has one row per subject, so `marks` is one row per frame row; it carries `_row` so the
    # alignment is checked, never assumed (a streaming collect need not keep row order).
    # The in-memory engine: with a per-subject table of millions of ids the streaming join
    # costs about twice the CPU (measured at 10M; at 1M the two are even).
    marks = lf.select(
        "_row", *dict.fromkeys([*names.values(), *keep_flag_cols]), excluded.alias("_excluded")
    ).collect(engine="in-memory")
    del lf  # it holds the raw frame
    if not marks["_row"].equals(frame["_row"]):
        marks = marks.sort("_row")
        if not marks["_row"].equals(frame["_row"].sort()):
            raise RuntimeError(f"enforce: exclusion marks do not cover source '{name}' row for row")
        frame = frame.sort("_row")

    sums = marks.select(
        pl.len().alias("_n"),
        pl.col("_excluded").sum().alias("_excluded"),
        *(pl.col(c).sum().alias(c) for c in names.values()),
    ).row(0, named=True)
    by_reason = {r: int(sums[c]) for r, c in names.items() if sums[c]}
    quarantined = src_acc.quarantined_rows
    acc = SourceRowAccounting(
        source=name,
        input_rows=int(sums["_n"]) + quarantined,
        quarantined=quarantined,
        excluded=int(sums["_excluded"]),
        kept=int(sums["_n"]) - int(sums["_excluded"]),
        excluded_by_reason=by_reason,
        quarantined_by_reason=dict(src_acc.quarantine_reasons),
    )

    # Only the columns the plan acts on (and the nulling flags) go on; a joined subject's
    # tokens are gathered by position, so its raw values are not copied at all, nor is `_row`
    # when the rows are in file order already.
    acted = [
        c
        for c in spec.columns
        if c in sp.columns and sp.columns[c].action != "drop" and c in frame.columns
    ]
    carry = [c for c in acted if not (joined_token and c == subject)]
    in_order = frame["_row"].is_sorted()
    if not in_order:
        carry.insert(0, "_row")
    keep_rows = ~marks["_excluded"]
    parts = marks.select(keep_flag_cols).filter(keep_rows).get_columns()
    del marks
    # Column by column, each raw column released as soon as its kept rows are copied: the
    # source never sits in memory twice (at 10M one jurisdiction's transactions are 2+ GiB).
    for c in carry:
        parts.insert(len(parts) - len(keep_flag_cols), frame.get_column(c).filter(keep_rows))
        if release is not None:
            frame = frame.drop(c)
            release(frame)
    if release is not None:
        # What is left (`_row`, a joined subject's raw ids: 16 bytes a row, 0.6 GB of 37.7M
        # transactions at 10M) is read no more: it goes before the tokens are gathered.
        frame = frame.clear()
        release(frame)
    kept = pl.DataFrame(parts)
    del parts
    if not in_order:
        kept = kept.sort("_row")
    # Per-customer nulling before column actions, so a nulled value is never tokenised.
    nulls: dict[str, pl.Expr] = {}
    for k, n in enumerate(sp.nullings):
        flag = pl.col(flags.nullings[name][k]).fill_null(True)
        for c in n.columns:
            base = nulls.get(c, pl.col(c))
            nulls[c] = pl.when(flag).then(pl.lit(None, kept.schema[c])).otherwise(base)
    if nulls:
        kept = kept.with_columns(e.alias(c) for c, e in nulls.items())

    exprs: list[pl.Expr] = []
    positions: pl.Series | None = None
    lineage: dict[str, dict[str, str]] = {}
    outputs: set[str] = set()
    for col in spec.columns:
        action = sp.columns.get(col)
        if action is None or action.action == "drop":
            lineage[f"{name}.{col}"] = {
                "action": "drop",
                "input": col,
                "reason": (action.reason if action else "no_policy_action"),
            }
            continue
        out = SUBJECT if col == subject else action.output_name(col)
        if out in outputs:
            raise PolicyError(
                f"source '{name}': two columns would both be named '{out}'",
                reasons=["policy.output_collision"],
            )
        outputs.add(out)
        if col == subject and joined_token:
            subject_tokens = tokens.column(action)
            exprs.append(pl.lit(subject_tokens).gather(pl.col(TOKEN)).alias(out))
            positions = kept.get_column(TOKEN)
            tokens.published(name, action, positions)
        elif col in kept.columns:
            exprs.append(action_expr(col, action, pseudonymiser, generaliser, as_of, out, kept))
        lineage[f"{name}.{col}"] = lineage_entry(col, action, out)
    governed = kept.select(exprs)
    at = None if positions is None else SubjectPositions(governed, positions, subject_tokens)
    return governed, acc, lineage, at


def enforce(
    sources: SourceFrames,
    plan: EnforcementPlan,
    pseudonymiser: TokenSource,
    as_of: date,
    *,
    generaliser: Generaliser | None = None,
    release: bool = False,
) -> GovernedFrames:
    """Apply an allowed plan to the valid source rows; refuse anything the plan does not cover.

    With `release`, each source's rows are dropped from `sources` (in place, metadata kept)
    as soon as its governed frame and accounting exist: the refresh then never holds every
    source's raw rows beside every governed frame.
    """
    if not plan.allowed:
        raise PolicyDenied(
            "enforce was handed a denied plan", reasons=plan.deny_reasons or ["policy.denied"]
        )
    if sources.jurisdiction != plan.jurisdiction:
        raise PolicyError(
            f"sources are for {sources.jurisdiction}, the plan for {plan.jurisdiction}",
            reasons=["enforce.jurisdiction_mismatch"],
        )
    unplanned = sorted(set(sources.frames) - set(plan.sources))
    if unplanned:
        raise PolicyError(
            f"no plan for source(s): {', '.join(unplanned)}", reasons=["policy.source_missing"]
        )
    if sources.subjects not in plan.sources or sources.subjects not in sources.frames:
        raise PolicyError(
            f"the subjects source '{sources.subjects}' and its plan are required",
            reasons=["input.no_subjects"],
        )
    gen: Generaliser
    if generaliser is None:
        from engine.pseudonym.generalise import generalise_expr

        gen = generalise_expr
    else:
        gen = generaliser

    subjects = subject_facts(sources, as_of)
    flags = subject_flags(
        subjects, plan.sources[sources.subjects].subject_column, plan, sources.subjects
    )
    del subjects  # a plan over the subjects source's raw rows: they go with the source
    tokens = SubjectTokens(flags.table, pseudonymiser)
    lookup = SubjectLookup(flags.table, flags.excluded())
    frames: dict[str, pl.DataFrame] = {}
    accounting: dict[str, SourceRowAccounting] = {}
    column_actions: dict[str, dict[str, str]] = {}
    positions: dict[str, SubjectPositions] = {}

    def govern(name: str) -> _Governed:
        out = _govern_source(
            name,
            sources,
            plan.sources[name],
            flags,
            plan,
            pseudonymiser,
            gen,
            as_of,
            sources.subjects,
            tokens,
            lookup,
            partial(_keep_rest, sources, name) if release else None,
        )
        if release:
            sources.release(name)
        return out

    # Sources are governed two at a time (engine/side_by_side.py); everything below reads
    # the results in name order, as the one-by-one loop did.
    names = sorted(sources.frames)
    done = run_in_order(
        {name: partial(govern, name) for name in names},
        lambda name: sources.frames[name].frame.height,
        threads=_threads(plan),
    )
    for name in names:
        df, acc, lineage, at = done.pop(name)
        frames[name], accounting[name] = df, acc
        if at is not None:
            positions[name] = at
        column_actions.update(lineage)
        log.info(
            "enforce.source",
            source=name,
            input_rows=acc.input_rows,
            kept=acc.kept,
            excluded=acc.excluded,
            quarantined=acc.quarantined,
            reasons=acc.excluded_by_reason,
        )
    return GovernedFrames(
        jurisdiction=plan.jurisdiction,
        purpose=plan.purpose,
        frames=frames,
        accounting=accounting,
        plan_digest=plan.digest(),
        subject_domain=plan.subject_domain,
        column_actions=column_actions,
        subject_tokens=tokens.distinct_published(),
        subject_token_sources=frozenset(tokens.sources),
        subject_positions=positions,
    )


def _threads(plan: EnforcementPlan) -> int:
    """Two threads for every plan. One that tokenises in the reversible domain mints into
    the vault's memo from both: each key context mints under its own lock
    (`TokenMemo.minting`), and the vault files a context's pairs in token order whatever
    order they were minted in (engine/pseudonym/sealing.py), so the filing is the same."""
    del plan
    return THREADS


def _keep_rest(sources: SourceFrames, name: str, rest: pl.DataFrame) -> None:
    sources.frames[name] = replace(sources.frames[name], frame=rest)
