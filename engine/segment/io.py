"""Persistence of a Segmentation inside a version directory.

assignments.parquet  customer_id (token), persona_id, persona_name; sorted by token,
                     written with fixed settings so the same segmentation gives the
                     same bytes (the lineage statement hashes them)
personas.json        canonical JSON (sorted keys, no white space): strategy, params,
                     validity, gates, personas, population, suppressed cells
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import BadInputError
from engine.features import KEY
from engine.segment.model import Segmentation
from lineage.canonical import canonical_json

ASSIGNMENTS = "assignments.parquet"
PERSONAS = "personas.json"
FORMAT = "pgov.personas/1"


def _finite(obj: Any) -> Any:
    """Canonical JSON refuses NaN/inf: they become null (and never appear in valid data)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def personas_document(seg: Segmentation) -> dict[str, Any]:
    return _finite(
        {
            "format": FORMAT,
            "strategy": seg.strategy,
            "params": seg.params,
            "validity": "valid" if seg.valid else "invalid",
            "gates": [asdict(g) for g in seg.gates],
            "personas": [asdict(p) for p in seg.personas],
            "population": seg.population,
            "suppressed": seg.suppressed,
            "customers": int(seg.assignments.height),
            **({"kpi_units": dict(sorted(seg.kpi_units.items()))} if seg.kpi_units else {}),
        }
    )


def write_segmentation(seg: Segmentation, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    assignments = directory / ASSIGNMENTS
    (
        seg.assignments.select(
            pl.col(KEY).cast(pl.String),
            pl.col("persona_id").cast(pl.Int64),
            pl.col("persona_name").cast(pl.String),
        )
        .sort(KEY)
        .write_parquet(assignments, compression="zstd", compression_level=3, statistics=True)
    )
    personas = directory / PERSONAS
    personas.write_bytes(canonical_json(personas_document(seg)))
    written = [assignments, personas]
    for name, doc in sorted(seg.artifacts.items()):
        if "/" in name or not name.endswith(".json") or name in (PERSONAS,):
            raise ValueError(f"segmentation artifact name not allowed: {name}")
        path = directory / name
        path.write_bytes(canonical_json(_finite(doc)))
        written.append(path)
    return written


def read_personas(directory: Path) -> dict[str, Any]:
    path = directory / PERSONAS
    if not path.is_file():
        raise BadInputError(f"{path}: no personas file (not a persona version directory?)")
    try:
        doc = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInputError(f"{path}: not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadInputError(f"{path}: not a {FORMAT} document")
    return doc


def read_assignments(directory: Path) -> pl.DataFrame:
    path = directory / ASSIGNMENTS
    if not path.is_file():
        raise BadInputError(f"{path}: no assignments file (not a persona version directory?)")
    try:
        frame = pl.read_parquet(path)
    except Exception:  # polars raises several error types for unreadable files
        raise BadInputError(f"{path}: not a readable Parquet file") from None
    missing = {KEY, "persona_id"} - set(frame.columns)
    if missing:
        raise BadInputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return frame.sort(KEY)
