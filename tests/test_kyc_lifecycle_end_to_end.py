"""The whole lifecycle through real receivers: publish -> (obligations at once) -> approve ->
override -> deliver, into a local Standard Webhooks receiver and a local OpenLineage
receiver. Only approved deltas (and risk increases) arrive, each once, with valid
signatures; every run is a START/COMPLETE pair; a receiver that is down gives exit 10 and
an audit entry."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner

from engine.cli import app
from engine.pseudonym.lifecycle import init_keys
from engine.workspace import Workspace
from lineage.auditlog import AuditLog
from lineage.openlineage import RUN_EVENT_SCHEMA, validate_run_event

SECRET = "whsec_" + base64.b64encode(b"end-to-end-secret-0123456789abcd").decode()
HIGH = {"EDD", "EDD_SENIOR", "PROHIBITED"}


class _Receivers:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []
        self.webhook_ids: list[str] = []
        self.bad_signatures = 0
        self.events: list[dict[str, Any]] = []


@pytest.fixture
def receivers() -> Iterator[tuple[_Receivers, str]]:
    state = _Receivers()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path.startswith("/kyc"):
                try:
                    payload = Webhook(SECRET).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    with state.lock:
                        state.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with state.lock:
                    state.webhook_ids.append(self.headers["webhook-id"])
                    state.items.extend(payload["items"])
            elif self.path == "/api/v1/lineage":
                with state.lock:
                    state.events.append(json.loads(body))
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _configure(root: Path, base: str, webhook_path: str = "/kyc") -> None:
    config = root / "pgov.toml"
    original = root / "pgov.toml.orig"
    if not original.is_file():
        original.write_bytes(config.read_bytes())
    text = re.sub(
        r"stability_threshold = [0-9.]+",
        "stability_threshold = 0.0\nmin_silhouette = -1.0",
        original.read_text(),
    )
    text = re.sub(r"\[\[sinks\]\][^\[]*?(?=\n# -|\n\[)", "", text, count=1, flags=re.S)
    text += f"""
[[sinks]]
type = "outbox"
path = "outbox"

[[sinks]]
type = "webhook"
url = "{base}{webhook_path}"
secret = "env:PGOV_E2E_WEBHOOK_SECRET"
max_attempts = 2
backoff_seconds = 0.01
timeout_seconds = 30.0

[openlineage]
url = "{base}"
"""
    config.write_text(text)


def _pgov(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "-w", str(root)])


def _audit(root: Path) -> list[dict[str, Any]]:
    log = AuditLog(root / "audit")
    return [json.loads(log.entry(i)) for i in range(log.size())]


def _check_runs(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every event has the 2-0-2 RunEvent shape; returns runId -> event types in order."""
    runs: dict[str, list[str]] = {}
    for ev in events:
        validate_run_event(ev)
        assert ev["schemaURL"] == RUN_EVENT_SCHEMA
        assert str(uuid.UUID(ev["run"]["runId"])) == ev["run"]["runId"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ev["eventTime"])
        runs.setdefault(ev["run"]["runId"], []).append(ev["eventType"])
    return runs


@pytest.mark.slow
def test_publish_approve_override_deliver_through_real_receivers(
    workspace_copy: Path,
    receivers: tuple[_Receivers, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, base = receivers
    monkeypatch.setenv("PGOV_E2E_WEBHOOK_SECRET", SECRET)
    root = workspace_copy
    _configure(root, base)
    init_keys(Workspace.open(root))
    refresh = ("refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead")

    # 1. Publish: only risk increases (new EDD and above) go out, as obligations.
    res = _pgov(root, *refresh, "--as-of", "2026-11-01", "--json")
    assert res.exit_code == 0, res.output
    assert state.items, "no obligation delivered at publish"
    assert {i["tier"] for i in state.items} <= HIGH
    assert {i["basis"] for i in state.items} == {"obligation"}
    obligations = len(state.items)

    # Queue views default to the approved version: there is none yet.
    q = _pgov(root, "kyc", "queue", "edd-review", "-j", "UK", "--actor", "kyc-ops")
    assert q.exit_code == 5 and "no approved" in q.output

    # 2. Approval delivers the rest of the version, and nothing a second time.
    res = _pgov(root, "versions", "approve", "UK/kyc_aml/latest", "--actor", "compliance-deputy")
    assert res.exit_code == 0, res.output
    approved = [i for i in state.items if i["basis"] == "approved"]
    assert approved and not {i["tier"] for i in approved} & HIGH
    customers = [i["customer"] for i in state.items]
    assert len(customers) == len(set(customers))
    table = json.loads(
        _pgov(root, "kyc", "queue", "edd-review", "-j", "UK", "--actor", "kyc-ops", "--json").stdout
    )
    assert table["count"] > 0

    # 3. An approved override reaches the receiver as one delta.
    edd = next(i for i in state.items if i["tier"] == "EDD")
    reason = "documented false positive, case 77"
    res = _pgov(root, "kyc", "override", "--customer", edd["customer"], "--tier", "CDD",
                "--reason", reason, "--actor", "kyc-ops", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    ovr = json.loads(res.stdout)
    assert ovr["status"] == "pending"
    before = len(state.items)
    res = _pgov(root, "kyc", "approve", "--override", ovr["id"], "--actor", "compliance-lead")
    assert res.exit_code == 0, res.output
    (moved,) = state.items[before:]
    assert (moved["customer"], moved["tier"], moved["previous_tier"]) == (
        edd["customer"],
        "CDD",
        "EDD",
    )
    assert moved["override_id"] == ovr["id"]

    # 4. Re-delivery is idempotent: nothing new arrives.
    before = len(state.items)
    res = _pgov(root, "kyc", "deliver", "-j", "UK", "--actor", "kyc-ops")
    assert res.exit_code == 0, res.output
    assert "delivered 0" in res.output and len(state.items) == before
    assert state.bad_signatures == 0
    assert len(state.webhook_ids) == len(set(state.webhook_ids))
    assert obligations + len(approved) + 1 == len(state.items)

    # 5. OpenLineage: a START/COMPLETE pair per run, the same events signed in the version.
    runs = _check_runs(state.events)
    assert list(runs.values()) == [["START", "COMPLETE"]]
    vdir = root / "versions" / "UK" / "kyc_aml" / "v0001"
    files = ("openlineage-start.json", "openlineage.json")
    on_disk = [json.loads((vdir / f).read_bytes()) for f in files]
    assert on_disk == state.events

    # 6. A receiver that is down: the refresh publishes, exits 10, and the audit log says so.
    _configure(root, "http://127.0.0.1:9", "/down")
    res = _pgov(root, *refresh, "--as-of", "2026-11-01")
    assert res.exit_code == 10, res.output
    assert "dead-lettered" in res.output
    failed = [e for e in _audit(root) if e["type"] == "kyc_delivery_failed"]
    assert failed and failed[-1]["details"]["dead_lettered"] > 0
    emit_failed = [e for e in _audit(root) if e["type"] == "openlineage_emit_failed"]
    assert {e["details"]["run_event"] for e in emit_failed} == {"START", "COMPLETE"}
    assert (root / "versions" / "UK" / "kyc_aml" / "v0002" / "openlineage-start.json").is_file()
    res = _pgov(root, "kyc", "deliver", "-j", "UK", "--actor", "kyc-ops")
    assert res.exit_code == 10 and "dead-lettered" in res.output
