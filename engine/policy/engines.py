"""Policy engines: one protocol, two implementations, the same bundle and the same answers.

Every failure is a PolicyError (a deny) with a reason code: an undefined document, a JSON
null, an evaluation error, a timeout, an unreachable server, an HTTP error body or a reply
that is not the JSON OPA documents. Callers never see a half answer.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog

from engine.errors import PolicyError
from engine.policy.bundle import Bundle

log = structlog.get_logger(__name__)


class PolicyEngine(Protocol):
    """Evaluate the document at `path` (dotted, under data: "personagov.decision.decision")."""

    def query(self, path: str, input: dict[str, Any]) -> Any: ...


def _check_path(path: str) -> list[str]:
    parts = path.removeprefix("data.").split(".")
    if not parts or not all(p.replace("_", "").isalnum() for p in parts):
        raise PolicyError(f"invalid policy path '{path}'", reasons=["policy.bad_path"])
    return parts


def _first_lines(exc: BaseException) -> str:
    """regorus errors: location and message, without its Rust backtrace."""
    text = str(exc).split("Stack backtrace")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:4])[:400] or type(exc).__name__


def _defined(path: str, reply: Any, reason_prefix: str) -> Any:
    """OPA's contract: no `result` key means undefined. Undefined and null are both a deny."""
    if not isinstance(reply, dict):
        raise PolicyError(
            f"{path}: the policy engine answered something that is not a JSON object",
            reasons=[f"{reason_prefix}.malformed_response"],
        )
    if "result" not in reply:
        raise PolicyError(f"{path}: policy document is undefined", reasons=["policy.undefined"])
    if reply["result"] is None:
        raise PolicyError(f"{path}: policy document is null", reasons=["policy.null"])
    return reply["result"]


_thread_engines = threading.local()


class EmbeddedEngine:
    """regorus in-process, compiled once per thread.

    A regorus Engine is "unsendable": pyo3 panics when another thread uses *or drops* it.
    So this object never holds one: compiled engines live in thread-local storage, keyed by
    bundle digest, and die with their thread, on that thread. The object itself can move
    between threads freely (a query from a new thread compiles there, about 30 ms).
    Queries run on a clone, so no input is ever shared.
    """

    def __init__(self, bundle: Bundle, *, include_tests: bool = False) -> None:
        self.bundle = bundle
        self._modules = bundle.modules if include_tests else bundle.policy_modules()
        self._data_json = json.dumps(bundle.data)
        self._key = (bundle.digest, include_tests)
        self._compiled()  # compile now so a broken bundle fails at construction

    def _compiled(self) -> Any:
        cache: dict[tuple[str, bool], Any] | None = getattr(_thread_engines, "cache", None)
        if cache is None:
            cache = _thread_engines.cache = {}
        engine = cache.get(self._key)
        if engine is None:
            engine = cache[self._key] = self._compile()
        return engine

    def _compile(self) -> Any:
        import regorus

        engine = regorus.Engine()
        try:
            for name, text in sorted(self._modules.items()):
                engine.add_policy(name, text)
            engine.add_data_json(self._data_json)
        except Exception as exc:  # regorus raises plain exceptions on parse errors
            raise PolicyError(
                f"policy bundle does not compile: {_first_lines(exc)}",
                reasons=["bundle.compile_error"],
            ) from None
        return engine

    def packages(self) -> list[str]:
        return list(self._compiled().get_packages())

    def query(self, path: str, input: dict[str, Any]) -> Any:
        parts = _check_path(path)
        engine: Any = None
        try:
            engine = self._compiled().clone()
            engine.set_input(input)
            # eval_query tells undefined (no result) from null; eval_rule maps both to None.
            raw = engine.eval_query_as_json("data." + ".".join(parts))
        except PolicyError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # includes pyo3 PanicException (a BaseException)
            raise PolicyError(
                f"{path}: policy evaluation failed: {_first_lines(exc)}",
                reasons=["policy.eval_error"],
            ) from None
        finally:
            # Drop the clone here, on this thread: a traceback keeping this frame alive
            # would otherwise let the garbage collector drop it on another thread (panic).
            engine = None
        reply = json.loads(raw)
        results = reply.get("result") if isinstance(reply, dict) else None
        if not results:
            raise PolicyError(f"{path}: policy document is undefined", reasons=["policy.undefined"])
        try:
            value = results[0]["expressions"][0]["value"]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(
                f"{path}: unexpected regorus reply shape", reasons=["policy.malformed_response"]
            ) from None
        return _defined(path, {"result": value}, "policy")


