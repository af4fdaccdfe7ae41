"""Subjects for enforcement: the per-subject facts subject-level rules may name (age,
privacy requests, inactivity), the per-subject flag table every source's rows join, and the
columns enforcement needs from each source (what `load_sources(keep=...)` carries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from engine.conditions import Condition, compile_condition
from engine.config import PrivacyRole, SourceSpec, WorkspaceConfig
from engine.errors import PolicyError
from engine.policy.plan import EnforcementPlan
from engine.sources import SourceFrames

# The inactivity fact reads this column of the subjects source when it is declared.
_FACT_ROLES = (
    PrivacyRole.DATE_OF_BIRTH,
    PrivacyRole.PRIVACY_REQUEST_TYPE,
    PrivacyRole.PRIVACY_REQUEST_DATE,
)


# ---------------------------------------------------------------- subject facts


def _age_years(dob: pl.Expr, as_of: date) -> pl.Expr:
    """Whole years as of the refresh date (birthday not yet reached this year: minus one)."""
    before_birthday = (dob.dt.month().cast(pl.Int32) * 100 + dob.dt.day().cast(pl.Int32)) > (
        as_of.month * 100 + as_of.day
    )
    return (pl.lit(as_of.year, pl.Int32) - dob.dt.year().cast(pl.Int32)) - before_birthday.cast(
        pl.Int32
    )


def _role_column(spec: SourceSpec, role: PrivacyRole) -> str | None:
    return next((c for c, s in spec.columns.items() if s.role == role), None)


def _requests(sources: SourceFrames, subject: str, as_of: date) -> pl.LazyFrame | None:
    """Per-subject request facts from the source whose column plays privacy_request_type."""
    found = [
        (f, col)
        for f in sources.frames.values()
        if (col := _role_column(f.spec, PrivacyRole.PRIVACY_REQUEST_TYPE)) is not None
    ]
    if not found or found[0][1] not in found[0][0].frame.columns:
        return None
    pr, type_col = found[0]
    lf = pr.frame.lazy()
    date_col = _role_column(pr.spec, PrivacyRole.PRIVACY_REQUEST_DATE)
    if date_col and date_col in pr.frame.columns:
        # A request filed after the refresh date does not exist yet for this run.
        lf = lf.filter(pl.col(date_col).cast(pl.Date) <= as_of)
    kind = pl.col(type_col)
    return lf.group_by(pl.col(pr.spec.subject_column).alias(subject)).agg(
        (kind == "erasure").any().alias("erasure_requested"),
        (kind == "deletion").any().alias("deletion_requested"),
        (kind == "opt_out").any().alias("opt_out_requested"),
    )


def subject_facts(sources: SourceFrames, as_of: date) -> pl.LazyFrame:
    """The subjects source plus the derived per-subject facts subject-level rules may name."""
    src = sources.frames.get(sources.subjects)
    if src is None:
        raise PolicyError(
            f"no rows loaded for the subjects source '{sources.subjects}': subjects cannot be "
            "evaluated",
            reasons=["input.no_subjects"],
        )
    subject = src.spec.subject_column
    cols = src.frame.columns
    lf = src.frame.lazy()
    dob = _role_column(src.spec, PrivacyRole.DATE_OF_BIRTH)
    age = (
        _age_years(pl.col(dob).cast(pl.Date), as_of)
        if dob is not None and dob in cols
        else pl.lit(None, pl.Int32)
    )
    # "Last activity" is the subjects source's declared record date, whatever it is called.
    last = src.spec.record_date_column
    idle = (
        (pl.lit(as_of) - pl.col(last).cast(pl.Date)).dt.total_days()
        if last is not None and last in cols
        else pl.lit(None, pl.Int64)
    )
    lf = lf.with_columns(
        age.alias("age_years"), idle.cast(pl.Int64).alias("days_since_last_activity")
    )
    flags = ["erasure_requested", "deletion_requested", "opt_out_requested"]
    req = _requests(sources, subject, as_of)
    if req is None:
        return lf.with_columns(pl.lit(False).alias(f) for f in flags)
    # In the subjects source's row order: its rows then take their flags by position, not
    # by a join (engine/enforce.py).
    joined = lf.join(req, on=subject, how="left", maintain_order="left")
    return joined.with_columns(pl.col(f).fill_null(False) for f in flags)


# ---------------------------------------------------------------- rules


def or_by_reason(
    rules: list[tuple[str, Condition]], schema: dict[str, pl.DataType]
) -> dict[str, pl.Expr]:
    """One expression per reason code (two rules with one reason count once per row)."""
    out: dict[str, pl.Expr] = {}
    for reason, cond in rules:
        expr = compile_condition(cond, schema)
        out[reason] = out[reason] | expr if reason in out else expr
    return out


@dataclass(frozen=True)
class SubjectFlags:
    table: pl.DataFrame  # subject, _x<i> per subject reason, _n<source>_<k> per nulling
    subject_reasons: dict[str, str]  # internal column -> reason
    nullings: dict[str, dict[int, str]]  # source -> nulling index -> internal column

    def excluded(self) -> pl.Series:
        """Per row of the table: does some subject-level rule exclude the subject?"""
        cols = list(self.subject_reasons)
        any_subject = pl.any_horizontal(pl.col(c) for c in cols) if cols else pl.lit(False)
        return self.table.with_columns(any_subject.alias("_subject_excluded")).get_column(
            "_subject_excluded"
        )


def subject_flags(
    subjects: pl.LazyFrame, subject: str, plan: EnforcementPlan, subjects_source: str
) -> SubjectFlags:
    schema = dict(subjects.collect_schema())
    rules = [(r.reason, r.condition) for r in plan.subject_exclusions]
    subjects_plan = plan.sources[subjects_source]
    rules += [(r.reason, r.condition) for r in subjects_plan.row_rules]
    by_reason = or_by_reason(rules, schema)
    subject_reasons = {f"_x{i}": reason for i, reason in enumerate(sorted(by_reason))}
    exprs = [by_reason[reason].alias(c) for c, reason in subject_reasons.items()]
    nullings: dict[str, dict[int, str]] = {}
    for name, sp in sorted(plan.sources.items()):
        for k, n in enumerate(sp.nullings):
            col = f"_n_{name}_{k}"
            nullings.setdefault(name, {})[k] = col
            exprs.append(compile_condition(n.condition, schema).alias(col))
    table = subjects.select(pl.col(subject), *exprs).collect()
    # A duplicated subject (should be quarantined upstream) gets the union of its flags.
    flag_cols = [c for c in table.columns if c != subject]
    if flag_cols and table[subject].n_unique() != table.height:
        table = table.group_by(subject).agg(pl.col(c).any() for c in flag_cols)
    return SubjectFlags(table=table, subject_reasons=subject_reasons, nullings=nullings)


def needed_columns(plan: EnforcementPlan, config: WorkspaceConfig) -> dict[str, set[str]]:
    """Per planned source, the declared columns a refresh reads after the scan: what `load_
    sources(keep=...)` carries. A column outside this set decides nothing and is never read
    from the governed frames, so not carrying it changes no output (every column is still
    read and checked by the scan).

    Enforcement reads the subject column, the columns its row rules name, the columns the
    subject facts read (roles, inactivity), the columns a nulling empties and, on the
    subjects source, every column a subject-level condition names. Every column the plan
    transforms (pseudonymise, generalise) is carried, with any column a transform's
    parameters name: its output is a token or a band that may be filed (the kyc vault) or
    published. A column the plan passes through unchanged ("keep") is carried only if a
    later stage reads it: a declared feature of this purpose (its inputs: column, time
    column, order, conditions), the value KPIs ([segmentation.value]) or the predictive
    strategy's `source.column` outcome. This list is the contract with those stages; a new
    reader of the governed frames adds itself here.
    """
    subject_conditions: list[Condition] = [r.condition for r in plan.subject_exclusions]
    subject_conditions += [n.condition for sp in plan.sources.values() for n in sp.nullings]
    if config.subjects in plan.sources:
        subject_conditions += [r.condition for r in plan.sources[config.subjects].row_rules]
    read = _read_after_enforce(plan, config)
    out: dict[str, set[str]] = {}
    for name, sp in plan.sources.items():
        spec = config.sources.get(name)
        if spec is None:
            continue
        cols = {c for c, a in sp.columns.items() if a.action not in ("drop", "keep")}
        # A transform may read another column of the row (a postcode's `country_column`):
        # any parameter naming a declared column keeps that column.
        cols |= {
            v
            for c in cols
            for v in dict(sp.columns[c].params).values()
            if isinstance(v, str) and v in spec.columns
        }
        cols |= {c for c, a in sp.columns.items() if a.action == "keep" and c in read[name]}
        cols |= {sp.subject_column, spec.subject_column}
        for rule in sp.row_rules:
            cols |= rule.condition.fields()
        for n in sp.nullings:
            cols |= set(n.columns)
        cols |= {c for c, s in spec.columns.items() if s.role in _FACT_ROLES}
        if name == config.subjects:
            if spec.record_date_column:
                cols.add(spec.record_date_column)
            for cond in subject_conditions:
                cols |= cond.fields()
        out[name] = cols & set(spec.columns)
    return out


def _read_after_enforce(plan: EnforcementPlan, config: WorkspaceConfig) -> dict[str, set[str]]:
    """Source -> declared columns the stages after enforcement read from its governed frame."""
    read: dict[str, set[str]] = {name: set() for name in config.sources}
    for feature in config.features.values():  # engine/features/build.py `for_purpose`
        if plan.purpose in feature.purposes and feature.source in read:
            read[feature.source].update(feature.inputs())
    seg = config.segmentation.for_purpose(plan.purpose)
    value = seg.value  # engine/segment/value.py
    if value is not None:
        if value.source in read:
            read[value.source].update(
                c for c in (value.amount, value.rate, value.tenure_months, value.fees) if c
            )
            if value.loss_when is not None:
                read[value.source] |= value.loss_when.fields()
        if value.applications_source in read and value.approved_column:
            read[value.applications_source].add(value.approved_column)
    if seg.predictive is not None:  # engine/segment/outcome.py: a `source.column` outcome
        source, _, column = seg.predictive.outcome.partition(".")
        if column and source in read:
            read[source].add(column)
    return read
