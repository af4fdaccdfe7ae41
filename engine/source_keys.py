"""Duplicate keys of one source: which rows share a key with another row.

A duplicate is a property of the whole source, not of one row, so it is found before the
contract pass, from the key columns alone (the scan reads nothing else), and handed to that
pass as a list of row numbers.

A single-column key whose values strictly increase in row order has no duplicate, and that
is settled by comparing each key with the one before (`strictly_increasing`). Otherwise,
Polars' hash-table `is_duplicated` on millions of string keys was most of a scan's time:
here the keys' 64-bit hashes are sorted (cheap): when no hash repeats, which is the normal
case, no key repeats either and nothing else is read. Rows whose hash repeats are only
candidates (two keys can share a hash): their keys alone are read again and compared
exactly, so the answer is exactly `is_duplicated`'s. A row with a null key part is never a
duplicate (it is quarantined as `required:` instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.contracts import typed_expr
from engine.digest_cache import StatKey
from engine.source_files import check_unchanged, read_state, scan, source_file
from engine.workspace import Workspace

KEY_HASH = "__key_hash"


def key_hash(key: pl.Expr) -> pl.Expr:
    """A 64-bit hash of a key (a module-level seam so a test can force collisions)."""
    return key.hash()


def repeated_hashes(hashes: pl.Series) -> np.ndarray:
    """The hash values that occur more than once (nulls ignored)."""
    ordered = hashes.drop_nulls().sort().to_numpy()  # Polars' sort uses both cores
    return np.unique(ordered[1:][ordered[1:] == ordered[:-1]])


def increasing_query(lf: pl.LazyFrame, key: pl.Expr) -> pl.LazyFrame:
    """One row, one boolean: do the key's non-null values strictly increase in row order?

    Ids are often written in order (a sequence, a timestamped id): one comparison per row
    with its predecessor then settles uniqueness without hashing and sorting every key,
    which was a quarter of the largest source's scan. Sound in any order: a sequence whose
    every step increases holds no value twice; any other answer takes the hash path. A
    query, so the caller can collect it with its other pre-pass queries over one scan.
    """
    k = key.drop_nulls()
    return lf.select((k > k.shift(1)).all().alias("__increasing"))


def strictly_increasing(lf: pl.LazyFrame, key: pl.Expr) -> bool:
    """True when the key's non-null values strictly increase in row order, so none repeats."""
    return bool(increasing_query(lf, key).collect().item())


def duplicate_rows(
    lf: pl.LazyFrame, row: str, keys: list[pl.Expr], *, increasing: bool | None = None
) -> pl.Series:
    """The `row` values of every row whose (non-null) key occurs more than once in `lf`.

    `increasing`: the answer of `increasing_query` for a single-column key, when the
    caller already collected it (None: asked here)."""
    if increasing is None:
        increasing = len(keys) == 1 and strictly_increasing(lf, keys[0])
    if increasing and len(keys) == 1:
        return pl.Series(row, [], dtype=lf.collect_schema()[row])
    key = keys[0] if len(keys) == 1 else pl.struct(keys)
    present = pl.all_horizontal([k.is_not_null() for k in keys])
    hashed = lf.select(pl.col(row), pl.when(present).then(key_hash(key)).alias(KEY_HASH)).collect()
    repeated = repeated_hashes(hashed[KEY_HASH])
    if len(repeated) == 0:
        return hashed[row].clear()
    candidates = hashed.filter(
        pl.col(KEY_HASH).is_in(pl.Series(repeated, dtype=pl.UInt64).implode())
    )[row]
    exact = (
        lf.filter(pl.col(row).is_in(candidates.implode()))
        .select(pl.col(row), key.alias("__key"))
        .collect()
    )
    return exact.filter(pl.col("__key").is_duplicated())[row].sort()


@dataclass(frozen=True)
class KeyOrder:
    state: StatKey  # the file's state the answer was read from
    increasing: bool


def key_order(ws: Workspace, name: str, jurisdiction: str) -> KeyOrder | None:
    """Whether the source's single-column key strictly increases (`strictly_increasing`),
    asked while the sources it references are still loading: it needs none of their rows,
    and it fills the core the subjects source leaves idle. None when there is no such key
    or the file cannot be read now: the source's own read asks again and reports, in load
    order. The answer holds only for the file state it was read from (`_load_one`)."""
    spec = ws.source(name)
    if len(spec.key) != 1:
        return None
    k = spec.key[0]
    try:
        path = source_file(ws, name)
        state = read_state(path)
        lf = scan(path, spec.format, check=False)
        key = typed_expr(k, lf.collect_schema()[k], spec.columns[k], spec.path, name)
        scoped = lf.filter(pl.col(spec.jurisdiction_column) == jurisdiction)
        increasing = strictly_increasing(scoped, key)
        check_unchanged(path, state)
    except Exception:  # reported by the source's own read, in load order
        return None
    return KeyOrder(state, increasing)