def _data_roots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Top-level data documents, placed one by one as OPA's bundle loader places data.json."""
    return sorted(data.items())


class GoOpaEngine:
    """Real Go OPA (v1.20, the c-shared build in PyPI `opa-golib-python-bindings`) in-process.

    Used by `pgov policy test --engine opa`, the differential test and the OPA REST test
    server. The bindings compile lazily on the first evaluation and hard-code
    StrictBuiltinErrors(true): a builtin error (time.parse_ns on a bad date, object.get on
    a non-object) is an evaluation error here, where an `opa run` server's default
    (non-strict) makes it undefined. Both are a deny for us; docs/policy.md says more.
    One instance per thread: the Go side is not documented as thread-safe.
    """

    def __init__(self, bundle: Bundle, *, include_tests: bool = False) -> None:
        try:
            from opa_bindings import OpaEngine as _Go
        except ImportError:  # pragma: no cover - installed by `make test`
            raise PolicyError(
                "real OPA is not installed: pip install --ignore-requires-python --no-deps "
                "opa-golib-python-bindings==0.4.4",
                reasons=["opa.not_installed"],
            ) from None
        self.bundle = bundle
        self._engine = _Go()
        modules = bundle.modules if include_tests else bundle.policy_modules()
        try:
            for name, text in sorted(modules.items()):
                self._engine.add_policy(name, text)
            for key, doc in _data_roots(bundle.data):
                self._engine.add_data(doc, path=key)
            # Compilation is lazy: force it now so a broken bundle fails at construction.
            self._engine.eval_query("true")
        except Exception as exc:
            raise PolicyError(
                f"policy bundle does not compile under OPA: {_first_lines(exc)}",
                reasons=["bundle.compile_error"],
            ) from None

    def query(self, path: str, input: dict[str, Any]) -> Any:
        from opa_bindings import OpaUndefinedError

        parts = _check_path(path)
        try:
            value = self._engine.eval_document(".".join(parts), input)
        except OpaUndefinedError:
            raise PolicyError(
                f"{path}: policy document is undefined", reasons=["policy.undefined"]
            ) from None
        except Exception as exc:
            raise PolicyError(
                f"{path}: policy evaluation failed: {_first_lines(exc)}",
                reasons=["policy.eval_error"],
            ) from None
        return _defined(path, {"result": value}, "policy")


class OpaEngine:
    """An OPA server through opa-python-client (`POST /v1/data/{path}` with `{"input"}`)."""

    def __init__(self, url: str, *, timeout_seconds: float = 5.0, token: str | None = None) -> None:
        from opa_client import OpaClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyError(f"invalid OPA URL '{url}'", reasons=["opa.bad_url"])
        ssl = parts.scheme == "https"
        self.url = url
        self.timeout_seconds = timeout_seconds
        # No client retries: a slow or failing server is a deny now, not after backoff.
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if ssl else 8181),
            ssl=ssl,
            timeout=timeout_seconds,
            retries=0,
            token=token,
        )

    def query(self, path: str, input: dict[str, Any]) -> Any:
        import requests

        parts = _check_path(path)
        try:
            reply = self._client.query_rule(
                input_data=input, package_path="/".join(parts[:-1]), rule_name=parts[-1]
            )
        except requests.exceptions.Timeout:
            raise PolicyError(
                f"OPA at {self.url} did not answer within {self.timeout_seconds}s",
                reasons=["opa.timeout"],
            ) from None
        except requests.exceptions.ConnectionError:
            raise PolicyError(
                f"OPA at {self.url} is unreachable", reasons=["opa.unreachable"]
            ) from None
        except requests.exceptions.HTTPError as exc:
            raise PolicyError(_http_error(self.url, exc), reasons=["opa.http_error"]) from None
        except ValueError:  # requests' JSONDecodeError is a ValueError
            raise PolicyError(
                f"OPA at {self.url} answered with malformed JSON",
                reasons=["opa.malformed_response"],
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PolicyError(
                f"OPA at {self.url}: request failed ({type(exc).__name__})",
                reasons=["opa.request_failed"],
            ) from None
        return _defined(path, reply, "opa")


def _http_error(url: str, exc: Any) -> str:
    """OPA's error body is {"code": ..., "message": ...}; quote the code and message."""
    status = getattr(exc.response, "status_code", "?")
    try:
        body = exc.response.json()
        detail = f"{body.get('code', '?')}: {str(body.get('message', ''))[:300]}"
    except Exception:
        detail = "no error body"
    return f"OPA at {url} answered HTTP {status} ({detail})"
