"""Column actions: the Polars expression each policy action (keep, pseudonymise, generalise)
applies to one column of a source, and the lineage entry that records it. Enforcement
(engine/enforce.py) applies them to each source's kept rows."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

import polars as pl

from engine.errors import PolicyError
from engine.governed import SUBJECT, TokenSource
from engine.policy.plan import ColumnAction


class Generaliser(Protocol):
    """engine.pseudonym.generalise_expr's shape: `frame` is the frame the expression runs on
    (a method may specialise itself to it, giving the same values)."""

    def __call__(
        self,
        column: str,
        method: str,
        params: dict[str, Any],
        as_of: date,
        *,
        frame: pl.DataFrame | None = None,
    ) -> pl.Expr: ...


def action_expr(
    col: str,
    action: ColumnAction,
    pseudonymiser: TokenSource,
    generaliser: Generaliser,
    as_of: date,
    out: str,
    frame: pl.DataFrame,
) -> pl.Expr:
    """The expression one policy column action applies to `col`, named `out`."""
    if action.action == "keep":
        return pl.col(col).alias(out)
    if action.action == "pseudonymise":
        assert action.domain is not None
        if out == SUBJECT:
            # Every source's subject column (holder_id, card_holder, ...) is tokenised under
            # one key context, so the tokens join across sources whatever each calls it.
            return pseudonymiser.token_expr(
                col, action.domain, action.normaliser, key_column=SUBJECT
            ).alias(out)
        return pseudonymiser.token_expr(col, action.domain, action.normaliser).alias(out)
    if action.action == "generalise":
        assert action.method is not None
        return generaliser(col, action.method, dict(action.params), as_of, frame=frame).alias(out)
    raise PolicyError(f"unknown column action '{action.action}'", reasons=["policy.bad_action"])


def lineage_entry(col: str, action: ColumnAction, out: str) -> dict[str, str]:
    """What the version's lineage records of one column's action (never a key or a value)."""
    entry = {"action": action.action, "input": col, "output": out, "reason": action.reason}
    for key in ("domain", "normaliser", "method"):
        value = getattr(action, key)
        if value:
            entry[key] = str(value)
    if action.article:
        entry["article"] = action.article
    return entry
