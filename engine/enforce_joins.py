"""How each source's rows meet the per-subject flags table in enforcement: the subject
tokens computed once per subject and gathered by position, every other source's rows
looked up by subject position, and the subjects source taken row for row.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from engine.governed import REVERSIBLE_DOMAIN, SUBJECT, TokenSource
from engine.policy.plan import ColumnAction

TOKEN = "_subject_at"  # position of the row's subject in the flags table


class SubjectTokens:
    """The subject column's tokens, computed once per (domain, normaliser) on the flags
    table (one row per subject) and joined onto each source's rows with the flags it already
    joins: tokenising every source's subject column row by row hashed the same id once per
    transaction. Tokens are deterministic, so the values are the same either way."""

    def __init__(self, table: pl.DataFrame, pseudonymiser: TokenSource) -> None:
        self.table = table
        self.pseudonymiser = pseudonymiser
        self.memo: dict[tuple[str | None, str | None], pl.Series] = {}
        # Per (domain, normaliser) of the reversible domain: which subjects kept a row in
        # some source, and those sources.
        self.kept: dict[tuple[str | None, str | None], np.ndarray] = {}
        self.sources: set[str] = set()
        # Sources are governed two at a time (engine/enforce.py): one computes a column of
        # tokens while the other waits for it, and the kept masks are updated one at a time.
        self._lock = threading.Lock()

    def column(self, action: ColumnAction) -> pl.Series:
        with self._lock:
            return self._column(action)

    def _column(self, action: ColumnAction) -> pl.Series:
        key = (action.domain, action.normaliser)
        if key not in self.memo:
            assert action.domain is not None
            expr = self.pseudonymiser.token_expr(
                self.table.columns[0], action.domain, action.normaliser, key_column=SUBJECT
            )
            # One chunk: the table comes in the subjects source's chunks (row groups), and a
            # gather by position from a chunked string column costs several times more (at
            # 1M, 2.7M transactions: 0.05-0.1 against 0.007 CPU s).
            self.memo[key] = self.table.select(expr.alias(TOKEN)).to_series().rechunk()
        return self.memo[key]

    def published(self, source: str, action: ColumnAction, at: pl.Series) -> None:
        """`at`: the subject positions of a source's kept rows (null where the row's subject
        is null: only the subjects source can keep such a row, and it publishes no token)."""
        if action.domain != REVERSIBLE_DOMAIN:
            return
        key = (action.domain, action.normaliser)
        kept = at.drop_nulls().to_numpy()
        with self._lock:
            mask = self.kept.get(key)
            if mask is None:
                mask = self.kept[key] = np.zeros(self.table.height, dtype=np.bool_)
            mask[kept] = True
            self.sources.add(source)

    def distinct_published(self) -> dict[str, pl.Series]:
        parts = [self.memo[k].filter(pl.Series(self.kept[k])) for k in sorted(self.kept, key=str)]
        if not parts:
            return {}
        # Every joined subject column is tokenised under the one SUBJECT key context.
        return {SUBJECT: pl.concat(parts).unique(maintain_order=True)}


class SubjectLookup:
    """Each row's subject as its position in the per-subject flags table, for the sources
    other than the subjects source, with the table's flags for that position. The table's
    ids are hashed (64 bits) once per refresh; a source's rows are looked up by their ids'
    hashes, one lookup per run of equal hashes (a source listing each subject's rows
    together has about one run per subject), then checked against the ids themselves. A
    join per source hashed the table's 1.6M id strings again each time (at 10M), and the
    runs were found by comparing id strings.

    Exact: a row takes a position only where the table's id there equals its own id, and
    the table's hashes are distinct (else `usable` is false and the caller joins), so the one
    entry a row's hash names is its subject if it has one. Null ids match nothing, as in a
    left join."""

    def __init__(self, table: pl.DataFrame, excluded: pl.Series) -> None:
        """`table`: the flags table (ids first); `excluded`: per table row, whether a
        subject-level rule excludes the subject (null: unknown, read as excluded)."""
        ids = table.get_column(table.columns[0]).rechunk()
        self.table = table
        self.ids = ids
        self.excluded = excluded.rechunk()
        # Per table row, excluded with unknown (null) read as excluded, as enforce reads it.
        self.excluded_or_unknown = self.excluded.fill_null(True).to_numpy()
        self.index = _HashIndex(ids.hash().to_numpy())
        # Flag columns make the subjects distinct (engine/enforce_subjects.py merges repeated
        # ones); distinct hashes are checked, not assumed.
        self.usable = table.width > 1 and ids.null_count() == 0 and self.index.distinct

    def positions(self, keys: pl.Series) -> pl.Series | None:
        """UInt32 per row of `keys`: its subject's position in the table, null where its id
        is null or not a subject. None when no lookup can be made (the caller joins)."""
        runs = self._runs(keys)
        return None if runs is None else _per_row_positions(*runs)

    def _runs(self, keys: pl.Series) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Per run of equal ids in `keys`: its subject's position (`_MISSING` where none),
        and the runs' lengths (None when every run is one row). None: no lookup possible."""
        if not self.usable or keys.dtype != self.ids.dtype:
            return None
        if keys.len() == 0:
            return np.zeros(0, dtype=np.uint32), None
        # One lookup per run of equal ids; the runs' values are a few per cent of the rows of
        # a source listing each subject's rows together. Nothing is allocated per row but the
        # positions themselves: on this machine fresh pages cost more than the work done in
        # them (a per-row hash and id gather took three times their warm cost in a refresh).
        runs = keys.rle().struct.unnest()
        values = runs.get_column("value")
        at = self.index.find(values.hash().to_numpy())
        hit = at != _MISSING
        candidate = pl.Series(np.where(hit, at, 0), dtype=pl.UInt32)
        same = (self.ids.gather(candidate) == values).fill_null(False).to_numpy() & hit
        at = np.where(same, at, _MISSING)
        return at, runs.get_column("len").to_numpy() if runs.height < keys.len() else None

    def per_row(self, keys: pl.Series, flags: list[str]) -> dict[str, pl.Series] | None:
        """`_subject_excluded`, `_known` and the table's `flags` columns (TOKEN: the
        position itself) per row of `keys`, as a left join of the table on the id gives
        them, except that `_subject_excluded` is already what enforce reads of it:
        `_known & _subject_excluded.fill_null(True)` (never null). None when no lookup can
        be made."""
        runs = self._runs(keys)
        if runs is None:
            return None
        at_runs, lengths = runs
        at = _per_row_positions(at_runs, lengths)
        # Decided per run and repeated: a per-row gather of the nullable flags by nullable
        # positions cost ~6x more (transactions at 1M: 19 against 3 ms).
        known = at_runs != _MISSING
        excluded = known & self.excluded_or_unknown[np.where(known, at_runs, 0)]
        out = {
            "_subject_excluded": pl.Series(
                "_subject_excluded", excluded if lengths is None else np.repeat(excluded, lengths)
            ),
            "_known": at.is_not_null().rename("_known"),
        }
        for c in flags:
            out[c] = at if c == TOKEN else self.table.get_column(c).gather(at).rename(c)
        return out


