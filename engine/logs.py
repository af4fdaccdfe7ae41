"""Logging: structlog with a redaction step, so no raw personal value reaches a log line.

The pipeline is small processors, each doing one thing (structlog's own style):

    contextvars -> level -> timestamp -> exception text -> REDACT -> render

`Redactor` does two things:
  1. values under a key named like an identifier (every direct_identifier and
     quasi_identifier column declared in pgov.toml, plus e-mail / phone / name / national id /
     address / postcode / date-of-birth patterns) become "[redacted]", however nested;
  2. in every other string (messages, exception text included) anything shaped like an
     e-mail address, a phone number or a common national id format is masked.

(2) is a safety net with heuristics; (1) is the control. Pseudonym tokens ("m1.…", "k1.…")
are not personal values in clear and are left alone so operators can correlate.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import IO, Any

import structlog

from engine.config import Classification
from engine.workspace import Workspace

REDACTED = "[redacted]"
_MASK = "[masked]"

_IDENTIFIER_KEY = re.compile(
    r"(?:^|_)(?:e_?mail|emails?|phone|phones|mobile|msisdn|tel|telephone|"
    r"full_?name|first_?name|last_?name|given_?name|family_?name|surname|customer_?name|"
    r"national_?id|ssn|nino|cpf|nric|passport|tax_?id|tin|iban|address|street|postcode|"
    r"post_?code|zip|zip_?code|date_of_birth|dob|birth_?date|precise_geolocation|"
    r"geolocation|ip_?address)(?:$|_)",
    re.IGNORECASE,
)
_EXACT_KEYS = frozenset({"name"})

_VALUE_PATTERNS = [
    re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),  # e-mail
    # Phones: international (+...) or national trunk-prefixed (0...), 7+ digits with
    # separators; lookarounds keep us out of hex digests, tokens and dates.
    re.compile(r"(?<![\w.+])\+\d[\d ().\-]{5,}\d(?![\w])"),
    re.compile(r"(?<![\w.\-:])0\d[\d ().\-]{6,}\d(?![\w\-:])"),
    re.compile(r"(?<![\w.])\d{3}-\d{2}-\d{4}(?![\w])"),  # US SSN
    re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w])"),  # BR CPF
    re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),  # UK NINO
    re.compile(r"\b[STFGM]\d{7}[A-Z]\b"),  # SG NRIC/FIN
]


def mask_text(text: str) -> str:
    for pat in _VALUE_PATTERNS:
        text = pat.sub(_MASK, text)
    return text


def identifier_columns(ws: Workspace | None) -> set[str]:
    """Every column declared as a direct or quasi identifier in any source."""
    if ws is None:
        return set()
    kinds = {Classification.DIRECT_IDENTIFIER, Classification.QUASI_IDENTIFIER}
    return {
        col
        for src in ws.config.sources.values()
        for col, spec in src.columns.items()
        if spec.classification in kinds
    }


class Redactor:
    """structlog processor: redact identifier-named keys, mask identifier-shaped strings."""

    def __init__(self, columns: Iterable[str] = ()) -> None:
        self.columns = frozenset(c.lower() for c in columns)

    def is_identifier_key(self, key: str) -> bool:
        k = key.lower()
        return k in self.columns or k in _EXACT_KEYS or bool(_IDENTIFIER_KEY.search(k))

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return mask_text(value)
        if isinstance(value, dict):
            return {
                k: (
                    REDACTED if isinstance(k, str) and self.is_identifier_key(k) else self._clean(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else would be rendered through repr/str later: mask that text now.
        return mask_text(str(value))

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key in ("level", "timestamp", "logger"):
                continue
            if key != "event" and self.is_identifier_key(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    return value if isinstance(value, int) else logging.INFO


class _Stderr:
    """sys.stderr looked up at each write: a stream captured at configure time may be
    closed later (test runners, daemons swapping streams)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    ws: Workspace | None, json_to: Path | None = None, level: int | str = "INFO"
) -> Redactor:
    """Configure structlog for the process; returns the redactor in use.

    json_to: append JSON lines there (the workspace's logs/ for refreshes); otherwise a
    plain console renderer on stderr.
    """
    redactor = Redactor(identifier_columns(ws))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,  # after exception formatting, so traceback text is masked too
    ]
    stream: IO[str] | _Stderr
    if json_to is not None:
        json_to.parent.mkdir(parents=True, exist_ok=True)
        stream = json_to.open("a", encoding="utf-8")
        renderer: Any = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        stream = _Stderr()
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_level(level)),
        logger_factory=structlog.WriteLoggerFactory(file=stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return redactor


def ensure_logging(ws: Workspace | None, level: int | str = "INFO") -> None:
    """Configure redacting stderr logging unless the process already configured structlog.

    structlog's unconfigured default prints to stdout, which would corrupt `--json` output
    and bypass redaction: commands call this before doing work.
    """
    if not structlog.is_configured():
        configure_logging(ws, None, level)
