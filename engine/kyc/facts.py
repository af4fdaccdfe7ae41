"""KYC facts: one row per customer (kyc-domain token) holding everything a rule may name.

Every fact is a declared feature (engine/features): the feature frame's columns under their
names, or under `kyc_fact = "<name>"` when the ruleset uses another name, so an exchange's
or a lender's own tables feed tiering. Joined with the persona assignment and the
refresh's jurisdiction. Two rules shape it, both carried by the declaration:

- Missing screening is not "clear": the sample declares `screened` as a `present`
  aggregation with fill false, so a customer with no screening row is unscreened, which
  the ruleset turns into a reason code and a floor, never into a low tier.
- A fact whose column the policy withheld is absent, so a rule naming it fails to compile
  and the refresh is refused, rather than silently not matching. A fact whose whole source
  is absent takes its declared fill (or is unknown, null) for every customer.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import structlog

from engine.enforce import GovernedFrames
from engine.features import KEY, FeatureFrame
from engine.features.spec import Transform
from engine.segment.model import Segmentation

log = structlog.get_logger(__name__)


def build_facts(
    features: FeatureFrame,
    governed: GovernedFrames,
    segmentation: Segmentation,
    as_of: date,
) -> pl.DataFrame:
    """The facts frame the ruleset's conditions are compiled against, sorted by token."""
    frame = features.frame
    exprs: list[pl.Expr] = [pl.col(KEY)]
    names: set[str] = {KEY}
    aliases = {n: s.kyc_fact for n, s in features.specs.items() if s.kyc_fact}
    for col in frame.columns:
        if col == KEY:
            continue
        name = aliases.get(col, col)
        if name not in names:
            exprs.append(pl.col(col).alias(name))
            names.add(name)
    # Eager and zero-copy: the facts are the feature columns themselves, renamed (a lazy
    # select, join and sort copied every column of 1.6M customers twice at 10M).
    facts = frame.select(exprs)
    # Declared facts whose whole source is absent (no screening table at all): with a fill,
    # the fill holds for everyone (every customer unscreened); without, the fact is unknown
    # (null), which no condition matches. A fact whose source is there but whose column
    # the plan dropped stays absent, so a rule naming it refuses the refresh.
    for name in sorted(features.unavailable):
        spec = features.specs_declared.get(name)
        if spec is None or spec.source is None or "kyc_aml" not in spec.purposes:
            continue
        if spec.source in governed.frames:
            continue
        fact = spec.kyc_fact or name
        if fact in names:
            continue
        if spec.fill is not None:
            value = pl.lit(spec.fill)
        else:
            boolean = spec.transform in (Transform.ANY, Transform.PRESENT)
            value = pl.lit(None, dtype=pl.Boolean if boolean else pl.Float64)
        log.warning("kyc_fact_source_absent", fact=fact, source=spec.source)
        facts = facts.with_columns(value.alias(fact))
        names.add(fact)
    if "jurisdiction" not in names:
        facts = facts.with_columns(pl.lit(governed.jurisdiction).alias("jurisdiction"))
    assignments = segmentation.assignments.select(
        [c for c in (KEY, "persona_id", "persona_name") if c in segmentation.assignments.columns]
    )
    if assignments.width > 1:
        if assignments.get_column(KEY).equals(facts.get_column(KEY)):
            # The assignments are the features' customers in the same order (both sorted by
            # token): the persona columns are attached as they are, no join.
            facts = facts.hstack(assignments.drop(KEY).get_columns())
        else:
            facts = facts.join(assignments.unique(KEY, keep="first"), on=KEY, how="left")
    # Customers in token order; the feature frame comes sorted, and checking is cheaper than
    # a string sort of millions of tokens (keys are unique, so either way gives one order).
    if not facts.get_column(KEY).is_sorted():
        facts = facts.sort(KEY)
    return facts