_MISSING = np.uint32(np.iinfo(np.uint32).max)


def _per_row_positions(at_runs: np.ndarray, lengths: np.ndarray | None) -> pl.Series:
    """The runs' positions repeated over their rows, `_MISSING` as null."""
    at = at_runs if lengths is None else np.repeat(at_runs, lengths)
    out = pl.Series(TOKEN, at, dtype=pl.UInt32)
    missing = np.flatnonzero(at == _MISSING)
    return out.scatter(missing, None) if len(missing) else out


class _HashIndex:
    """Positions by 64-bit hash, built once per refresh: it answers each source's run values
    in a few numpy passes (a join would hash the table again per source).

    Distinct hashes sit in a linear-probing table at most half full, each at or after its
    home slot (the hash's top bits) with no free slot in between: a query's first probe
    almost always settles it (its hash is there, or the slot is free), about one random
    read per query. The sorted-hashes index before read a bucket's start, its end and then
    the entries: three random reads and twice the passes (160k queries: 5.2 -> 2.5 ms)."""

    def __init__(self, hashes: np.ndarray) -> None:
        # Not a stable sort: ties only matter where hashes repeat, and then the index is not
        # used (`distinct` is false). NumPy's default sort of 64-bit keys is vectorised:
        # 160k hashes 13 -> 3 ms, 1M 100 -> 28 ms (2026-12-02, Intel Xeon).
        order = np.argsort(hashes)
        ordered = hashes[order]
        self.distinct = bool(np.all(ordered[1:] != ordered[:-1]))
        n = len(hashes)
        bits = max(1, (2 * n).bit_length())
        self.shift = np.uint64(64 - bits)
        # In hash order the home slots never decrease, so linear probing puts entry i at
        # max(its home, entry i-1's slot + 1): a running maximum, no insertion rounds. The
        # table does not wrap: it ends past the last entry with at least one free slot.
        i = np.arange(n)
        home = (ordered >> self.shift).astype(np.int64)
        slots = i + np.maximum.accumulate(home - i) if n else i
        size = max(1 << bits, int(slots[-1]) + 2 if n else 1)
        self.keys = np.zeros(size, dtype=np.uint64)
        self.at = np.full(size, _MISSING, dtype=np.uint32)
        if self.distinct:
            self.keys[slots] = ordered
            self.at[slots] = order

    def find(self, queries: np.ndarray) -> np.ndarray:
        """The position of each query's hash, `_MISSING` where no entry has it (distinct
        hashes only: the caller joins otherwise)."""
        if not self.distinct:
            raise ValueError("_HashIndex.find needs distinct hashes")
        slot = (queries >> self.shift).astype(np.int64)
        at = self.at[slot]
        out = np.where(self.keys[slot] == queries, at, _MISSING)
        # Probe on only where the slot holds another hash (a free slot ends a probe).
        todo = np.flatnonzero((out == _MISSING) & (at != _MISSING))
        while len(todo):
            slot[todo] += 1
            s = slot[todo]
            hit = self.keys[s] == queries[todo]
            out[todo[hit]] = self.at[s[hit]]
            todo = todo[~hit & (self.at[s] != _MISSING)]
        return out


def row_for_row(table: pl.DataFrame, keys: pl.Series) -> bool:
    """The per-subject table has one row per row of `keys`, in order, every key distinct and
    none null: a left join of `keys` to it is the table itself. A table with flag columns
    has distinct subjects (engine/enforce_subjects.py merges repeated ones), so a table of
    as many rows with the same keys in the same order is the subjects source's rows."""
    return (
        table.width > 1
        and table.height == keys.len()
        and keys.null_count() == 0
        and table.get_column(table.columns[0]).equals(keys, check_names=False)
    )
