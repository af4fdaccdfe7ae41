"""Who may be contacted today: a version's customers re-checked at activation time.

A persona version can be weeks old; since then customers withdraw consent, object, ask for
erasure. Activation is direct marketing, so the audience is re-derived from today's data
under today's marketing rules: the policy's marketing plan for the jurisdiction is enforced
on the current sources, and only customers it keeps (by token) stay in the audience. When
the activation decision says the destination's channel is suppressed, the plan's
per-customer nullings named by the decision (e.g. PDPA Do Not Call) become exclusions too,
so those customers are removed for this destination. Same engine, same conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
from pydantic import ValidationError

from engine.errors import PolicyError
from engine.features import KEY
from engine.policy.plan import EnforcementPlan, RowRule
from engine.workspace import Workspace

NULLINGS_PATH = "personagov.decision.nullings"


def subjects_source(ws: Workspace) -> str:
    """The source whose rows are the data subjects, as the workspace declares it."""
    return ws.config.subjects


@dataclass(frozen=True)
class Recheck:
    plan: EnforcementPlan
    # Tokens today's marketing rules keep, and those additionally removed for the channel.
    eligible: pl.DataFrame  # customer_id
    channel_suppressed: int
    excluded_by_reason: dict[str, int]


def _request(actor: str, jurisdiction: str, as_of: date) -> Any:
    from engine.config import Purpose
    from engine.request import RefreshRequest

    return RefreshRequest(
        actor=actor, jurisdiction=jurisdiction, purpose=Purpose.MARKETING, as_of=as_of
    )


def marketing_plan(ws: Workspace, actor: str, jurisdiction: str, as_of: date) -> EnforcementPlan:
    from engine.policy.decide import decide, engine_for

    return decide(ws, _request(actor, jurisdiction, as_of), engine_for(ws))


def _with_channel_exclusions(
    ws: Workspace, plan: EnforcementPlan, reasons: list[str]
) -> EnforcementPlan:
    """The plan plus, as subject exclusions, the policy's per-customer rules named by the
    activation decision. They are read from the marketing decision's full set of nullings:
    the plan itself lists a nulling only where a column survives to be nulled, and for a
    channel like phone the numbers are dropped outright, so the rule would be invisible."""
    from engine.policy.decide import build_input, engine_for

    request = _request(plan.actor, plan.jurisdiction, plan.as_of)
    raw = engine_for(ws).query(NULLINGS_PATH, build_input(ws, request))
    rules: list[RowRule] = []
    for n in raw if isinstance(raw, list) else []:
        if isinstance(n, dict) and n.get("reason") in reasons:
            try:
                rules.append(
                    RowRule(
                        reason=f"channel.{n['reason']}",
                        article=str(n.get("article", "")),
                        condition=n["condition"],
                    )
                )
            except (KeyError, ValidationError):
                raise PolicyError(
                    "a channel suppression rule from policy is malformed; refusing",
                    reasons=["policy.malformed_decision"],
                ) from None
    if not rules:
        raise PolicyError(
            f"the policy suppresses this channel by {', '.join(reasons)} but the marketing "
            "decision has no such per-customer rule; refusing",
            reasons=["activation.channel_suppression_unmapped"],
        )
    return plan.model_copy(update={"subject_exclusions": [*plan.subject_exclusions, *rules]})


def recheck(
    ws: Workspace,
    plan: EnforcementPlan,
    as_of: date,
    suppress_reasons: list[str],
) -> Recheck:
    from engine.enforce import enforce
    from engine.pseudonym import Pseudonymiser
    from engine.pseudonym.keyring import Keyring
    from engine.sources import load_sources

    subjects = subjects_source(ws)
    pseudo = Pseudonymiser(Keyring.load(ws))
    sources = load_sources(ws, plan.jurisdiction, as_of)
    governed = enforce(sources, plan, pseudo, as_of)
    eligible = governed.frames[subjects].select(KEY).unique().sort(KEY)
    suppressed = 0
    by_reason = dict(sorted(governed.accounting[subjects].excluded_by_reason.items()))
    if suppress_reasons:
        narrowed = _with_channel_exclusions(ws, plan, suppress_reasons)
        kept = enforce(sources, narrowed, pseudo, as_of).frames[subjects].select(KEY).unique()
        suppressed = eligible.height - kept.height
        eligible = kept.sort(KEY)
    return Recheck(plan, eligible, suppressed, by_reason)


def content_key(jurisdiction: str, purpose: str, persona: dict[str, Any]) -> str:
    """A stable key a CMS can map to content: jurisdiction, purpose, persona id and name."""
    slug = "-".join(str(persona["name"]).lower().replace("·", " ").split())
    return f"{jurisdiction.lower()}/{purpose}/{int(persona['persona_id'])}-{slug}"


def audience(
    assignments: pl.DataFrame, personas: dict[str, Any], eligible: pl.DataFrame
) -> pl.DataFrame:
    """customer_id, persona_id of customers still eligible today, sorted by token."""
    kept = assignments.select(KEY, "persona_id").join(eligible, on=KEY, how="semi")
    known = {int(p["persona_id"]) for p in personas.get("personas", [])}
    return kept.filter(pl.col("persona_id").is_in(sorted(known))).sort(KEY)
