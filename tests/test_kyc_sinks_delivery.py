"""Sinks: deltas against what each sink has (outbox files with idempotency keys and manifest
digests; obligations vs approved changes; nothing twice) and Standard Webhooks against a
local receiver that verifies with the `standardwebhooks` package, fails, times out, asks to
retry later, then recovers: nothing lost, duplicates only under the same webhook-id."""

from __future__ import annotations

import base64
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

import polars as pl
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine.config import OutboxSink, WebhookSink
from engine.errors import KeyMaterialError
from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.delivery import APPROVED, OBLIGATION, deliver
from engine.kyc.model import KycRouting
from engine.kyc.sinks import SinkItem
from engine.kyc.webhook import retry_after_seconds
from engine.sample.kyc_facts import synthetic_facts
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parent.parent / "engine" / "defaults" / "pgov.toml"
SECRET = "whsec_" + base64.b64encode(b"s3cret-for-tests-only-32-bytes!!").decode()
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


def _key(version: str, queue: str, customer: str, tier: str, override: str = "") -> str:
    return hashlib.sha256(f"{version}|{queue}|{customer}|{tier}|{override}".encode()).hexdigest()


def _with_tier(routing: KycRouting, customer: str, tier: str, queue: str) -> KycRouting:
    t = routing.table.with_columns(
        tier=pl.when(pl.col("customer_id") == customer).then(pl.lit(tier)).otherwise("tier"),
        queue=pl.when(pl.col("customer_id") == customer).then(pl.lit(queue)).otherwise("queue"),
    )
    return KycRouting(routing.ruleset_version, t, routing.summaries, routing.ruleset)


def _outbox_items(ws: Workspace) -> list[dict[str, Any]]:
    out = []
    for p in sorted(ws.outbox_dir.glob("*/EU-DE/**/*.jsonl")):
        if p.relative_to(ws.outbox_dir).parts[0].startswith("_"):
            continue
        out += [json.loads(x) for x in p.read_text().splitlines()]
    return out


# ---------------------------------------------------------------- outbox


