"""Delivery of a version's routing to KYC operations: at least once, idempotent.

Outbox (default): for every queue, `<outbox>/<queue>/<version_id>.jsonl`, one item per line
sorted by token, each with `idempotency_key = sha256(version_id|queue|token)`; then
`<outbox>/_manifests/<version_id>.json` with counts and sha256 digests, written last, so a
manifest means a complete delivery. Re-delivering the same version rewrites nothing.

Webhook: the same items POSTed in batches as JSON, signed:
    X-PGOV-Timestamp: <unix seconds>
    X-PGOV-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    Idempotency-Key:  sha256 over the batch's item keys (stable across retries and re-runs)
Retries on timeouts, connection errors, 408, 429 and 5xx with exponential backoff; after
`max_attempts` (or at once on another 4xx) the batch goes to a dead-letter file. Delivered
batches are recorded in a ledger, so a re-run sends only what has not been acknowledged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)
import structlog
from pydantic import BaseModel, ConfigDict

from engine.config import OutboxSink, Sink, WebhookSink
from engine.errors import BadInputError, KeyMaterialError, UsageError
from engine.kyc.model import KycRouting
from engine.workspace import Workspace
from lineage.canonical import canonical_json

log = structlog.get_logger(__name__)

MANIFESTS = "_manifests"
WEBHOOK_STATE = "_webhook"
DEAD_LETTER = "_deadletter"
BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
_VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class SinkItem(BaseModel):
    """One routed customer as delivered: tokens, tiers, reasons, dates; nothing raw."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str
    version_id: str
    queue: str
    customer: str
    jurisdiction: str | None
    tier: str
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

    version_id: str
    queue: str
    batch: int
    batches: int
    items: list[SinkItem]


@dataclass
class SinkResult:
    sink: str  # "outbox:<path>" or "webhook:<host>"
    delivered: int = 0  # items sent/written in this call
    skipped: int = 0  # items already delivered earlier (idempotent re-delivery)
    dead_lettered: int = 0
    files: list[str] = field(default_factory=list)


@dataclass
class DeliveryReport:
    version_id: str
    counts: dict[str, int]  # queue -> items
    sinks: list[SinkResult]

    @property
    def complete(self) -> bool:
        return all(s.dead_lettered == 0 for s in self.sinks)


def _check_version_id(version_id: str) -> str:
    if not _VERSION_ID.fullmatch(version_id) or ".." in version_id:
        raise UsageError(f"'{version_id}' is not a deliverable version id")
    return version_id


