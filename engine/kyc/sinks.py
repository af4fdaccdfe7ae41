"""Transports of KYC deliveries: the outbox on disk and Standard Webhooks over HTTP.

What to deliver (a delta against what a sink already has) is decided in
`engine.kyc.delivery`; this module only moves a frame of items to one sink, at least once,
and says exactly which items the sink acknowledged.

Outbox (default): for every queue, `<outbox>/<queue>/<delivery_id>.jsonl`, one item per line
sorted by token, each with its `idempotency_key`; then `<outbox>/_manifests/<delivery_id>.json`
with counts and sha256 digests, written last, so a manifest means a complete delivery.

Webhook (Standard Webhooks, https://www.standardwebhooks.com): the items POSTed in batches
as JSON with the headers
    webhook-id:        sha256 over the batch's item keys (stable across retries and re-runs)
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>
so any Standard Webhooks library verifies them (the secret is `whsec_<base64>` or raw bytes).
Retries (stamina: exponential backoff with jitter) on timeouts, connection errors, 408, 425,
429 and 5xx, waiting what `Retry-After` asks when the receiver says; after `max_attempts`
(or at once on another 4xx) the batch goes to a dead-letter file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
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
DEAD_LETTER = "_deadletter"
BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
# A receiver asking for more than this is treated as down for this run (dead letter).
MAX_RETRY_AFTER_SECONDS = 120.0
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_RETRYABLE_STATUS = frozenset({408, 425, 429})


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


# ---------------------------------------------------------------- webhook


def resolve_secret(ws: Workspace, ref: str) -> bytes:
    """The signing secret from `env:VAR` or `file:PATH`; never logged."""
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


def signer(secret: bytes) -> Any:
    """A Standard Webhooks signer: `whsec_<base64>` secrets are decoded, others used raw."""
    from standardwebhooks.webhooks import Webhook

    text = secret.decode("utf-8", errors="strict") if secret.startswith(b"whsec_") else None
    try:
        return Webhook(text if text is not None else secret)
    except Exception:
        raise KeyMaterialError("webhook secret: not a valid whsec_<base64> secret") from None


def headers_for(hook: Any, msg_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers; without a signer (an unsigned destination) no signature."""
    when = now or datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        # The same id under the header many receivers already deduplicate on.
        "Idempotency-Key": msg_id,
        "User-Agent": "personagov",
    }
    if hook is not None:
        headers["webhook-signature"] = hook.sign(msg_id, when, body.decode("utf-8"))
    return headers


def _batch_key(delivery_id: str, queue: str, keys: list[str]) -> str:
    h = hashlib.sha256(f"{delivery_id}|{queue}|".encode())
    for k in keys:
        h.update(k.encode("ascii"))
    return h.hexdigest()