def test_outbox_layout_keys_and_manifest(ws: Workspace, routing: KycRouting) -> None:
    report = deliver(ws, VERSION, routing, [OutboxSink()])
    assert sum(report.counts.values()) == routing.table.height
    root = ws.outbox_dir
    (manifest_path,) = (root / "_manifests" / "EU-DE" / "v0001").glob("approved-*.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["total"] == routing.table.height and manifest["basis"] == APPROVED
    delivery = f"EU-DE/v0001/{manifest_path.stem}"
    seen: set[str] = set()
    for queue, entry in manifest["queues"].items():
        path = root / entry["file"]
        assert path == root / queue / f"{delivery}.jsonl"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        lines = [json.loads(x) for x in data.decode().splitlines()]
        assert len(lines) == entry["count"]
        for item in lines:
            SinkItem.model_validate(item)  # the documented payload schema
            expected = _key(VERSION, queue, item["customer"], item["tier"])
            assert item["idempotency_key"] == expected and item["queue"] == queue
            assert item["reasons"] and item["previous_tier"] is None
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


def test_a_new_version_delivers_only_what_changed(ws: Workspace, routing: KycRouting) -> None:
    deliver(ws, VERSION, routing, [OutboxSink()])
    who = routing.table.filter(pl.col("tier") == "CDD")["customer_id"][0]
    moved = _with_tier(routing, who, "EDD", "edd-review")
    report = deliver(ws, "EU-DE/v0002", moved, [OutboxSink()])
    assert report.sinks[0].delivered == 1
    assert report.counts == {"edd-review": 1}
    (item,) = [i for i in _outbox_items(ws) if i["version_id"] == "EU-DE/v0002"]
    assert (item["customer"], item["tier"], item["previous_tier"]) == (who, "EDD", "CDD")


def test_a_delta_found_on_changed_rows_equals_the_delta_of_every_item(
    ws: Workspace, routing: KycRouting
) -> None:
    from engine.kyc.delivery import delta, load_state
    from engine.kyc.sinks import items_frame, sink_key

    deliver(ws, VERSION, routing, [OutboxSink()], basis=OBLIGATION)  # a partial state
    moved = routing
    cdd = routing.table.filter(pl.col("tier") == "CDD")["customer_id"]
    for who, tier, queue in [(cdd[0], "EDD", "edd-review"), (cdd[1], "SDD", "standard-review")]:
        moved = _with_tier(moved, who, tier, queue)
    state = load_state(ws, sink_key(OutboxSink()), "EU-DE")
    expected = delta(items_frame("EU-DE/v0002", moved), state, APPROVED)
    report = deliver(ws, "EU-DE/v0002", moved, [OutboxSink()])
    got = [i for i in _outbox_items(ws) if i["version_id"] == "EU-DE/v0002"]
    assert 0 < len(got) == expected.height < routing.table.height
    assert [i["idempotency_key"] for i in got] == expected["idempotency_key"].to_list()
    assert report.sinks[0].skipped == routing.table.height - expected.height


def test_obligations_are_risk_increases_only(ws: Workspace, routing: KycRouting) -> None:
    """At publish only customers reaching EDD or above (or rising to a higher tier at or
    above EDD) are delivered; routine tiers wait for approval."""
    report = deliver(ws, VERSION, routing, [OutboxSink()], basis=OBLIGATION)
    high = routing.table.filter(pl.col("tier").is_in(["EDD", "EDD_SENIOR", "PROHIBITED"]))
    assert 0 < report.sinks[0].delivered == high.height < routing.table.height
    assert {i["basis"] for i in _outbox_items(ws)} == {OBLIGATION}
    # Approval then sends the rest, and not the high-risk customers a second time.
    rest = deliver(ws, VERSION, routing, [OutboxSink()], basis=APPROVED)
    assert rest.sinks[0].delivered == routing.table.height - high.height
    items = _outbox_items(ws)
    assert len(items) == len({i["customer"] for i in items}) == routing.table.height


def test_an_older_approved_version_never_undoes_a_newer_obligation(
    ws: Workspace, routing: KycRouting
) -> None:
    who = routing.table.filter(pl.col("tier") == "CDD")["customer_id"][0]
    newer = _with_tier(routing, who, "PROHIBITED", "sanctions-escalation")
    deliver(ws, "EU-DE/v0002", newer, [OutboxSink()], basis=OBLIGATION)
    deliver(ws, VERSION, routing, [OutboxSink()], basis=APPROVED)
    mine = [i for i in _outbox_items(ws) if i["customer"] == who]
    assert [(i["version_id"], i["tier"]) for i in mine] == [("EU-DE/v0002", "PROHIBITED")]


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/../../b", ""])
def test_version_id_cannot_escape_the_outbox(ws: Workspace, routing: KycRouting, bad: str) -> None:
    from engine.errors import UsageError

    with pytest.raises(UsageError):
        deliver(ws, bad, routing, [OutboxSink()])


# ---------------------------------------------------------------- webhook


class _Receiver:
    """Plan per request number: 'fail' (503), 'slow' (held until the test releases it, long
    after the client gave up, then 200), 'bad' (400), 'later' (429, Retry-After: 1) or 'ok'.
    Records what it accepted."""

    def __init__(self, plan: list[str], default: str = "ok") -> None:
        self.plan = plan
        self.default = default
        self.lock = threading.Lock()
        self.requests = 0
        self.accepted: list[tuple[str, list[str]]] = []  # (Idempotency-Key, item keys)
        self.bad_signatures = 0
        self.times: list[float] = []
        # A slow request waits for `release` and sets `slow_done` once it has been accepted:
        # events, not sleeps, so a loaded machine cannot reorder them.
        self.release = threading.Event()
        self.slow_done = threading.Event()

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
            try:
                Webhook(SECRET).verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                state.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            action = state.next_action()
            if action == "fail":
                self.send_response(503)
                self.end_headers()
                return
            if action == "later":
                state.times.append(time.monotonic())
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.end_headers()
                return
            if action == "bad":
                self.send_response(400)
                self.end_headers()
                return
            if action == "slow":
                # Processed only once the client has given up on it (the test releases it
                # after the delivery returned): at-least-once, a duplicate under one id.
                state.release.wait(60)
            payload = json.loads(body)
            keys = [i["idempotency_key"] for i in payload["items"]]
            with state.lock:
                state.accepted.append((self.headers["webhook-id"], keys))
                state.times.append(time.monotonic())
            if action == "slow":
                state.slow_done.set()
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
        state.release.set()  # never leave a handler thread waiting
        server.shutdown()
        server.server_close()


def _sink(url: str, attempts: int = 5, timeout: float = 30.0) -> WebhookSink:
    # A timeout far above any local round trip: an 'ok' answer slowed by a loaded machine must
    # not turn into a retry (an extra request, a duplicate) the assertions do not expect. Only
    # the test of a slow receiver times out, on purpose, against a request held indefinitely.
    return WebhookSink(
        url=url,
        secret="env:PGOV_TEST_WEBHOOK_SECRET",
        max_attempts=attempts,
        backoff_seconds=0.01,
        timeout_seconds=timeout,
    )


def _deliver_webhook(ws: Workspace, routing: KycRouting, sink: WebhookSink) -> Any:
    return deliver(ws, VERSION, routing, [sink], batch_size=7).sinks[0]


def test_webhook_survives_failures_and_a_timeout(
    ws: Workspace,
    routing: KycRouting,
    receiver: tuple[_Receiver, str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGOV_TEST_WEBHOOK_SECRET", SECRET)
    _, url, configure = receiver
    state = configure(["fail", "fail", "slow", "fail"])
    result = _deliver_webhook(ws, routing, _sink(url, timeout=1.0))
    assert state.bad_signatures == 0
    assert (result.delivered, result.dead_lettered) == (routing.table.height, 0)
    state.release.set()  # the client gave up on the slow request long ago: let it finish
    assert state.slow_done.wait(60)
    expected = {
        _key(VERSION, q, c, t)
        for q, c, t in routing.table.select("queue", "customer_id", "tier").iter_rows()
    }
    received: dict[str, set[str]] = {}
    for batch_key, keys in state.accepted:
        for k in keys:
            received.setdefault(k, set()).add(batch_key)
    assert set(received) == expected  # nothing lost
    # Duplicates happen (the timed-out request was processed) but only ever under the same
    # webhook-id, so the receiver can drop them.
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


def test_retry_after_is_honoured(
    ws: Workspace,
    routing: KycRouting,
    receiver: tuple[_Receiver, str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGOV_TEST_WEBHOOK_SECRET", SECRET)
    _, url, configure = receiver
    state = configure(["later"], default="ok")
    small = KycRouting(
        routing.ruleset_version, routing.table.head(3), routing.summaries, routing.ruleset
    )
    result = _deliver_webhook(ws, small, _sink(url))
    assert (result.delivered, result.dead_lettered) == (3, 0)
    # The retry came no sooner than the receiver asked (1 s), not after the 10 ms backoff.
    assert state.times[1] - state.times[0] >= 0.95


def test_retry_after_parses_seconds_and_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Mon, 30 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_signatures_are_standard_webhooks() -> None:
    """Any Standard Webhooks verifier accepts our headers; tampering and old timestamps fail."""
    from datetime import UTC, datetime, timedelta

    from engine.kyc.webhook import headers_for, signer

    body = b'{"items":[]}'
    headers = headers_for(signer(SECRET.encode()), "msg-1", body)
    assert headers["webhook-signature"].startswith("v1,")
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    old = headers_for(
        signer(SECRET.encode()), "msg-1", body, datetime.now(UTC) - timedelta(hours=1)
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, old)
    # A raw (non-whsec) secret signs with its bytes as the key.
    raw = headers_for(signer(b"plain-secret"), "m", body)
    Webhook(b"plain-secret").verify(body, raw)
