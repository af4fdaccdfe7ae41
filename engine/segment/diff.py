"""Version diff: where customers moved between two persona versions, and how personas changed.

- Migration matrix: customers joined on their token (same pseudonymisation domain and key
  version in both versions, or nobody matches), counted per (persona in V1, persona in V2),
  plus customers only in V1 ("left") or only in V2 ("joined"). Every published cell below the
  k-anonymity minimum (the larger of the two versions' k) is suppressed and recorded.
- Matching: each V1 persona is matched to the V2 persona that received most of its
  customers (computed before suppression; only the match is published, not the count).
- Size change: relative change of share, (share2 - share1) / share1, for matched pairs.
- Centroid shift: root-mean-square of the centroid differences in V1 population standard
  deviations over the features both versions have.
Past `max_shift` / `max_size_change`, a persona is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.features import KEY
from engine.pseudonym.kanon import SUPPRESSED_FLAG, suppress_small_cells
from engine.segment.io import read_assignments, read_personas

DEFAULT_MAX_SHIFT = 0.5
DEFAULT_MAX_SIZE_CHANGE = 0.25
NONE_LABEL = "-"  # "not in this version" in the migration matrix


@dataclass(frozen=True)
class PersonaChange:
    persona_id: int
    name: str
    matched_id: int | None
    matched_name: str | None
    share_v1: float
    share_v2: float | None
    size_change: float | None
    centroid_shift: float | None
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PersonaDiff:
    v1: str
    v2: str
    k: int
    common_customers: int | None  # None when 0 < overlap < k (a small cell itself)
    # rows: from_id, from_name, to_id, to_name, count (None when suppressed)
    migration: list[dict[str, Any]]
    changes: list[PersonaChange]
    new_personas: list[dict[str, Any]]
    suppressed: list[dict[str, Any]]
    max_shift: float
    max_size_change: float

    @property
    def flagged(self) -> bool:
        return any(c.flags for c in self.changes) or bool(self.new_personas)

    def as_dict(self) -> dict[str, Any]:
        return {
            "v1": self.v1,
            "v2": self.v2,
            "k": self.k,
            "common_customers": self.common_customers,
            "migration": self.migration,
            "changes": [c.__dict__ for c in self.changes],
            "new_personas": self.new_personas,
            "suppressed": self.suppressed,
            "thresholds": {"max_shift": self.max_shift, "max_size_change": self.max_size_change},
            "flagged": self.flagged,
        }


def _shift(
    c1: dict[str, float], c2: dict[str, float], pop: dict[str, dict[str, float]]
) -> float | None:
    feats = sorted(f for f in c1 if f in c2 and f in pop and pop[f].get("std", 0.0) > 1e-12)
    if not feats:
        return None
    sq = [((c1[f] - c2[f]) / pop[f]["std"]) ** 2 for f in feats]
    return round(math.sqrt(sum(sq) / len(sq)), 6)


def migration_counts(a1: pl.DataFrame, a2: pl.DataFrame) -> pl.DataFrame:
    """from_id, to_id, count over the full outer join on token (-1 = absent)."""
    left = a1.lazy().select(KEY, pl.col("persona_id").alias("from_id"))
    right = a2.lazy().select(KEY, pl.col("persona_id").alias("to_id"))
    return (
        left.join(right, on=KEY, how="full", coalesce=True)
        .group_by(pl.col("from_id").fill_null(-1), pl.col("to_id").fill_null(-1))
        .agg(pl.len().alias("count"))
        .sort("from_id", "to_id")
        .collect()
    )


def diff_versions(
    dir1: Path,
    dir2: Path,
    *,
    max_shift: float = DEFAULT_MAX_SHIFT,
    max_size_change: float = DEFAULT_MAX_SIZE_CHANGE,
) -> PersonaDiff:
    p1, p2 = read_personas(dir1), read_personas(dir2)
    a1, a2 = read_assignments(dir1), read_assignments(dir2)
    k = max(int(p1["params"].get("k_anonymity", 1)), int(p2["params"].get("k_anonymity", 1)), 1)
    names1 = {int(p["persona_id"]): str(p["name"]) for p in p1["personas"]}
    names2 = {int(p["persona_id"]): str(p["name"]) for p in p2["personas"]}
    counts = migration_counts(a1, a2)
    common = int(counts.filter((pl.col("from_id") >= 0) & (pl.col("to_id") >= 0))["count"].sum())

    # The best match uses the unsuppressed counts; only the pairing is published.
    matched = (
        counts.filter((pl.col("from_id") >= 0) & (pl.col("to_id") >= 0))
        .sort(["from_id", "count", "to_id"], descending=[False, True, False])
        .group_by("from_id", maintain_order=True)
        .first()
    )
    match = dict(zip(matched["from_id"].to_list(), matched["to_id"].to_list(), strict=True))

    labelled = counts.with_columns(
        pl.col("from_id")
        .replace_strict(names1, default=NONE_LABEL, return_dtype=pl.String)
        .alias("from_name"),
        pl.col("to_id")
        .replace_strict(names2, default=NONE_LABEL, return_dtype=pl.String)
        .alias("to_name"),
        pl.col("from_id").cast(pl.String),
        pl.col("to_id").cast(pl.String),
    )
    published, suppressed = suppress_small_cells(labelled, "count", k, "persona_migration")
    migration = [
        {
            "from_id": None if r["from_id"] == "-1" else int(r["from_id"]),
            "from_name": r["from_name"],
            "to_id": None if r["to_id"] == "-1" else int(r["to_id"]),
            "to_name": r["to_name"],
            "count": r["count"],
            "suppressed": bool(r[SUPPRESSED_FLAG]),
        }
        for r in published.iter_rows(named=True)  # one row per matrix cell
    ]

    by2 = {int(p["persona_id"]): p for p in p2["personas"]}
    pop1 = p1.get("population", {})
    changes: list[PersonaChange] = []
    for p in p1["personas"]:  # one per persona
        pid = int(p["persona_id"])
        to = match.get(pid)
        q = by2.get(to) if to is not None else None
        share1 = float(p["share"])
        share2 = float(q["share"]) if q is not None else None
        size_change = (
            round((share2 - share1) / share1, 6) if share2 is not None and share1 > 0 else None
        )
        shift = _shift(p.get("centroid", {}), q.get("centroid", {}), pop1) if q else None
        flags: list[str] = []
        if q is None:
            flags.append("no_match")
        if size_change is not None and abs(size_change) > max_size_change:
            flags.append("size_change")
        if shift is not None and shift > max_shift:
            flags.append("centroid_shift")
        changes.append(
            PersonaChange(
                persona_id=pid,
                name=names1[pid],
                matched_id=to,
                matched_name=names2.get(to) if to is not None else None,
                share_v1=share1,
                share_v2=share2,
                size_change=size_change,
                centroid_shift=shift,
                flags=flags,
            )
        )
    targets = set(match.values())
    new_personas = [
        {"persona_id": int(q["persona_id"]), "name": str(q["name"]), "share": q["share"]}
        for q in p2["personas"]
        if int(q["persona_id"]) not in targets
    ]
    if 0 < common < k:
        suppressed.append(
            {
                "table": "persona_migration",
                "cell": {"total": "common_customers"},
                "reason": "k_anonymity_below_minimum",
                "k": k,
                "columns": ["count"],
            }
        )
    return PersonaDiff(
        v1=str(dir1),
        v2=str(dir2),
        k=k,
        common_customers=None if 0 < common < k else common,
        migration=migration,
        changes=changes,
        new_personas=new_personas,
        suppressed=suppressed,
        max_shift=max_shift,
        max_size_change=max_size_change,
    )
