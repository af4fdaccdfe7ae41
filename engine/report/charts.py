"""Vega-Lite chart specifications (through Altair) for the report's sections.

Each function takes already-aggregated, k-suppressed figures and returns a JSON-ready
Vega-Lite spec with its data inlined, so the page needs no data file and no network.
Suppressed cells are not drawn as numbers: they are labelled "<k" or left out with a note.
"""

from __future__ import annotations

from typing import Any

import altair as alt

from engine.report.profile import persona_label, standardised

Spec = dict[str, Any]
WIDTH = 560

TIER_ORDER = ["SDD", "CDD", "EDD", "EDD_SENIOR", "PROHIBITED"]


def _spec(chart: Any) -> Spec:
    spec: Spec = chart.to_dict()
    return spec


def accounting(acc: dict[str, Any]) -> Spec:
    rows = []
    for source, a in sorted(acc.items()):
        rows.append({"source": source, "outcome": "kept", "rows": int(a.get("kept", 0))})
        for reason, n in sorted((a.get("excluded_by_reason") or {}).items()):
            rows.append({"source": source, "outcome": f"excluded: {reason}", "rows": int(n)})
        for reason, n in sorted((a.get("quarantined_by_reason") or {}).items()):
            rows.append({"source": source, "outcome": f"quarantined: {reason}", "rows": int(n)})
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("rows:Q", stack="normalize", title="share of input rows"),
            y=alt.Y("source:N", title=None),
            color=alt.Color("outcome:N", legend=alt.Legend(orient="bottom", columns=3)),
            tooltip=["source:N", "outcome:N", "rows:Q"],
        )
        .properties(width=WIDTH, title="Row accounting per source")
    )
    return _spec(chart)


def persona_sizes(personas: list[dict[str, Any]]) -> Spec:
    rows = [
        {"persona": persona_label(p["persona_id"], p["name"]), "customers": p["size"]}
        for p in personas
    ]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("customers:Q", title="customers"),
            y=alt.Y("persona:N", sort=None, title=None),
            tooltip=["persona:N", "customers:Q"],
        )
        .properties(width=WIDTH - 200, title="Persona sizes")
    )
    return _spec(chart)


def profile_heatmap(doc: dict[str, Any]) -> Spec:
    rows = standardised(doc)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("feature:N", title=None, axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("persona:N", sort=None, title=None),
    )
    rects = base.mark_rect().encode(
        color=alt.Color(
            "z:Q",
            title="std units",
            scale=alt.Scale(scheme="redblue", domain=[-2.5, 2.5], clamp=True, reverse=True),
        ),
        tooltip=["persona:N", "feature:N", "z:Q"],
    )
    text = base.mark_text(fontSize=8).encode(text=alt.Text("z:Q", format=".1f"))
    chart = (rects + text).properties(
        title="Profile: centroid per feature, in population standard deviations"
    )
    return _spec(chart)


def kpi_bars(doc: dict[str, Any], units: dict[str, str]) -> Spec:
    rows = []
    for p in doc["personas"]:
        intervals = p.get("kpi_intervals") or {}
        for kpi, value in sorted((p.get("kpis") or {}).items()):
            if value is None:
                continue  # suppressed below k: listed in the table, not drawn
            lo, hi = (intervals.get(kpi) or [value, value])[:2]
            rows.append(
                {
                    "persona": persona_label(p["persona_id"], p["name"]),
                    "kpi": f"{kpi} ({units.get(kpi, '')})".replace(" ()", ""),
                    "value": value,
                    "low": lo,
                    "high": hi,
                }
            )
    base = alt.Chart().encode(y=alt.Y("persona:N", sort=None, title=None))
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", title=None), tooltip=["persona:N", "kpi:N", "value:Q", "low:Q", "high:Q"]
    )
    whiskers = base.mark_rule(color="black").encode(x="low:Q", x2="high:Q")
    chart = (
        alt.layer(bars, whiskers, data=alt.Data(values=rows))
        .properties(width=220, height=alt.Step(14))
        .facet(facet=alt.Facet("kpi:N", title=None), columns=2)
        .resolve_scale(x="independent")
        .properties(title="KPIs per persona (bar = value, line = interval)")
    )
    return _spec(chart)


