"""Sinks: the outbox (one file per queue per version, idempotency keys, manifest digests,
idempotent re-delivery) and the signed webhook against a local server that fails, times out,
then recovers: nothing lost, duplicates only under the same idempotency key."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.config import OutboxSink, WebhookSink
from engine.errors import BadInputError, KeyMaterialError
from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.model import KycRouting
from engine.kyc.sinks import SinkItem, deliver, verify_signature
from engine.kyc.synthetic import synthetic_facts
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parent.parent / "engine" / "defaults" / "pgov.toml"
SECRET = "s3cret-for-tests-only"
VERSION = "EU-DE/v0001"


@pytest.fixture(scope="module")
def routing() -> KycRouting:
    return route_facts(
        synthetic_facts(60, seed=2), evaluate_ruleset(), None, date(2026, 11, 23), 90
    )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    shutil.copy(DEFAULTS, tmp_path / "pgov.toml")
    return Workspace.open(tmp_path)


# ---------------------------------------------------------------- outbox


def test_outbox_layout_keys_and_manifest(ws: Workspace, routing: KycRouting) -> None:
    report = deliver(ws, VERSION, routing, [OutboxSink()])
    assert sum(report.counts.values()) == routing.table.height
    root = ws.outbox_dir
    manifest = json.loads((root / "_manifests" / "EU-DE" / "v0001.json").read_text())
    assert manifest["total"] == routing.table.height
    seen: set[str] = set()
    for queue, entry in manifest["queues"].items():
        path = root / entry["file"]
        assert path == root / queue / "EU-DE" / "v0001.jsonl"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        lines = [json.loads(x) for x in data.decode().splitlines()]
        assert len(lines) == entry["count"]
        for item in lines:
            SinkItem.model_validate(item)  # the documented payload schema
            expected = hashlib.sha256(f"{VERSION}|{queue}|{item['customer']}".encode()).hexdigest()
            assert item["idempotency_key"] == expected and item["queue"] == queue
            assert item["reasons"]
            seen.add(item["customer"])
        assert [x["customer"] for x in lines] == sorted(x["customer"] for x in lines)
    assert seen == set(routing.table["customer_id"])


def test_outbox_redelivery_is_idempotent(ws: Workspace, routing: KycRouting) -> None:
    first = deliver(ws, VERSION, routing, [OutboxSink()])
    files = {p: p.read_bytes() for p in ws.outbox_dir.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = deliver(ws, VERSION, routing, [OutboxSink()])
    assert first.sinks[0].delivered == routing.table.height
    assert (again.sinks[0].delivered, again.sinks[0].skipped) == (0, routing.table.height)
    assert {p: p.read_bytes() for p in files} == files
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_outbox_refuses_changed_content_for_a_delivered_version(
    ws: Workspace, routing: KycRouting
) -> None:
    deliver(ws, VERSION, routing, [OutboxSink()])
    changed = KycRouting(
        routing.ruleset_version,
        routing.table.with_columns(score=routing.table["score"] + 1),
        routing.summaries,
        routing.ruleset,
    )
    with pytest.raises(BadInputError):
        deliver(ws, VERSION, changed, [OutboxSink()])


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/../../b", ""])
def test_version_id_cannot_escape_the_outbox(ws: Workspace, routing: KycRouting, bad: str) -> None:
    from engine.errors import UsageError

    with pytest.raises(UsageError):
        deliver(ws, bad, routing, [OutboxSink()])


# ---------------------------------------------------------------- webhook


class _Receiver:
    """Plan per request number: 'fail' (503), 'slow' (sleeps past the client timeout, then
    200), 'bad' (400) or 'ok'. Records what it accepted."""

    def __init__(self, plan: list[str], default: str = "ok") -> None:
        self.plan = plan
        self.default = default
        self.lock = threading.Lock()
        self.requests = 0
        self.accepted: list[tuple[str, list[str]]] = []  # (Idempotency-Key, item keys)
        self.bad_signatures = 0

    def next_action(self) -> str:
        with self.lock:
            n = self.requests
            self.requests += 1
        return self.plan[n] if n < len(self.plan) else self.default


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str, Any]]:
    state = _Receiver([])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ts = self.headers["X-PGOV-Timestamp"]
            if not verify_signature(SECRET.encode(), ts, body, self.headers["X-PGOV-Signature"]):
                state.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            action = state.next_action()
            if action == "fail":
                self.send_response(503)
                self.end_headers()
                return
            if action == "bad":
                self.send_response(400)
                self.end_headers()
                return
            if action == "slow":
                time.sleep(1.0)  # the client (timeout 0.3 s) has given up: at-least-once
            payload = json.loads(body)
            keys = [i["idempotency_key"] for i in payload["items"]]
            with state.lock:
                state.accepted.append((self.headers["Idempotency-Key"], keys))
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/kyc"

    def configure(plan: list[str], default: str = "ok") -> _Receiver:
        state.plan, state.default = plan, default
        return state

    try:
        yield state, url, configure
    finally:
        server.shutdown()
        server.server_close()


def _sink(url: str, attempts: int = 5) -> WebhookSink:
    return WebhookSink(
        url=url,
        secret="env:PGOV_TEST_WEBHOOK_SECRET",
        max_attempts=attempts,
        backoff_seconds=0.01,
        timeout_seconds=0.3,
    )


def _deliver_webhook(ws: Workspace, routing: KycRouting, sink: WebhookSink) -> Any:
    from engine.kyc.sinks import deliver_webhook

    return deliver_webhook(ws, VERSION, routing, sink, batch_size=7)


def test_webhook_survives_failures_and_a_timeout(
    ws: Workspace,
    routing: KycRouting,
    receiver: tuple[_Receiver, str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGOV_TEST_WEBHOOK_SECRET", SECRET)
    _, url, configure = receiver
    state = configure(["fail", "fail", "slow", "fail"])
    result = _deliver_webhook(ws, routing, _sink(url))
    assert state.bad_signatures == 0
    assert (result.delivered, result.dead_lettered) == (routing.table.height, 0)
    time.sleep(1.1)  # let the abandoned slow request finish on the server
    expected = {
        hashlib.sha256(f"{VERSION}|{q}|{c}".encode()).hexdigest()
        for q, c in routing.table.select("queue", "customer_id").iter_rows()
    }
    received: dict[str, set[str]] = {}
    for batch_key, keys in state.accepted:
        for k in keys:
            received.setdefault(k, set()).add(batch_key)
    assert set(received) == expected  # nothing lost
    # Duplicates happen (the timed-out request was processed) but only ever under the same
    # Idempotency-Key, so the receiver can drop them.
    assert len(state.accepted) > len({bk for bk, _ in state.accepted})
    assert all(len(batch_keys) == 1 for batch_keys in received.values())
    # Re-delivery of the same version sends nothing new.
    before = state.requests
    again = _deliver_webhook(ws, routing, _sink(url))
    assert (again.delivered, again.skipped) == (0, routing.table.height)
    assert state.requests == before


def test_webhook_dead_letters_after_max_attempts_then_recovers(
    ws: Workspace,
    routing: KycRouting,
    receiver: tuple[_Receiver, str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGOV_TEST_WEBHOOK_SECRET", SECRET)
    _, url, configure = receiver
    state = configure([], default="fail")
    result = _deliver_webhook(ws, routing, _sink(url, attempts=3))
    batches = sum(-(-n // 7) for _, n in routing.table.group_by("queue").len().iter_rows())
    assert state.requests == 3 * batches  # bounded: max_attempts per batch, no more
    assert (result.delivered, result.dead_lettered) == (0, routing.table.height)
    dead = [json.loads(x) for x in Path(result.files[0]).read_text().splitlines()]
    assert len(dead) == batches and all(d["error"] == "http 503" for d in dead)
    # The receiver is back: a re-run delivers everything that was dead-lettered.
    state = configure([], default="ok")
    state.accepted.clear()
    again = _deliver_webhook(ws, routing, _sink(url))
    assert again.delivered == routing.table.height
    assert sum(len(k) for _, k in state.accepted) == routing.table.height


def test_webhook_client_error_is_not_retried(
    ws: Workspace,
    routing: KycRouting,
    receiver: tuple[_Receiver, str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGOV_TEST_WEBHOOK_SECRET", SECRET)
    _, url, configure = receiver
    state = configure(["bad"], default="ok")
    result = _deliver_webhook(ws, routing, _sink(url))
    assert result.dead_lettered == 7  # the first batch, after one attempt
    assert result.delivered == routing.table.height - 7
    batches = sum(-(-n // 7) for _, n in routing.table.group_by("queue").len().iter_rows())
    assert state.requests == batches  # one request per batch: the 400 was not retried


def test_webhook_secret_must_resolve(
    ws: Workspace, routing: KycRouting, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGOV_TEST_WEBHOOK_SECRET", raising=False)
    with pytest.raises(KeyMaterialError):
        _deliver_webhook(ws, routing, _sink("http://127.0.0.1:9/never"))


def test_signature_recipe_rejects_tampering_and_old_timestamps() -> None:
    from engine.kyc.sinks import sign

    body = b'{"items":[]}'
    ts = str(int(time.time()))
    sig = sign(SECRET.encode(), ts, body)
    assert verify_signature(SECRET.encode(), ts, body, sig)
    assert not verify_signature(SECRET.encode(), ts, body + b" ", sig)
    assert not verify_signature(b"other", ts, body, sig)
    old = str(int(time.time()) - 3600)
    assert not verify_signature(SECRET.encode(), old, body, sign(SECRET.encode(), old, body))