def items_frame(version_id: str, routing: KycRouting) -> pl.DataFrame:
    """The sink items of a routing table, sorted by queue then token (vectorised)."""
    t = routing.table
    opt = {
        c: pl.col(c) if c in t.columns else pl.lit(None, pl.String)
        for c in ("jurisdiction", "system_tier", "override_id")
    }
    return (
        t.lazy()
        .select(
            pl.concat_str(
                [pl.lit(version_id), pl.col("queue"), pl.col("customer_id")], separator="|"
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


def _ndjson(frame: pl.DataFrame) -> bytes:
    return frame.write_ndjson().encode("utf-8") if frame.height else b""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _queues(routing: KycRouting, items: pl.DataFrame) -> list[str]:
    names = list(routing.summaries) or []
    for q in items.get_column("queue").unique().sort().to_list():
        if q not in names:
            names.append(q)
    return names


def deliver_outbox(
    ws: Workspace, version_id: str, routing: KycRouting, sink: OutboxSink
) -> SinkResult:
    root = ws.path(sink.path)
    items = items_frame(version_id, routing)
    result = SinkResult(sink=f"outbox:{sink.path}")
    manifest_path = root / MANIFESTS / f"{version_id}.json"
    files: dict[str, dict[str, Any]] = {}
    for queue in _queues(routing, items):
        part = items.filter(pl.col("queue") == queue)
        data = _ndjson(part)
        rel = f"{queue}/{version_id}.jsonl"
        path = root / rel
        digest = _sha256(data)
        files[queue] = {"file": rel, "count": part.height, "sha256": digest}
        if path.is_file():
            if _sha256(path.read_bytes()) == digest:
                result.skipped += part.height
                continue
            if manifest_path.is_file():
                # A published version never changes; different bytes mean a bug upstream.
                raise BadInputError(
                    f"{path}: already delivered with different content; refusing to overwrite"
                )
        _atomic_write(path, data)
        result.delivered += part.height
        result.files.append(str(path))
    manifest = {
        "version_id": version_id,
        "ruleset_version": routing.ruleset_version,
        "total": items.height,
        "queues": files,
        "idempotency_key": "sha256(version_id|queue|customer)",
    }
    body = canonical_json(manifest) + b"\n"
    if not (manifest_path.is_file() and manifest_path.read_bytes() == body):
        _atomic_write(manifest_path, body)
        result.files.append(str(manifest_path))
    return result


# ---------------------------------------------------------------- webhook


def resolve_secret(ws: Workspace, ref: str) -> bytes:
    """The HMAC secret from `env:VAR` or `file:PATH`; never logged."""
    kind, _, where = ref.partition(":")
    if kind == "env" and where:
        value = os.environ.get(where)
        if not value:
            raise KeyMaterialError(f"webhook secret: environment variable {where} is not set")
        return value.strip().encode("utf-8")
    if kind == "file" and where:
        path = ws.path(where)
        try:
            value_b = path.read_bytes().strip()
        except OSError:
            raise KeyMaterialError(f"webhook secret: cannot read {path}") from None
        if not value_b:
            raise KeyMaterialError(f"webhook secret: {path} is empty")
        return value_b
    raise KeyMaterialError("webhook secret must be 'env:VAR' or 'file:PATH'")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """The receiver's check (also documented for receivers in docs/kyc-operations.md)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _sink_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def _batch_key(version_id: str, queue: str, keys: list[str]) -> str:
    h = hashlib.sha256(f"{version_id}|{queue}|".encode())
    for k in keys:
        h.update(k.encode("ascii"))
    return h.hexdigest()


@dataclass(frozen=True)
class _Attempt:
    ok: bool
    retryable: bool
    detail: str


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> _Attempt:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        return _Attempt(False, True, type(exc).__name__)
    if 200 <= status < 300:
        return _Attempt(True, False, str(status))
    return _Attempt(False, status >= 500 or status in _RETRYABLE_STATUS, f"http {status}")


def deliver_webhook(
    ws: Workspace,
    version_id: str,
    routing: KycRouting,
    sink: WebhookSink,
    batch_size: int = BATCH_SIZE,
    sleep: Callable[[float], None] = time.sleep,
) -> SinkResult:
    if not sink.url.startswith(("https://", "http://")):
        raise UsageError("webhook url must be http(s)")
    if sink.max_attempts < 1:
        raise UsageError("webhook max_attempts must be >= 1")
    secret = resolve_secret(ws, sink.secret)
    sid = _sink_id(sink.url)
    ledger = ws.outbox_dir / WEBHOOK_STATE / sid / f"{version_id}.delivered"
    dead = ws.outbox_dir / DEAD_LETTER / sid / f"{version_id}.jsonl"
    done = set(ledger.read_text("ascii").split()) if ledger.is_file() else set()
    items = items_frame(version_id, routing)
    host = urllib.parse.urlsplit(sink.url).netloc
    result = SinkResult(sink=f"webhook:{host}")
    for queue in _queues(routing, items):
        part = items.filter(pl.col("queue") == queue)
        batches = max(1, -(-part.height // batch_size)) if part.height else 0
        for b in range(batches):
            chunk = part.slice(b * batch_size, batch_size)
            keys = chunk.get_column("idempotency_key").to_list()
            key = _batch_key(version_id, queue, keys)
            if key in done:
                result.skipped += chunk.height
                continue
            payload = WebhookBatch(
                version_id=version_id,
                queue=queue,
                batch=b + 1,
                batches=batches,
                items=[SinkItem.model_validate(r) for r in chunk.to_dicts()],
            )
            body = canonical_json(payload.model_dump(mode="json"))
            attempt = _send(sink, secret, body, key, sleep)
            if attempt.ok:
                ledger.parent.mkdir(parents=True, exist_ok=True)
                with ledger.open("a", encoding="ascii") as fh:
                    fh.write(key + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                done.add(key)
                result.delivered += chunk.height
            else:
                dead.parent.mkdir(parents=True, exist_ok=True)
                record = {
                    "idempotency_key": key,
                    "queue": queue,
                    "batch": b + 1,
                    "error": attempt.detail,
                    "body": json.loads(body),
                }
                with dead.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, sort_keys=True) + "\n")
                result.dead_lettered += chunk.height
                log.warning(
                    "kyc_webhook_dead_letter",
                    sink=sid,
                    version_id=version_id,
                    queue=queue,
                    batch=b + 1,
                    error=attempt.detail,
                )
    if result.dead_lettered:
        result.files.append(str(dead))
    return result


def _send(
    sink: WebhookSink,
    secret: bytes,
    body: bytes,
    key: str,
    sleep: Callable[[float], None],
) -> _Attempt:
    attempt = _Attempt(False, True, "not attempted")
    for n in range(1, sink.max_attempts + 1):
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-PGOV-Timestamp": ts,
            "X-PGOV-Signature": sign(secret, ts, body),
            "Idempotency-Key": key,
            "User-Agent": "personagov-kyc-sink",
        }
        attempt = _post(sink.url, body, headers, sink.timeout_seconds)
        if attempt.ok or not attempt.retryable:
            return attempt
        if n < sink.max_attempts:
            sleep(min(MAX_BACKOFF_SECONDS, sink.backoff_seconds * 2 ** (n - 1)))
    return attempt


# ---------------------------------------------------------------- entry point


def deliver(
    ws: Workspace, version_id: str, routing: KycRouting, sinks: list[Sink]
) -> DeliveryReport:
    """Deliver one version's routing to every configured sink (outbox by default)."""
    _check_version_id(version_id)
    counts = {
        str(q): int(n) for q, n in routing.table.group_by("queue").len().sort("queue").iter_rows()
    }
    results: list[SinkResult] = []
    for sink in sinks or [OutboxSink()]:
        if isinstance(sink, OutboxSink):
            results.append(deliver_outbox(ws, version_id, routing, sink))
        else:
            results.append(deliver_webhook(ws, version_id, routing, sink))
    report = DeliveryReport(version_id=version_id, counts=counts, sinks=results)
    log.info(
        "kyc_delivered",
        version_id=version_id,
        items=routing.table.height,
        sinks=[(s.sink, s.delivered, s.skipped, s.dead_lettered) for s in results],
    )
    return report
