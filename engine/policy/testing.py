"""`opa test` for the embedded engine: every `test_` rule of every package, pass or fail.

A test passes only when its rule evaluates to exactly `true`; undefined, false, any other
value or an evaluation error is a failure (OPA's semantics).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from engine.errors import PolicyError
from engine.policy.bundle import Bundle
from engine.policy.engines import EmbeddedEngine, GoOpaEngine, PolicyEngine

ENGINES = ("regorus", "opa")

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True)
class RegoTestResult:
    package: str
    name: str
    file: str
    passed: bool
    detail: str  # "" on pass; "false", "undefined" or the error reason otherwise
    seconds: float

    @property
    def path(self) -> str:
        return f"data.{self.package}.{self.name}"


def discover(bundle: Bundle) -> list[tuple[str, str, str]]:
    """(file, package, rule) for every test rule, in file order; a rule defined twice
    (incremental definitions) is one test, as in OPA."""
    found: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for file, text in sorted(bundle.modules.items()):
        pkg = _PACKAGE.search(text)
        if not pkg:
            continue
        for rule in _TEST_RULE.findall(text):
            if (pkg.group(1), rule) not in seen:
                seen.add((pkg.group(1), rule))
                found.append((file, pkg.group(1), rule))
    return found


def test_engine(bundle: Bundle, engine: str = "regorus") -> PolicyEngine:
    """regorus (the embedded engine) or real Go OPA (the bindings), tests compiled in."""
    if engine == "opa":
        return GoOpaEngine(bundle, include_tests=True)
    if engine == "regorus":
        return EmbeddedEngine(bundle, include_tests=True)
    raise PolicyError(f"unknown engine '{engine}': one of {', '.join(ENGINES)}")


def run_tests(
    bundle: Bundle, pattern: str | None = None, engine_name: str = "regorus"
) -> list[RegoTestResult]:
    engine = test_engine(bundle, engine_name)
    selector = re.compile(pattern) if pattern else None
    results: list[RegoTestResult] = []
    for file, package, rule in discover(bundle):
        if selector and not selector.search(f"{package}.{rule}"):
            continue
        started = time.perf_counter()
        try:
            value = engine.query(f"{package}.{rule}", {})
            passed, detail = value is True, "" if value is True else "false"
        except PolicyError as exc:
            passed = False
            detail = "undefined" if "policy.undefined" in exc.reasons else exc.message
        results.append(
            RegoTestResult(package, rule, file, passed, detail, time.perf_counter() - started)
        )
    return results
