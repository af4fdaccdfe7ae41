"""A real OPA REST endpoint for tests: OPA's Data API served by the Go OPA bindings.

`POST /v1/data/{path}` with `{"input": ...}` answers `{"result": ...}`, `{}` when the
document is undefined, and OPA's `{"code", "message"}` body with HTTP 500 on an evaluation
error; `GET /health` answers 200. The answers come from real Go OPA (v1.20, the c-shared
build in `opa-golib-python-bindings`) evaluating the bundle, not from a stand-in, so
`[policy] engine = "opa"` is tested against OPA's own semantics end to end.
No helper module name starts with test_: pytest does not collect it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.errors import PolicyError
from engine.policy.bundle import Bundle
from engine.policy.engines import GoOpaEngine


class RealOpaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.engine = GoOpaEngine(bundle)
        # One evaluation at a time: the Go side is not documented as thread-safe.
        self.lock = threading.Lock()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RealOpaServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/health"):
            self._send(200, b"{}")
        else:
            self._send(404, b'{"code": "not_found", "message": "no such endpoint"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, b'{"code": "invalid_parameter", "message": "malformed JSON"}')
            return
        if not self.path.startswith("/v1/data/"):
            self._send(404, b'{"code": "not_found", "message": "no such endpoint"}')
            return
        path = self.path.removeprefix("/v1/data/").split("?")[0].strip("/").replace("/", ".")
        srv = self.server
        try:
            with srv.lock:
                srv.requests += 1
                value = srv.engine.query(path, payload.get("input", {}))
        except PolicyError as exc:
            if "policy.undefined" in exc.reasons:
                self._send(200, b"{}")
            else:
                body = {"code": "internal_error", "message": exc.message}
                self._send(500, json.dumps(body).encode())
            return
        self._send(200, json.dumps({"result": value}).encode())


@contextlib.contextmanager
def real_opa_server(bundle: Bundle) -> Iterator[RealOpaServer]:
    srv = RealOpaServer(bundle)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        thread.join()
        srv.server_close()
