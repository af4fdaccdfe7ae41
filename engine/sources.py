"""Sources: lazy scans of each declared source, scoped to one jurisdiction, checked against
their data contracts. Valid rows go on; bad rows go to quarantine with reason codes.

Contract (owned here, consumed by enforce):
    load_sources(ws, jurisdiction, as_of) -> SourceFrames
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from engine.config import SourceSpec


@dataclass(frozen=True)
class SourceAccounting:
    source: str
    input_rows: int  # rows of this jurisdiction read from the file
    valid_rows: int
    quarantined_rows: int
    # reason code -> rows; a row failing several checks counts under each reason,
    # and once in quarantined_rows.
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceFrame:
    name: str
    spec: SourceSpec
    # Valid rows only, columns cast to their declared types, plus `_row` (1-based row
    # number in the source file) for accounting.
    frame: pl.DataFrame
    # Quarantined rows: original columns as read (strings where types failed), `_row`,
    # `_reasons` (list[str] of "reason_code:field").
    quarantine: pl.DataFrame
    input_digest: str  # sha256 of the source file's bytes
    path: str  # workspace-relative path
    accounting: SourceAccounting


@dataclass(frozen=True)
class SourceFrames:
    jurisdiction: str
    as_of: date
    frames: dict[str, SourceFrame]
