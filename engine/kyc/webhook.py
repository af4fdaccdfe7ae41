"""Standard Webhooks transport of KYC deliveries (https://www.standardwebhooks.com).

The items are POSTed in batches as JSON with the headers
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
import urllib.parse
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine.config import WebhookSink
from engine.errors import KeyMaterialError, UsageError
from engine.kyc.sinks import (
    DEAD_LETTER,
    ITEM_COLUMNS,
    SinkItem,
    SinkResult,
    WebhookBatch,
    check_delivery_id,
    sink_key,
)
from engine.workspace import Workspace
from lineage.canonical import canonical_json

log = structlog.get_logger(__name__)

BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
# A receiver asking for more than this is treated as down for this run (dead letter).
MAX_RETRY_AFTER_SECONDS = 120.0
_RETRYABLE_STATUS = frozenset({408, 425, 429})


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
