"""Verification reports: a list of named checks, each passed or failed with a reason.

Verifiers collect every check they can run (a compliance officer wants the whole picture),
then ``raise_if_failed`` turns the first failure into ``VerificationFailed`` naming the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import VerificationFailed


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class VerificationReport:
    subject: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        return check

    def passed(self, name: str, detail: str) -> None:
        self.add(name, True, detail)

    def failed(self, name: str, detail: str) -> None:
        self.add(name, False, detail)

    @property
    def ok(self) -> bool:
        # An empty report proves nothing: refuse it rather than call it a pass.
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def raise_if_failed(self) -> None:
        if not self.checks:
            raise VerificationFailed(f"{self.subject}: no checks ran")
        bad = self.failures
        if bad:
            more = f" (+{len(bad) - 1} more failed checks)" if len(bad) > 1 else ""
            raise VerificationFailed(f"{self.subject}: {bad[0].name}: {bad[0].detail}{more}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
        }
