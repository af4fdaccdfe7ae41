"""The reason catalogue shipped in the bundle (policies/reasons/data.json, data.reasons):
per reason code its regime, article or section, and a plain-language sentence.

Parameterised codes ("input.invalid:actor.id", "role.missing:gpc:ccpa.gpc_signal",
"transfer_mechanism:...") are catalogued by the part before the first colon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.policy.bundle import Bundle


@dataclass(frozen=True)
class ReasonEntry:
    code: str
    regime: str
    article: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "regime": self.regime,
            "article": self.article,
            "text": self.text,
        }


def catalogue(bundle: Bundle) -> dict[str, dict[str, Any]]:
    raw = bundle.data.get("reasons")
    return raw if isinstance(raw, dict) else {}


def lookup(bundle: Bundle, code: str) -> ReasonEntry | None:
    """The catalogue entry for a code: exact, else by the prefix before the first colon."""
    cat = catalogue(bundle)
    entry = cat.get(code) or cat.get(code.split(":", 1)[0])
    if not isinstance(entry, dict):
        return None
    return ReasonEntry(
        code=code,
        regime=str(entry.get("regime", "")),
        article=str(entry.get("article", "")),
        text=str(entry.get("text", "")),
    )


def explain(bundle: Bundle, codes: list[str]) -> list[ReasonEntry]:
    """Entries for `codes` in order; a code without an entry says so (never silently)."""
    out = []
    for code in codes:
        entry = lookup(bundle, code)
        out.append(entry or ReasonEntry(code, "?", "?", "no catalogue entry for this code"))
    return out
