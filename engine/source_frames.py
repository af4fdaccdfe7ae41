"""What the sources stage hands on (engine/sources.py): per source its valid rows, its
quarantined rows with their reasons, its input digest and its row accounting, and the
releases that drop rows once enforcement has accounted for them (metadata kept)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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

    def balanced(self) -> bool:
        return self.input_rows == self.valid_rows + self.quarantined_rows


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
    # Declared columns read and checked but not carried by the valid rows: `keep` said no
    # later stage reads them (engine/enforce_subjects.py `needed_columns`).
    uncarried: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SourceFrames:
    jurisdiction: str
    as_of: date
    frames: dict[str, SourceFrame]
    # The source whose rows are the data subjects (WorkspaceConfig.subjects).
    subjects: str

    def released(self) -> SourceFrames:
        """The same sources with their rows dropped (schemas, digests and accounting kept).

        Once enforcement has produced the governed frames and the quarantine is sealed,
        lineage needs only this metadata; holding the raw rows for the rest of the refresh
        would double its memory at scale.
        """
        return replace(self, frames={n: _emptied(f) for n, f in self.frames.items()})

    def release(self, name: str) -> None:
        """Drop one source's rows in place, metadata kept. Enforcement calls it as soon as it
        has accounted for a source, so a refresh never holds every source's raw rows beside
        every governed frame (the caller's reference would otherwise keep them alive)."""
        self.frames[name] = _emptied(self.frames[name])

    def release_quarantine(self) -> None:
        """Drop the quarantined rows in place once they are sealed to disk."""
        for name, f in self.frames.items():
            self.frames[name] = replace(f, quarantine=f.quarantine.clear())


def _emptied(f: SourceFrame) -> SourceFrame:
    return replace(f, frame=f.frame.clear(), quarantine=f.quarantine.clear())


# ------------------------------------------------------------------ loading
