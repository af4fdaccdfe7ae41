"""Transports of KYC deliveries: the outbox on disk and Standard Webhooks over HTTP.

What to deliver (a delta against what a sink already has) is decided in
`engine.kyc.delivery`; this module only moves a frame of items to one sink, at least once,
and says exactly which items the sink acknowledged.

Outbox (default): for every queue, `<outbox>/<queue>/<delivery_id>.jsonl`, one item per line
sorted by token, each with its `idempotency_key`; then `<outbox>/_manifests/<delivery_id>.json`
with counts and sha256 digests, written last, so a manifest means a complete delivery.

Webhook transport: `engine.kyc.webhook`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)
import structlog
from pydantic import BaseModel, ConfigDict

from engine.config import OutboxSink, Sink
from engine.errors import BadInputError, UsageError
from engine.kyc.model import KycRouting
from engine.workspace import Workspace
from lineage.canonical import canonical_json

log = structlog.get_logger(__name__)

MANIFESTS = "_manifests"
DEAD_LETTER = "_deadletter"
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class SinkItem(BaseModel):
    """One routed customer as delivered: tokens, tiers, reasons, dates; nothing raw."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str
    version_id: str
    basis: str
    queue: str
    customer: str
    jurisdiction: str | None
    tier: str
    previous_tier: str | None
    previous_queue: str | None
    computed_tier: str
    system_tier: str | None
    score: int
    reasons: list[str]
    ruleset_version: str
    review_due: date
    sla_due: date
    tier_change: str
    out_of_cycle_review: bool
    override_id: str | None


class WebhookBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: str
    version_id: str
    basis: str
    queue: str
    batch: int
    batches: int
    items: list[SinkItem]


@dataclass
class SinkResult:
    sink: str  # "outbox:<path>" or "webhook:<host>"
    key: str  # the sink's state key (see sink_key)
    delivered: int = 0  # items sent/written in this call
    skipped: int = 0  # items the sink already had (idempotent re-delivery)
    dead_lettered: int = 0
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Idempotency keys the sink acknowledged in this call: only these become sink state.
    acked: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "dead_lettered": self.dead_lettered,
            "files": self.files,
            "errors": self.errors,
        }


def check_delivery_id(delivery_id: str) -> str:
    if not _DELIVERY_ID.fullmatch(delivery_id) or ".." in delivery_id:
        raise UsageError(f"'{delivery_id}' is not a deliverable version id")
    return delivery_id


def sink_key(sink: Sink) -> str:
    """A stable short name for a sink's delivery state (never the URL itself: it may carry a
    token in its query)."""
    ident = sink.path if isinstance(sink, OutboxSink) else sink.url
    return f"{sink.type}-{hashlib.sha256(ident.encode('utf-8')).hexdigest()[:12]}"


def items_frame(version_id: str, routing: KycRouting) -> pl.DataFrame:
    """The sink items of a routing table, sorted by queue then token (vectorised).

    The idempotency key names the change, not the delivery: the same customer moved to the
    same queue and tier (and override) by the same version has the same key on every
    re-run and every sink.
    """
    t = routing.table
    opt = {
        c: pl.col(c) if c in t.columns else pl.lit(None, pl.String)
        for c in ("jurisdiction", "system_tier", "override_id")
    }
    return (
        t.lazy()
        .select(
            pl.concat_str(
                [
                    pl.lit(version_id),
                    pl.col("queue"),
                    pl.col("customer_id"),
                    pl.col("tier"),
                    opt["override_id"].fill_null(""),
                ],
                separator="|",
            )
            .chash.sha2_256()  # type: ignore[attr-defined]
            .alias("idempotency_key"),
            pl.lit(version_id).alias("version_id"),
            pl.col("queue"),
            pl.col("customer_id").alias("customer"),
            opt["jurisdiction"].alias("jurisdiction"),
            pl.col("tier"),
            pl.col("computed_tier"),
            opt["system_tier"].alias("system_tier"),
            pl.col("score").cast(pl.Int64),
            pl.col("reasons"),
            pl.col("ruleset_version"),
            pl.col("review_due").dt.to_string("%Y-%m-%d"),
            pl.col("sla_due").dt.to_string("%Y-%m-%d"),
            pl.col("tier_change"),
            pl.col("out_of_cycle_review"),
            opt["override_id"].alias("override_id"),
        )
        .sort("queue", "customer")
        .collect()
    )


ITEM_COLUMNS: tuple[str, ...] = tuple(SinkItem.model_fields)


def _ndjson(frame: pl.DataFrame) -> bytes:
    return frame.select(ITEM_COLUMNS).write_ndjson().encode("utf-8") if frame.height else b""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def deliver_outbox(
    ws: Workspace, delivery_id: str, items: pl.DataFrame, sink: OutboxSink
) -> SinkResult:
    """Write one delta: a file per queue that has items, then the manifest."""
    check_delivery_id(delivery_id)
    root = ws.path(sink.path)
    result = SinkResult(sink=f"outbox:{sink.path}", key=sink_key(sink))
    manifest_path = root / MANIFESTS / f"{delivery_id}.json"
    files: dict[str, dict[str, Any]] = {}
    for queue in items.get_column("queue").unique().sort().to_list():
        part = items.filter(pl.col("queue") == queue)
        data = _ndjson(part)
        rel = f"{queue}/{delivery_id}.jsonl"
        path = root / rel
        digest = _sha256(data)
        files[queue] = {"file": rel, "count": part.height, "sha256": digest}
        if not (path.is_file() and _sha256(path.read_bytes()) == digest):
            if path.is_file() and manifest_path.is_file():
                # A delivery id names its content; different bytes mean a bug upstream.
                raise BadInputError(
                    f"{path}: already delivered with different content; refusing to overwrite"
                )
            atomic_write(path, data)
            result.files.append(str(path))
    manifest = {
        "delivery_id": delivery_id,
        "version_id": items.get_column("version_id")[0] if items.height else None,
        "basis": items.get_column("basis")[0] if items.height else None,
        "total": items.height,
        "queues": files,
        "idempotency_key": "sha256(version_id|queue|customer|tier|override_id)",
    }
    body = canonical_json(manifest) + b"\n"
    if not (manifest_path.is_file() and manifest_path.read_bytes() == body):
        atomic_write(manifest_path, body)
        result.files.append(str(manifest_path))
    result.delivered = items.height
    result.acked = items.get_column("idempotency_key").to_list()
    return result
