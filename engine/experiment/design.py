"""Designing an experiment on a persona version: who gets which arm, and is it powered?

Assignment is deterministic and keyed: u = HMAC-SHA256(K, "<name>|<token>") read as a number
in [0, 1), with K derived from the workspace master key for this experiment name (HKDF,
domain "experiment"). Nobody can predict or steer an arm without the key; the same name and
version always give the same arms. With `stratify = "persona"` the customers of each
persona are ordered by u and cut at the declared split, so every persona is split exactly;
without it, u is cut directly.

The power table says, per persona, how many customers each arm needs to detect the declared
minimum detectable effect (absolute lift) at the declared alpha (Bonferroni across personas
for planning, since the analysis corrects across them) and power, and whether it has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)

from engine.audit import checkpoint, record
from engine.errors import GateFailed, PolicyDenied, UsageError
from engine.experiment.signed import sign_document
from engine.experiment.stats import sample_size_per_arm
from engine.experiment.store import (
    ASSIGNMENTS,
    DESIGN,
    DESIGN_SIG,
    DESIGN_TYPE,
    experiment_dir,
    publish,
    stage,
)
from engine.features import KEY
from engine.locks import check_name
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

HASH_HEX = 15  # 60 bits of the HMAC: ample resolution for a uniform draw


@dataclass(frozen=True)
class DesignRequest:
    version: str
    name: str
    arms: list[str]
    split: list[int]
    stratify: str  # "persona" | "none"
    actor: str
    mde: float
    alpha: float = 0.05
    power: float = 0.8
    correction: str = "holm"
    min_lift: float | None = None  # default: the MDE
    baseline: float | None = None  # default: each persona's published conversion_rate


def parse_arms(arms: str, split: str) -> tuple[list[str], list[int]]:
    names = [a.strip() for a in arms.split(",") if a.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError("--arms needs at least two distinct names, e.g. control,treatment")
    for a in names:
        check_name("arm", a)
    try:
        shares = [int(s) for s in split.split("/")]
    except ValueError:
        raise UsageError(f"--split '{split}' is not integers separated by '/'") from None
    if len(shares) != len(names) or sum(shares) != 100 or min(shares) <= 0:
        raise UsageError("--split needs one positive share per arm, summing to 100 (e.g. 50/50)")
    return names, shares


def assign_arms(
    assignments: pl.DataFrame, key_hex: str, name: str, arms: list[str], split: list[int], by: str
) -> pl.DataFrame:
    """customer_id, persona_id, arm: one Polars pass, no per-row Python."""
    keyed = pl.concat_str(pl.lit(f"{name}|"), pl.col(KEY))
    digest = keyed.chash.hmac_sha256(key=key_hex)  # type: ignore[attr-defined]
    u = digest.str.slice(0, HASH_HEX).str.to_integer(base=16).cast(pl.Float64) / float(16**HASH_HEX)
    frame = assignments.select(KEY, "persona_id").with_columns(u.alias("_u"))
    if by == "persona":
        # Rank inside each persona (ties, impossible in practice, broken by token).
        frame = frame.sort("_u", KEY).with_columns(
            (
                (pl.int_range(pl.len()).over("persona_id").cast(pl.Float64) + 0.5)
                / pl.len().over("persona_id").cast(pl.Float64)
            ).alias("_u")
        )
    cuts = [sum(split[: i + 1]) / 100 for i in range(len(split) - 1)]
    arm: pl.Expr = pl.lit(arms[-1])
    for cut, label in reversed(list(zip(cuts, arms, strict=False))):
        arm = pl.when(pl.col("_u") < cut).then(pl.lit(label)).otherwise(arm)
    return frame.with_columns(arm.alias("arm")).drop("_u").sort(KEY)


def _counts(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    rows = frame.group_by("persona_id", "arm").len().sort("persona_id", "arm").iter_rows()
    out: dict[str, dict[str, int]] = {}
    for pid, arm, n in rows:  # one row per persona x arm
        out.setdefault(str(pid), {})[str(arm)] = int(n)
    return out


def _baselines(personas: dict[str, Any], declared: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in personas.get("personas", []):
        rate = declared if declared is not None else (p.get("kpis") or {}).get("conversion_rate")
        out[str(p["persona_id"])] = float(rate) if rate is not None else None
    return out


def power_table(
    counts: dict[str, dict[str, int]], baselines: dict[str, float | None], req: DesignRequest
) -> dict[str, Any]:
    m = max(1, len(counts))
    planning_alpha = req.alpha / m if req.correction == "holm" else req.alpha
    rows: dict[str, Any] = {}
    for pid, arms in sorted(counts.items(), key=lambda kv: int(kv[0])):
        base = baselines.get(pid)
        smallest = min(arms.get(a, 0) for a in req.arms)
        need = (
            sample_size_per_arm(base, req.mde, planning_alpha, req.power)
            if base is not None and 0 < base < 1 and base + req.mde <= 1
            else None
        )
        rows[pid] = {
            "baseline": None if base is None else round(base, 6),
            "required_per_arm": need,
            "smallest_arm": smallest,
            "powered": need is not None and smallest >= need,
        }
    # The pooled comparison (what the criteria judge) at the unadjusted alpha.
    sizes = {pid: sum(arms.values()) for pid, arms in counts.items()}
    known = {pid: b for pid, b in baselines.items() if b is not None and pid in sizes}
    total = sum(sizes[p] for p in known)
    base = sum(b * sizes[p] for p, b in known.items()) / total if total else None
    smallest = min(sum(arms.get(a, 0) for arms in counts.values()) for a in req.arms)
    need = (
        sample_size_per_arm(base, req.mde, req.alpha, req.power)
        if base is not None and 0 < base < 1 and base + req.mde <= 1
        else None
    )
    return {
        "mde": req.mde,
        "alpha": req.alpha,
        "planning_alpha": round(planning_alpha, 8),
        "power": req.power,
        "personas": rows,
        "pooled": {
            "baseline": None if base is None else round(base, 6),
            "required_per_arm": need,
            "smallest_arm": smallest,
            "powered": need is not None and smallest >= need,
        },
    }


def design_experiment(ws: Workspace, req: DesignRequest) -> dict[str, Any]:
    """Assign, plan, sign and publish `experiments/<name>/`; audited whether allowed or not."""
    from engine.activation.policy import authorize_action
    from engine.pseudonym.keyring import Keyring
    from engine.segment.io import read_assignments, read_personas
    from engine.versions import resolve_version

    check_name("experiment", req.name)
    if req.stratify not in ("persona", "none"):
        raise UsageError("--stratify must be 'persona' or 'none'")
    if not 0 < req.mde < 1 or not 0 < req.alpha < 1 or not 0 < req.power < 1:
        raise UsageError("--mde, --alpha and --power must lie strictly between 0 and 1")
    if req.correction not in ("holm", "bh"):
        raise UsageError("--correction must be 'holm' or 'bh'")
    if experiment_dir(ws, req.name).exists():
        raise UsageError(f"experiment '{req.name}' already exists; names are never reused")
    vdir = resolve_version(ws, req.version)
    manifest = json.loads((vdir / "manifest.json").read_bytes())
    j, p, vid = manifest["jurisdiction"], manifest["purpose"], manifest["version_id"]
    resource = {"jurisdiction": j, "purpose": p, "version_id": vid, "experiment": req.name}
    try:
        authorize_action(ws, req.actor, "experiment_design", resource)
    except PolicyDenied as exc:
        record(ws, "experiment_denied", req.actor, step="design", reasons=exc.reasons, **resource)
        checkpoint(ws)
        raise
    if manifest.get("validity") != "valid":
        record(ws, "experiment_refused", req.actor, reason="version_invalid", **resource)
        checkpoint(ws)
        raise GateFailed(f"{j}/{p}/{vid} failed its validation gates; no experiment on it")
    keyring = Keyring.load(ws)
    key_hex = keyring.derive("experiment", req.name).hex()
    frame = assign_arms(
        read_assignments(vdir), key_hex, req.name, req.arms, req.split, req.stratify
    )
    counts = _counts(frame)
    statement = sha256_hex((vdir / "statement.dsse.json").read_bytes())
    doc = {
        "format": "pgov.experiment/1",
        "name": req.name,
        "version": {
            "jurisdiction": j,
            "purpose": p,
            "version_id": vid,
            "statement_sha256": statement,
        },
        "arms": req.arms,
        "control": req.arms[0],
        "split": req.split,
        "stratify": req.stratify,
        "assignment": {
            "hash": "hmac-sha256",
            "key_domain": "experiment",
            "key_version": keyring.current_version,
        },
        "criteria": {
            "alpha": req.alpha,
            "correction": req.correction,
            "min_lift": req.min_lift if req.min_lift is not None else req.mde,
            "rule": "pooled lift >= min_lift with p < alpha, and no persona significantly "
            "harmed after correction",
        },
        "power": power_table(counts, _baselines(read_personas(vdir), req.baseline), req),
        "counts": counts,
        "customers": frame.height,
        "designed_by": req.actor,
    }
    staged = stage(ws, req.name)
    frame.write_parquet(staged / ASSIGNMENTS, compression="zstd", compression_level=3)
    (staged / DESIGN).write_bytes(canonical_json(doc) + b"\n")
    sign_document(
        ws, staged / DESIGN_SIG, DESIGN_TYPE, doc, [staged / DESIGN, staged / ASSIGNMENTS]
    )
    publish(staged, experiment_dir(ws, req.name))
    record(
        ws,
        "experiment_designed",
        req.actor,
        **resource,
        arms=req.arms,
        split=req.split,
        customers=frame.height,
        design_sha256=sha256_hex((experiment_dir(ws, req.name) / DESIGN).read_bytes()),
    )
    checkpoint(ws)
    return doc