def migration(diff: dict[str, Any], k: int) -> Spec:
    rows = [
        {
            "from": persona_label(m["from_id"], m["from_name"]),
            "to": persona_label(m["to_id"], m["to_name"]),
            "count": None if m["suppressed"] else m["count"],
            "label": f"<{k}" if m["suppressed"] else str(m["count"]),
        }
        for m in diff.get("migration") or []
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("to:N", title="this version", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("from:N", title="previous version"),
    )
    rects = base.mark_rect().encode(
        color=alt.Color("count:Q", title="customers", scale=alt.Scale(scheme="blues")),
        tooltip=["from:N", "to:N", "label:N"],
    )
    text = base.mark_text(fontSize=10).encode(text="label:N")
    return _spec((rects + text).properties(title="Migration between versions (customers)"))


def tiers(tier_counts: dict[str, int | None], k: int) -> Spec:
    order = [t for t in TIER_ORDER if t in tier_counts] + sorted(set(tier_counts) - set(TIER_ORDER))
    rows = [
        {
            "tier": t,
            "customers": tier_counts[t] or 0,
            "label": f"<{k}" if tier_counts[t] is None else str(tier_counts[t]),
        }
        for t in order
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(x=alt.X("tier:N", sort=order, title=None))
    bars = base.mark_bar().encode(y=alt.Y("customers:Q"), tooltip=["tier:N", "label:N"])
    text = base.mark_text(dy=-6).encode(y="customers:Q", text="label:N")
    return _spec((bars + text).properties(width=300, title="KYC tier distribution"))


def reasons(reason_counts: list[tuple[str, int | None]], k: int) -> Spec:
    rows = [
        {"reason": r, "customers": n or 0, "label": f"<{k}" if n is None else str(n)}
        for r, n in reason_counts
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(y=alt.Y("reason:N", sort=None, title=None))
    bars = base.mark_bar().encode(x=alt.X("customers:Q"), tooltip=["reason:N", "label:N"])
    text = base.mark_text(align="left", dx=3).encode(x="customers:Q", text="label:N")
    return _spec((bars + text).properties(width=WIDTH - 250, title="Reason codes by frequency"))


def queue_load(queues: list[dict[str, Any]], k: int) -> Spec:
    rows = [
        {
            "queue": q["queue"],
            "per_day": q["per_day"] or 0,
            "label": (
                f"<{k} items"
                if q["items"] is None
                else f"{q['items']} items / {q['sla_days']} d SLA = {q['per_day']}/day"
            ),
        }
        for q in queues
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(y=alt.Y("queue:N", title=None))
    bars = base.mark_bar().encode(
        x=alt.X("per_day:Q", title="items to clear per day to meet the SLA"),
        tooltip=["queue:N", "label:N"],
    )
    text = base.mark_text(align="left", dx=3).encode(x="per_day:Q", text="label:N")
    return _spec((bars + text).properties(width=WIDTH - 250, title="Queue load against SLA"))


def trend_lines(
    rows: list[dict[str, Any]], field: str, series: str, title: str, *, facet: bool = False
) -> Spec:
    """One line per series across versions; flagged points drawn in red. ``facet`` gives
    each series its own panel and y scale (KPIs have unrelated units and magnitudes)."""
    base = alt.Chart().encode(
        x=alt.X("version:N", sort=None, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{field}:Q", title=None),
        color=alt.Color(f"{series}:N", legend=alt.Legend(orient="bottom", columns=2)),
    )
    lines = base.mark_line(point=True).encode(tooltip=["version:N", f"{series}:N", f"{field}:Q"])
    layers = [lines]
    if any(r.get("drift") for r in rows):
        title += " (red: drift)"
        # Opacity rather than a filter: a filtered-out panel would draw an empty layer.
        layers.append(
            base.mark_point(shape="diamond", size=140, filled=True).encode(
                color=alt.value("red"),
                opacity=alt.condition("datum.drift", alt.value(1.0), alt.value(0.0)),
            )
        )
    chart = alt.layer(*layers, data=alt.Data(values=rows))
    if facet:
        faceted = (
            chart.properties(width=240, height=120)
            .facet(facet=alt.Facet(f"{series}:N", title=None), columns=2)
            .resolve_scale(y="independent")
            .properties(title=title)
        )
        return _spec(faceted)
    return _spec(chart.properties(width=WIDTH, title=title))
