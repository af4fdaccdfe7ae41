"""Units and formats for KPI values, shared by the report and the terminal views.

A version may declare a KPI's unit (`kpi_units` in personas.json); otherwise the unit follows
the KPI's name by convention (`*_rate` is a share of customers, `*_months` a duration, an
amount or value is money). Money is shown without a currency symbol: the workspace's data
carries no currency, and inventing one would be worse than none.
"""

from __future__ import annotations

from typing import Any

SHARE = "share"
MONEY = "money"


def kpi_unit(name: str, declared: dict[str, str] | None = None) -> str:
    if declared and name in declared:
        return declared[name]
    n = name.lower()
    if n.endswith(("_rate", "_share", "_ratio")):
        return SHARE
    for suffix, unit in (("_months", "months"), ("_days", "days"), ("_years", "years")):
        if n.endswith(suffix):
            return unit
    if n.endswith(("_count", "_n")) or n.startswith("n_"):
        return "count"
    if any(w in n for w in ("amount", "value", "volume", "revenue", "balance", "spend", "income")):
        return MONEY
    return "units"


def fmt_kpi(value: Any, unit: str, *, bare: bool = False) -> str:
    """One format per unit so a table never mixes `4.031` with `1,518`; ``bare`` leaves
    out a trailing unit word (for tables whose row label carries the unit)."""
    if value is None:
        return "<k" if bare else "suppressed"
    v = float(value)
    if unit == SHARE:
        return f"{v:.1%}"
    if unit == MONEY:
        return f"{v:,.0f}"
    if unit in ("months", "days", "years"):
        return f"{v:,.1f}" if bare else f"{v:,.1f} {unit[:-1] if v == 1 else unit}"
    if unit == "count":
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def unit_label(unit: str, *, short: bool = False) -> str:
    if short:
        return {SHARE: "%", MONEY: "money"}.get(unit, unit)
    return {SHARE: "% of customers", MONEY: "money, mean per customer"}.get(unit, unit)
