"""Routing on disk, inside a version directory:

    routing.parquet   the routing table, sorted by customer token
    queues.json       per-queue summaries (k-anonymity applied) and the ruleset version
    ruleset.json      the ruleset that produced it (so overrides can re-route offline)

Canonical JSON (sorted keys) so the files hash the same for the same content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import BadInputError
from engine.kyc.model import KycRouting
from engine.kyc.ruleset import KycRuleset
from lineage.canonical import canonical_json

ROUTING_FILE = "routing.parquet"
QUEUES_FILE = "queues.json"
RULESET_FILE = "ruleset.json"


def write_routing(routing: KycRouting, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    table_path = directory / ROUTING_FILE
    routing.table.sort("customer_id").write_parquet(table_path, statistics=False)
    queues_path = directory / QUEUES_FILE
    queues_path.write_bytes(
        canonical_json(
            {"ruleset_version": routing.ruleset_version, "queues": _json(routing.summaries)}
        )
        + b"\n"
    )
    written = [table_path, queues_path]
    if routing.ruleset is not None:
        ruleset_path = directory / RULESET_FILE
        ruleset_path.write_bytes(canonical_json(routing.ruleset.to_json()) + b"\n")
        written.append(ruleset_path)
    return written


def read_routing(
    directory: Path, columns: Callable[[list[str]], list[str]] | None = None
) -> pl.DataFrame:
    """The stored routing table; `columns`, given the stored column names, picks the ones to
    read (a refresh compares against a few columns of 1.6M rows at 10M, not the lists)."""
    path = directory / ROUTING_FILE
    if not path.is_file():
        raise BadInputError(f"{path}: no KYC routing in this version")
    try:
        if columns is not None:
            return pl.read_parquet(path, columns=columns(list(pl.read_parquet_schema(path))))
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise BadInputError(f"{path}: unreadable routing table ({type(exc).__name__})") from None


def read_summaries(directory: Path) -> dict[str, Any]:
    path = directory / QUEUES_FILE
    if not path.is_file():
        raise BadInputError(f"{path}: no queue summaries in this version")
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: not a JSON object")
    return data


def read_ruleset(directory: Path) -> KycRuleset | None:
    path = directory / RULESET_FILE
    if not path.is_file():
        return None
    return KycRuleset.from_policy(json.loads(path.read_bytes()))


def load_routing(directory: Path) -> KycRouting:
    """The stored routing as a value again (table, summaries, ruleset if stored)."""
    table = read_routing(directory)
    summaries = read_summaries(directory)
    ruleset = read_ruleset(directory)
    version = str(summaries.get("ruleset_version", ruleset.version if ruleset else ""))
    queues = summaries.get("queues", {})
    return KycRouting(
        ruleset_version=version,
        table=table,
        summaries=queues if isinstance(queues, dict) else {},
        ruleset=ruleset,
    )


def _json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