class _Retryable(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class _Rejected(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _retry_on(exc: Exception) -> bool | float:
    """stamina hook: retry transport errors and retryable statuses, honouring Retry-After."""
    import httpx

    if isinstance(exc, _Retryable):
        if exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
        return True
    return isinstance(exc, httpx.TransportError)


def _send(client: Any, sink: WebhookSink, hook: Any, msg_id: str, body: bytes) -> str:
    return send(client, sink.url, body, msg_id, hook, sink.max_attempts, sink.backoff_seconds)


def post_signed(
    url: str,
    body: bytes,
    msg_id: str,
    hook: Any,
    max_attempts: int,
    backoff_seconds: float,
    timeout_seconds: float,
) -> str | None:
    """One Standard Webhooks POST with retries (for other HTTP senders, e.g. activation):
    None when acknowledged, else the last error."""
    import httpx

    with httpx.Client(timeout=timeout_seconds) as client:
        try:
            send(client, url, body, msg_id, hook, max_attempts, backoff_seconds)
        except (_Retryable, _Rejected) as exc:
            return exc.detail
        except httpx.HTTPError as exc:
            return type(exc).__name__
    return None


def send(
    client: Any,
    url: str,
    body: bytes,
    msg_id: str,
    hook: Any,
    max_attempts: int,
    backoff_seconds: float,
) -> str:
    """POST until acknowledged; returns the status, raises on a dead letter."""
    import httpx
    import stamina

    for attempt in stamina.retry_context(
        on=_retry_on,
        attempts=max_attempts,
        timeout=None,
        wait_initial=backoff_seconds,
        wait_max=MAX_BACKOFF_SECONDS,
        wait_jitter=backoff_seconds,
    ):
        with attempt:
            # Signed afresh each attempt: the timestamp must be recent when it arrives.
            resp = client.post(url, content=body, headers=headers_for(hook, msg_id, body))
            status = resp.status_code
            if 200 <= status < 300:
                return str(status)
            if status >= 500 or status in _RETRYABLE_STATUS:
                after = retry_after_seconds(resp.headers.get("retry-after"))
                if after is not None and after > MAX_RETRY_AFTER_SECONDS:
                    raise _Rejected(f"http {status}, Retry-After {after:g}s")
                raise _Retryable(f"http {status}", after)
            raise _Rejected(f"http {status}")
    raise httpx.TransportError("no attempt made")  # pragma: no cover (attempts >= 1)


def deliver_webhook(
    ws: Workspace,
    delivery_id: str,
    items: pl.DataFrame,
    sink: WebhookSink,
    batch_size: int = BATCH_SIZE,
) -> SinkResult:
    import httpx

    check_delivery_id(delivery_id)
    if not sink.url.startswith(("https://", "http://")):
        raise UsageError("webhook url must be http(s)")
    if sink.max_attempts < 1:
        raise UsageError("webhook max_attempts must be >= 1")
    hook = signer(resolve_secret(ws, sink.secret))
    key = sink_key(sink)
    dead = ws.outbox_dir / DEAD_LETTER / key / f"{delivery_id}.jsonl"
    host = urllib.parse.urlsplit(sink.url).netloc
    result = SinkResult(sink=f"webhook:{host}", key=key)
    with httpx.Client(timeout=sink.timeout_seconds) as client:
        for queue in items.get_column("queue").unique().sort().to_list():
            part = items.filter(pl.col("queue") == queue)
            batches = -(-part.height // batch_size)
            for b in range(batches):
                chunk = part.slice(b * batch_size, batch_size)
                keys = chunk.get_column("idempotency_key").to_list()
                msg_id = _batch_key(delivery_id, queue, keys)
                payload = WebhookBatch(
                    delivery_id=delivery_id,
                    version_id=str(chunk.get_column("version_id")[0]),
                    basis=str(chunk.get_column("basis")[0]),
                    queue=queue,
                    batch=b + 1,
                    batches=batches,
                    items=[
                        SinkItem.model_validate(r) for r in chunk.select(ITEM_COLUMNS).to_dicts()
                    ],
                )
                body = canonical_json(payload.model_dump(mode="json"))
                try:
                    _send(client, sink, hook, msg_id, body)
                except (_Retryable, _Rejected) as exc:
                    error = exc.detail
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                else:
                    result.delivered += chunk.height
                    result.acked.extend(keys)
                    continue
                _dead_letter(dead, msg_id, queue, b + 1, error, body)
                result.dead_lettered += chunk.height
                result.errors.append(f"{queue} batch {b + 1}: {error}")
                log.warning(
                    "kyc_webhook_dead_letter",
                    sink=key,
                    delivery_id=delivery_id,
                    queue=queue,
                    batch=b + 1,
                    error=error,
                )
    if result.dead_lettered:
        result.files.append(str(dead))
    return result


def _dead_letter(dead: Path, msg_id: str, queue: str, batch: int, error: str, body: bytes) -> None:
    dead.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "webhook_id": msg_id,
        "queue": queue,
        "batch": batch,
        "error": error,
        "body": json.loads(body),
    }
    with dead.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
