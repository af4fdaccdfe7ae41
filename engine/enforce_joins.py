"""How each source's rows meet the per-subject flags table in enforcement: the subject
tokens computed once per subject and gathered by position, the join by runs for sources
that list each subject's rows together, and the subjects source taken row for row.
"""

from __future__ import annotations

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

    def column(self, action: ColumnAction) -> pl.Series:
        key = (action.domain, action.normaliser)
        if key not in self.memo:
            assert action.domain is not None
            expr = self.pseudonymiser.token_expr(
                self.table.columns[0], action.domain, action.normaliser, key_column=SUBJECT
            )
            self.memo[key] = self.table.select(expr.alias(TOKEN)).to_series()
        return self.memo[key]

    def published(self, source: str, action: ColumnAction, at: pl.Series) -> None:
        """`at`: the subject positions of a source's kept rows (null where the row's subject
        is null: only the subjects source can keep such a row, and it publishes no token)."""
        if action.domain != REVERSIBLE_DOMAIN:
            return
        key = (action.domain, action.normaliser)
        mask = self.kept.get(key)
        if mask is None:
            mask = self.kept[key] = np.zeros(self.table.height, dtype=np.bool_)
        mask[at.drop_nulls().to_numpy()] = True
        self.sources.add(source)

    def distinct_published(self) -> dict[str, pl.Series]:
        parts = [self.memo[k].filter(pl.Series(self.kept[k])) for k in sorted(self.kept, key=str)]
        if not parts:
            return {}
        # Every joined subject column is tokenised under the one SUBJECT key context.
        return {SUBJECT: pl.concat(parts).unique(maintain_order=True)}


def joined_by_runs(keys: pl.Series, table: pl.LazyFrame) -> list[pl.Series] | None:
    """The table's columns (but the key) for each row of `keys`, as a left join on the key
    gives them, when the rows list each subject's rows together (exports by customer).
    Then the join is of the runs of equal keys, about one per subject, and their rows are
    gathered back by run: a pass comparing neighbours instead of hashing every row's key (a
    37.7M-row string join at 10M). None when the rows are not grouped enough to pay, or the
    table repeats a key (the join would then give a row more than once)."""
    if keys.len() == 0:
        return None
    runs = keys.rle().struct.unnest()  # len, value: one row per run, in row order
    if runs.height * 2 > keys.len():
        return None
    key = keys.name
    joined = (
        runs.lazy()
        .select(pl.col("value").alias(key))
        .join(table, on=key, how="left", maintain_order="left")
        .drop(key)
        .collect(engine="in-memory")
    )
    if joined.height != runs.height:
        return None
    lens = runs.get_column("len").to_numpy()
    return [repeated(c, lens) for c in joined.get_columns()]


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


def repeated(values: pl.Series, lens: np.ndarray) -> pl.Series:
    """Each value `lens` times (np.repeat: several times cheaper than a gather by row)."""
    if not (values.dtype == pl.Boolean or values.dtype.is_integer() or values.dtype.is_float()):
        return values.gather(pl.Series(np.repeat(np.arange(len(values), dtype=np.uint32), lens)))
    filled = values.fill_null(False if values.dtype == pl.Boolean else 0)
    out = pl.Series(values.name, np.repeat(filled.to_numpy(), lens), dtype=values.dtype)
    if values.null_count():
        valid = pl.Series(np.repeat(values.is_not_null().to_numpy(), lens))
        out = pl.select(pl.when(valid).then(out).alias(values.name)).to_series()
    return out
