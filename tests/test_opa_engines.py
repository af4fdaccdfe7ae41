"""One protocol, two engines, same answers; and every way an OPA server can fail is a deny.

The OPA side runs against a local HTTP server that speaks OPA's data API
(`POST /v1/data/{path}` with `{"input": ...}`, `{"result": ...}` or `{}` when undefined,
`{"code", "message"}` error bodies) and evaluates with regorus underneath.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import BUNDLE, make_ws, request

from engine.errors import PolicyDenied, PolicyError
from engine.policy import EmbeddedEngine, OpaEngine, authorize, evaluate, load_bundle
from engine.workspace import Workspace

# The client timeout of the test that wants one; the server's slow mode answers only after
# three times as long, so that test times out whatever the machine's load.
TIMEOUT = 0.5
# Every other test: far above any local answer (the fake compiles the bundle per request
# thread), so a loaded machine cannot turn an expected reason into "opa.timeout".
PATIENT = 30.0


class FakeOpa(ThreadingHTTPServer):
    daemon_threads = True
    mode = "normal"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.engine = EmbeddedEngine(load_bundle(BUNDLE))
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpa

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up (timeout test): nothing left to answer.
        with contextlib.suppress(BrokenPipeError):
            self.wfile.write(body)

    def do_POST(self) -> None:
        srv, mode = self.server, self.server.mode
        srv.paths.append(self.path)
        length = int(self.headers.get("Content-Length", 0))
        payload = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.startswith("/v1/data/"):
            self._send(404, b'{"code": "not_found", "message": "no such endpoint"}')
            return
        if mode == "http500":
            self._send(500, b'{"code": "internal_error", "message": "eval_conflict_error"}')
            return
        if mode == "slow":
            time.sleep(TIMEOUT * 3)
        if mode == "malformed":
            self._send(200, b'{"result": {"allow": tru')
            return
        if mode == "missing_result":
            self._send(200, b"{}")
            return
        if mode == "null":
            self._send(200, b'{"result": null}')
            return
        path = self.path.removeprefix("/v1/data/").replace("/", ".")
        try:
            value = srv.engine.query(path, payload.get("input", {}))
        except PolicyError as exc:
            if "policy.undefined" in exc.reasons:
                self._send(200, b"{}")  # OPA: undefined document -> no result key
                return
            self._send(500, json.dumps({"code": "internal_error", "message": exc.message}).encode())
            return
        if mode == "non_bool_allow" and isinstance(value, dict):
            value = {**value, "allow": "true"}
        if mode == "revision" and isinstance(value, dict):
            value = {**value, "policy_revision": "someone-elses-bundle"}
        self._send(200, json.dumps({"result": value}).encode())


@pytest.fixture(scope="module")
def opa_server() -> Iterator[FakeOpa]:
    srv = FakeOpa()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    # Join before releasing srv: its regorus engine must be dropped on this (its) thread.
    thread.join()
    srv.server_close()


@pytest.fixture
def fake_opa(opa_server: FakeOpa) -> Iterator[FakeOpa]:
    opa_server.mode = "normal"
    yield opa_server
    opa_server.mode = "normal"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("opa"))


DECISIONS = [
    ("analyst-eu", "EU-DE", "marketing_segmentation"),
    ("analyst-eu", "EU-NL", "credit_risk_segmentation"),
    ("analyst-uk", "UK", "marketing_segmentation"),
    ("analyst-us", "US-CA", "marketing_segmentation"),
    ("analyst-us", "US-NY", "marketing_segmentation"),
    ("analyst-sg", "SG", "marketing_segmentation"),
    ("analyst-br", "BR", "marketing_segmentation"),
    ("compliance-lead", "SG", "kyc_aml"),
    ("kyc-ops", "BR", "kyc_aml"),
    ("compliance-lead", "EU-DE", "marketing_segmentation"),  # denied
    ("analyst-eu", "UK", "marketing_segmentation"),  # denied
    ("data-engineer", "EU-DE", "credit_risk_segmentation"),  # denied
]


@pytest.mark.parametrize(("actor", "jurisdiction", "purpose"), DECISIONS)
def test_embedded_and_opa_give_the_same_plan(
    ws: Workspace, fake_opa: FakeOpa, actor: str, jurisdiction: str, purpose: str
) -> None:
    req = request(actor, jurisdiction, purpose)
    embedded = evaluate(ws, req, EmbeddedEngine(load_bundle(BUNDLE)))
    remote = evaluate(ws, req, OpaEngine(fake_opa.url, timeout_seconds=5))
    assert embedded.canonical_json() == remote.canonical_json()
    assert embedded.digest() == remote.digest()
    assert fake_opa.paths[-1] == "/v1/data/personagov/decision/decision"


AUTHZ = [
    ("kyc-ops", "reidentify", {"domain": "kyc", "jurisdiction": "EU-DE"}, True),
    ("kyc-ops", "reidentify", {"domain": "marketing"}, False),
    ("compliance-lead", "approve_version", {"jurisdiction": "BR"}, True),
    ("analyst-eu", "kyc_override", {"jurisdiction": "EU-DE"}, False),
    ("compliance-deputy", "verify", {"jurisdiction": "SG"}, True),
]


@pytest.mark.parametrize(("actor", "action", "resource", "allowed"), AUTHZ)
def test_authorize_same_on_both_engines(
    ws: Workspace,
    fake_opa: FakeOpa,
    actor: str,
    action: str,
    resource: dict[str, Any],
    allowed: bool,
) -> None:
    for engine in (EmbeddedEngine(load_bundle(BUNDLE)), OpaEngine(fake_opa.url)):
        if allowed:
            authorize(ws, actor, action, resource, engine)
        else:
            with pytest.raises(PolicyDenied):
                authorize(ws, actor, action, resource, engine)


FAILURES = [
    ("missing_result", "policy.undefined"),
    ("null", "policy.null"),
    ("non_bool_allow", "policy.non_boolean_allow"),
    ("http500", "opa.http_error"),
    ("slow", "opa.timeout"),
    ("malformed", "opa.malformed_response"),
]


@pytest.mark.parametrize(("mode", "reason"), FAILURES)
def test_opa_failures_deny_with_reason(
    ws: Workspace, fake_opa: FakeOpa, mode: str, reason: str
) -> None:
    fake_opa.mode = mode
    engine = OpaEngine(fake_opa.url, timeout_seconds=TIMEOUT if mode == "slow" else PATIENT)
    with pytest.raises(PolicyDenied) as err:
        evaluate(ws, request("analyst-eu", "EU-DE", "marketing_segmentation"), engine)
    assert err.value.reasons == [reason]
    with pytest.raises(PolicyDenied):
        authorize(ws, "kyc-ops", "reidentify", {"domain": "kyc"}, engine)


def test_http_error_message_quotes_opa_error_body(ws: Workspace, fake_opa: FakeOpa) -> None:
    fake_opa.mode = "http500"
    with pytest.raises(PolicyError) as err:
        OpaEngine(fake_opa.url).query("personagov.decision.decision", {})
    assert "HTTP 500" in err.value.message and "internal_error" in err.value.message


def test_server_with_another_bundle_revision_is_denied(ws: Workspace, fake_opa: FakeOpa) -> None:
    fake_opa.mode = "revision"
    plan = evaluate(
        ws, request("analyst-eu", "EU-DE", "marketing_segmentation"), OpaEngine(fake_opa.url)
    )
    assert not plan.allowed
    assert plan.deny_reasons == ["bundle.revision_mismatch"]


def test_connection_refused_denies(ws: Workspace) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = OpaEngine(f"http://127.0.0.1:{port}", timeout_seconds=PATIENT)
    with pytest.raises(PolicyDenied) as err:
        evaluate(ws, request("analyst-eu", "EU-DE", "marketing_segmentation"), engine)
    assert err.value.reasons == ["opa.unreachable"]


def test_bad_url_denies() -> None:
    with pytest.raises(PolicyError) as err:
        OpaEngine("ftp://opa")
    assert err.value.reasons == ["opa.bad_url"]


def test_engine_for_honours_policy_config(tmp_path: Path, fake_opa: FakeOpa) -> None:
    from engine.policy import engine_for

    opa_ws = make_ws(
        tmp_path, f'[policy]\nengine = "opa"\nopa_url = "{fake_opa.url}"\ntimeout_seconds = 30.0'
    )
    engine = engine_for(opa_ws)
    assert isinstance(engine, OpaEngine) and engine.timeout_seconds == 30.0
    plan = evaluate(opa_ws, request("analyst-uk", "UK", "marketing_segmentation"))
    assert plan.allowed and plan.regime == "uk_gdpr"
