"""Routing on disk, inside a version directory:

    routing.parquet   the routing table, sorted by customer token
    queues.json       per-queue summaries (k-anonymity applied) and the ruleset version
    ruleset.json      the ruleset that produced it (so overrides can re-route offline)

Canonical JSON (sorted keys) so the files hash the same for the same content.
"""

from __future__ import annotations

import io
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
    by_customer(routing.table).write_parquet(table_path, statistics=False)
    queues_path = directory / QUEUES_FILE
    queues_path.write_bytes(_queues_bytes(routing))
    written = [table_path, queues_path]
    if routing.ruleset is not None:
        ruleset_path = directory / RULESET_FILE
        ruleset_path.write_bytes(_ruleset_bytes(routing.ruleset))
        written.append(ruleset_path)
    return written


def by_customer(table: pl.DataFrame) -> pl.DataFrame:
    """The table sorted by customer token, as the file stores it. A refresh's routing comes
    in token order already (tiering keeps the features' order): a sort would still gather
    every column, lists included (17 ms at 1M, twice a refresh: the file and the delivery).
    Strictly increasing ids, none null, are the order any sort gives, stable or not."""
    ids = table.get_column("customer_id")
    n = ids.len()
    if ids.null_count() == 0 and (n < 2 or (ids.slice(1) > ids.slice(0, n - 1)).all()):
        return table
    return table.sort("customer_id")


def _queues_bytes(routing: KycRouting) -> bytes:
    doc = {"ruleset_version": routing.ruleset_version, "queues": _json(routing.summaries)}
    return canonical_json(doc) + b"\n"


def _ruleset_bytes(ruleset: KycRuleset) -> bytes:
    return canonical_json(ruleset.to_json()) + b"\n"


def as_stored(routing: KycRouting) -> KycRouting:
    """The routing as `load_routing` reads it back once `write_routing` has stored it, made
    from the value in memory: a refresh delivers the version it just published without
    reading the table back from disk. The table is sorted and cast as the file stores it
    (the schema Parquet gives back, taken from writing no rows); summaries and ruleset go
    through the same JSON as their files (tests/test_kyc_routing_as_stored.py)."""
    table = by_customer(routing.table)
    buf = io.BytesIO()
    table.head(0).write_parquet(buf, statistics=False)
    buf.seek(0)
    table = table.cast(pl.Schema(pl.read_parquet_schema(buf)))
    summaries = json.loads(_queues_bytes(routing))
    ruleset = None
    if routing.ruleset is not None:
        ruleset = KycRuleset.from_policy(json.loads(_ruleset_bytes(routing.ruleset)))
    return _loaded(table, summaries, ruleset)


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
    return _loaded(read_routing(directory), read_summaries(directory), read_ruleset(directory))


def _loaded(
    table: pl.DataFrame, summaries: dict[str, Any], ruleset: KycRuleset | None
) -> KycRouting:
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
