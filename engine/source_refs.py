"""References between sources: which rows name a parent value the referenced source's valid
rows do not hold (orphans, quarantined as `orphan:<column>`).

The check was `value.is_in(parents)` inside the contract pass, with the parents (160k valid
customers at 1M EU-DE) as a literal of the query. Polars hashes a literal value by value
while it optimises a query (to find common subexpressions), on the calling thread, before
any row is read: about 25 ms per referencing source at 1M, most of a small source's whole
cost and time in which neither core reads rows. Here the parents are a frame that an anti
join builds its hash table from once; the answer is the few orphan rows' numbers, which the
contract pass marks like the duplicate keys (a short literal of row numbers).

Same answer as `is_in`: a null value is never an orphan (it is `required:` or allowed), a
parent null matches nothing, and a parent value repeated changes nothing (an anti join
keeps a row or drops it, never multiplies it). Only same-typed columns take the join; a
reference between columns of different declared types keeps the `is_in` form and its error.
"""

from __future__ import annotations

import polars as pl

VALUE = "__ref_value"


def joinable(value_type: pl.DataType, parents: pl.Series) -> bool:
    """Whether the anti join gives `is_in`'s answer for these types (equal dtypes)."""
    return parents.dtype == value_type


def orphan_query(lf: pl.LazyFrame, row: str, value: pl.Expr, parents: pl.Series) -> pl.LazyFrame:
    """The `row` numbers of the rows whose non-null `value` is not among `parents`."""
    known = parents.alias(VALUE).to_frame().lazy()
    return (
        lf.select(pl.col(row), value.alias(VALUE))
        .filter(pl.col(VALUE).is_not_null())
        .join(known, on=VALUE, how="anti")
        .select(row)
    )


def marked(rows: pl.Series, row: str) -> pl.Expr:
    """True on the rows numbered in `rows` (orphans or duplicate keys found by a pre-pass)."""
    return pl.col(row).is_in(rows.implode()) if len(rows) else pl.lit(False)
