"""The typed condition language that carries row-level rules from Rego to Polars.

Rego is evaluated once per refresh, never per row. Row rules (exclusions, per-customer
column nulling, KYC scoring factors and floors) come back as conditions:

    {"field": "marketing_consent", "op": "eq", "value": true}
    {"all": [cond, ...]}   {"any": [cond, ...]}   {"not": cond}

and compile here into one Polars expression each. The compiler refuses anything it does not
know (field, operator, shape): a rule it cannot read must never become "no restriction".

Null semantics: "missing means no". A comparison against a null value is false, so
`not (marketing_consent == true)` is true for a customer with no recorded consent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, model_validator

from engine.errors import PolicyError

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
_UNARY: frozenset[str] = frozenset({"is_null", "not_null"})


class Condition(BaseModel):
    """One node: a leaf (field/op/value) or exactly one of all / any / not."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str | None = None
    op: Op | None = None
    value: Any = None
    all_: list[Condition] | None = None
    any_: list[Condition] | None = None
    not_: Condition | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            for word in ("all", "any", "not"):
                if word in data:
                    data[f"{word}_"] = data.pop(word)
        return data

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        shapes = [
            self.field is not None or self.op is not None,
            self.all_ is not None,
            self.any_ is not None,
            self.not_ is not None,
        ]
        if sum(shapes) != 1:
            raise ValueError("a condition is exactly one of: field/op/value, all, any, not")
        if shapes[0]:
            if self.field is None or self.op is None:
                raise ValueError("a leaf condition needs both field and op")
            if self.op in ("in", "not_in") and not isinstance(self.value, list):
                raise ValueError(f"operator '{self.op}' needs a list value")
            if self.op not in _UNARY and self.op not in ("in", "not_in") and self.value is None:
                raise ValueError(f"operator '{self.op}' needs a value")
        if self.all_ is not None and not self.all_:
            raise ValueError("'all' needs at least one condition")
        if self.any_ is not None and not self.any_:
            raise ValueError("'any' needs at least one condition")
        return self

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (the same shape Rego produced)."""
        if self.all_ is not None:
            return {"all": [c.to_json() for c in self.all_]}
        if self.any_ is not None:
            return {"any": [c.to_json() for c in self.any_]}
        if self.not_ is not None:
            return {"not": self.not_.to_json()}
        out: dict[str, Any] = {"field": self.field, "op": self.op}
        if self.op not in _UNARY:
            out["value"] = self.value
        return out

    def fields(self) -> set[str]:
        if self.all_ is not None:
            return set().union(*(c.fields() for c in self.all_))
        if self.any_ is not None:
            return set().union(*(c.fields() for c in self.any_))
        if self.not_ is not None:
            return self.not_.fields()
        assert self.field is not None
        return {self.field}


def parse_condition(raw: Any, where: str = "condition") -> Condition:
    """Parse a condition from policy output; any shape error is a policy error (deny)."""
    try:
        return Condition.model_validate(raw)
    except Exception as exc:  # pydantic ValidationError or type errors from odd shapes
        raise PolicyError(
            f"{where}: malformed condition from policy ({type(exc).__name__}); refusing",
            reasons=["policy.malformed_condition"],
        ) from None


def _leaf(cond: Condition, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    assert cond.field is not None and cond.op is not None
    if cond.field not in schema:
        raise PolicyError(
            f"condition names unknown field '{cond.field}'; known: {', '.join(sorted(schema))}",
            reasons=["policy.unknown_field"],
        )
    col = pl.col(cond.field)
    dtype = schema[cond.field]
    op = cond.op
    if op == "is_null":
        return col.is_null()
    if op == "not_null":
        return col.is_not_null()
    value = cond.value
    if op in ("in", "not_in"):
        lit_values = [_coerce(v, dtype, cond.field) for v in value]
        expr = col.is_in(pl.Series(lit_values, dtype=dtype).implode())
        expr = expr if op == "in" else ~expr
    else:
        lit = pl.lit(_coerce(value, dtype, cond.field), dtype=dtype)
        expr = {
            "eq": col == lit,
            "ne": col != lit,
            "lt": col < lit,
            "le": col <= lit,
            "gt": col > lit,
            "ge": col >= lit,
        }[op]
    # Missing means no: a comparison with a null value is false, never unknown.
    return expr.fill_null(False) & col.is_not_null()


def _coerce(value: Any, dtype: pl.DataType, field: str) -> Any:
    """Check a literal against the column type so a typo is an error, not a silent miss."""
    ok: bool
    if dtype == pl.Boolean:
        ok = isinstance(value, bool)
    elif dtype.is_integer():
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif dtype.is_float():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif dtype == pl.String or dtype == pl.Categorical:
        ok = isinstance(value, str)
    elif dtype == pl.Date or isinstance(dtype, pl.Datetime):
        # ISO strings; Polars parses them when compared against temporal columns.
        if not isinstance(value, str):
            ok = False
        else:
            from datetime import date, datetime

            try:
                return (
                    date.fromisoformat(value) if dtype == pl.Date else datetime.fromisoformat(value)
                )
            except ValueError:
                ok = False
    else:
        ok = True
    if not ok:
        raise PolicyError(
            f"condition on '{field}' compares a {dtype} column with a {type(value).__name__}",
            reasons=["policy.type_mismatch"],
        )
    return value


def compile_condition(cond: Condition, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """One Polars boolean expression, never null, for the condition over `schema`."""
    if cond.all_ is not None:
        parts = [compile_condition(c, schema) for c in cond.all_]
        return pl.all_horizontal(parts)
    if cond.any_ is not None:
        parts = [compile_condition(c, schema) for c in cond.any_]
        return pl.any_horizontal(parts)
    if cond.not_ is not None:
        return ~compile_condition(cond.not_, schema)
    return _leaf(cond, schema)


def compile_all(conds: Iterable[Condition], schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    return [compile_condition(c, schema) for c in conds]
