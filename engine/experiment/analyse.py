"""Analysing an experiment once its outcomes have arrived.

The outcomes are a declared source (raw customer ids, like every source): they are read
through the same policy decision and enforcement as a refresh of the version's purpose, so
the analysis sees tokens only and honours every exclusion in force today (an erased
customer leaves the analysis too). Each experiment customer is then "observed" (has an
outcome row) or not; only observed customers enter the rates, and the counts say so.

Per persona and treatment arm: rates, absolute lift over control, 95 % interval, p-value
(z or Fisher, engine.experiment.stats), p-values adjusted across personas (Holm or BH).
Pooled over personas: the same comparison, against the declared criteria. Costs per arm
(integer cents) and a value per conversion give revenue, ROI and incremental ROI.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from engine.audit import checkpoint, record
from engine.config import ColumnType
from engine.errors import BadInputError, PolicyDenied, UsageError
from engine.experiment.signed import sign_document
from engine.experiment.stats import adjust, compare
from engine.experiment.store import (
    ANALYSIS_TYPE,
    ASSIGNMENTS,
    DESIGN_SIG,
    experiment_dir,
    load_design,
    next_analysis,
)
from engine.features import KEY
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex


def parse_costs(text: str | None, arms: list[str]) -> dict[str, int]:
    """ "control=0,treatment=1500.50" -> {arm: cents}; every arm must be named once."""
    if not text:
        return {}
    out: dict[str, int] = {}
    for part in text.split(","):
        arm, _, amount = part.partition("=")
        arm = arm.strip()
        try:
            cents = round(float(amount) * 100)
        except ValueError:
            raise UsageError(f"--cost: '{part}' is not ARM=AMOUNT") from None
        if arm not in arms or arm in out or cents < 0:
            raise UsageError(f"--cost: '{arm}' is not an arm of this experiment (or repeated)")
        out[arm] = cents
    if set(out) != set(arms):
        raise UsageError(f"--cost needs a cost for every arm ({', '.join(arms)})")
    return out


def _outcome_column(ws: Workspace, source: str, column: str | None) -> str:
    if source not in ws.config.sources:
        raise BadInputError(f"--outcomes: '{source}' is not a source declared in pgov.toml")
    cols = ws.config.sources[source].columns
    if column is not None:
        if column not in cols or cols[column].type is not ColumnType.BOOL:
            raise BadInputError(f"{source}.{column}: not a declared boolean column")
        return column
    found = [
        c
        for c, s in cols.items()
        if s.classification.value == "outcome" and s.type is ColumnType.BOOL
    ]
    if len(found) != 1:
        raise UsageError(
            f"--outcomes {source}: {len(found)} boolean outcome columns; name one with --column"
        )
    return found[0]


def governed_outcomes(
    ws: Workspace, design: dict[str, Any], source: str, column: str, actor: str, as_of: date
) -> pl.DataFrame:
    """customer_id (token), converted (bool) per customer, through policy and enforcement."""
    from engine.config import Purpose
    from engine.enforce import enforce
    from engine.policy.decide import decide, engine_for
    from engine.pseudonym import Pseudonymiser
    from engine.request import RefreshRequest
    from engine.sources import load_sources

    v = design["version"]
    request = RefreshRequest(
        actor=actor, jurisdiction=v["jurisdiction"], purpose=Purpose(v["purpose"]), as_of=as_of
    )
    plan = decide(ws, request, engine_for(ws))
    governed = enforce(
        load_sources(ws, v["jurisdiction"], as_of), plan, Pseudonymiser.for_workspace(ws), as_of
    )
    frame = governed.frames.get(source)
    if frame is None or column not in frame.columns or KEY not in frame.columns:
        raise PolicyDenied(
            f"policy does not let {source}.{column} through for {v['purpose']}: cannot analyse",
            reasons=["experiment.outcome_not_permitted"],
        )
    return frame.group_by(KEY).agg(pl.col(column).cast(pl.Boolean).any().alias("converted"))


def _roi(
    costs: dict[str, int], value_cents: int | None, arms: dict[str, Any], control: str
) -> dict[str, Any]:
    """Per arm: cost, revenue, ROI; per treatment arm also the incremental ROI over control
    (control's conversions and cost scaled to the treatment arm's size)."""
    if not costs:
        return {}
    out: dict[str, Any] = {}
    n_c = arms[control]["customers"]
    for arm, cents in costs.items():
        conv, n = arms[arm]["conversions"], arms[arm]["customers"]
        revenue = conv * value_cents if value_cents is not None else None
        row: dict[str, Any] = {
            "cost_cents": cents,
            "revenue_cents": revenue,
            "roi": round((revenue - cents) / cents, 6) if revenue is not None and cents else None,
        }
        if arm != control and n_c and value_cents is not None:
            scale = n / n_c
            extra_conv = conv - arms[control]["conversions"] * scale
            extra_cost = cents - costs[control] * scale
            row["incremental_conversions"] = round(extra_conv, 6)
            row["incremental_roi"] = (
                round((extra_conv * value_cents - extra_cost) / extra_cost, 6)
                if extra_cost > 0
                else None
            )
        out[arm] = row
    return out


def analyse_experiment(
    ws: Workspace,
    name: str,
    source: str,
    actor: str,
    as_of: date,
    column: str | None = None,
    costs: str | None = None,
    value_per_conversion: float | None = None,
) -> dict[str, Any]:
    from engine.activation.policy import authorize_action

    design = load_design(ws, name)
    v = design["version"]
    resource = {
        "jurisdiction": v["jurisdiction"],
        "purpose": v["purpose"],
        "version_id": v["version_id"],
        "experiment": name,
    }
    try:
        authorize_action(ws, actor, "experiment_analyse", resource)
        col = _outcome_column(ws, source, column)
        outcomes = governed_outcomes(ws, design, source, col, actor, as_of)
    except PolicyDenied as exc:
        record(ws, "experiment_denied", actor, step="analyse", reasons=exc.reasons, **resource)
        checkpoint(ws)
        raise
    arms, control = list(design["arms"]), design["control"]
    cost_cents = parse_costs(costs, arms)
    assigned = pl.read_parquet(experiment_dir(ws, name) / ASSIGNMENTS)
    joined = assigned.join(outcomes, on=KEY, how="left")
    observed = joined.filter(pl.col("converted").is_not_null())
    cells = {
        (int(pid), str(arm)): (int(n), int(x))
        for pid, arm, n, x in observed.group_by("persona_id", "arm")
        .agg(pl.len().alias("n"), pl.col("converted").cast(pl.Int64).sum().alias("x"))
        .sort("persona_id", "arm")
        .iter_rows()  # one row per persona x arm
    }
    personas = sorted({int(p) for p in assigned.get_column("persona_id").unique().to_list()})
    per_persona: dict[str, Any] = {}
    criteria = design["criteria"]
    pooled: dict[str, Any] = {}
    for arm in arms[1:]:
        comps = {}
        for pid in personas:
            n_c, x_c = cells.get((pid, control), (0, 0))
            n_t, x_t = cells.get((pid, arm), (0, 0))
            comps[pid] = compare(x_c, n_c, x_t, n_t)
        adjusted = adjust([comps[p].p_value for p in personas], criteria["correction"])
        for pid, adj in zip(personas, adjusted, strict=True):
            row = {**comps[pid].to_json(), "p_adjusted": round(adj, 6)}
            per_persona.setdefault(str(pid), {})[arm] = row
        tot_c = [sum(cells.get((p, control), (0, 0))[i] for p in personas) for i in (0, 1)]
        tot_t = [sum(cells.get((p, arm), (0, 0))[i] for p in personas) for i in (0, 1)]
        pooled[arm] = compare(tot_c[1], tot_c[0], tot_t[1], tot_t[0]).to_json()
    met, reasons = _criteria(criteria, pooled, per_persona)
    arm_totals = {
        a: {
            "customers": sum(cells.get((p, a), (0, 0))[0] for p in personas),
            "conversions": sum(cells.get((p, a), (0, 0))[1] for p in personas),
        }
        for a in arms
    }
    value_cents = round(value_per_conversion * 100) if value_per_conversion is not None else None
    d = experiment_dir(ws, name)
    doc = {
        "format": "pgov.experiment_analysis/1",
        "experiment": name,
        "design_envelope_sha256": sha256_hex((d / DESIGN_SIG).read_bytes()),
        "version": v,
        "outcomes": {"source": source, "column": col, "as_of": as_of.isoformat()},
        "accounting": {
            "assigned": assigned.height,
            "observed": observed.height,
            "no_outcome": assigned.height - observed.height,
        },
        "arms": arm_totals,
        "pooled": pooled,
        "personas": per_persona,
        "criteria": {**criteria, "met": met, "reasons": reasons},
        "roi": _roi(cost_cents, value_cents, arm_totals, control),
        "value_per_conversion_cents": value_cents,
        "analysed_by": actor,
    }
    stem = next_analysis(ws, name)
    path = d / f"{stem}.json"
    path.write_bytes(canonical_json(doc) + b"\n")
    sign_document(ws, d / f"{stem}.dsse.json", ANALYSIS_TYPE, doc, [path, d / DESIGN_SIG])
    record(
        ws,
        "experiment_analysed",
        actor,
        **resource,
        analysis=stem,
        criteria_met=met,
        analysis_sha256=sha256_hex(path.read_bytes()),
    )
    checkpoint(ws)
    return doc


def _criteria(
    criteria: dict[str, Any], pooled: dict[str, Any], per_persona: dict[str, Any]
) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    alpha, min_lift = float(criteria["alpha"]), float(criteria["min_lift"])
    for arm, res in sorted(pooled.items()):
        if res["test"] == "none":
            reasons.append(f"{arm}: no observed outcomes in an arm")
        elif res["lift"] < min_lift:
            reasons.append(f"{arm}: pooled lift {res['lift']:.4f} below min_lift {min_lift}")
        elif res["p_value"] >= alpha:
            reasons.append(f"{arm}: pooled p-value {res['p_value']:.4f} not below alpha {alpha}")
    for pid, arms in sorted(per_persona.items(), key=lambda kv: int(kv[0])):
        for arm, res in sorted(arms.items()):
            if res["lift"] < 0 and res["p_adjusted"] < alpha:
                reasons.append(f"{arm}: persona {pid} significantly harmed (adjusted p)")
    return not reasons, reasons
