"""A chain's versions side by side: KPIs, persona sizes and tier mix, with drift flags.

Every version of the chain is verified first (one that does not verify refuses the whole
trend: a trend line through an unverifiable point would be a silent outcome). Drift is a
change between consecutive versions above `[report] drift_threshold`: relative for KPIs,
absolute share points for persona sizes and tiers. Persona series follow the persona's
name, since ids are per version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from engine.report import charts
from engine.report.evidence import kyc_summary, verify_or_refuse
from engine.report.units import fmt_kpi, kpi_unit
from engine.workspace import Workspace


@dataclass(frozen=True)
class Trend:
    chain: str
    threshold: float
    versions: list[str]
    kpis: list[dict[str, Any]]
    sizes: list[dict[str, Any]]
    tiers: list[dict[str, Any]]

    @property
    def flags(self) -> list[dict[str, Any]]:
        return [r for r in self.kpis + self.sizes + self.tiers if r["drift"]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "drift_threshold": self.threshold,
            "versions": self.versions,
            "kpis": self.kpis,
            "persona_sizes": self.sizes,
            "tiers": self.tiers,
            "flags": self.flags,
        }


def _weighted_kpis(doc: dict[str, Any]) -> dict[str, float]:
    """Customer-weighted mean of each KPI over the personas that publish it (suppressed
    cells carry no value and no weight)."""
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    for p in doc["personas"]:
        for k, v in (p.get("kpis") or {}).items():
            if v is not None:
                sums[k] = sums.get(k, 0.0) + float(v) * int(p["size"])
                weights[k] = weights.get(k, 0) + int(p["size"])
    return {k: round(sums[k] / weights[k], 6) for k in sorted(sums) if weights[k] > 0}


def _mark(rows: list[dict[str, Any]], key: str, value: str, threshold: float, rel: bool) -> None:
    last: dict[str, float] = {}
    for r in rows:
        prev = last.get(r[key])
        v = r[value]
        change = None
        if prev is not None and v is not None:
            change = (v - prev) / abs(prev) if rel and prev != 0 else (v - prev)
        r["change"] = None if change is None else round(change, 6)
        r["drift"] = change is not None and abs(change) > threshold
        if v is not None:
            last[r[key]] = v


def build_trend(ws: Workspace, jurisdiction: str, purpose: str) -> Trend:
    from engine.segment.io import read_personas
    from engine.versions import list_versions

    versions = list_versions(ws, jurisdiction, purpose)
    if not versions:
        raise UsageError(f"{jurisdiction}/{purpose}: no published versions to trend")
    threshold = ws.config.report.drift_threshold
    kpis: list[dict[str, Any]] = []
    sizes: list[dict[str, Any]] = []
    tiers: list[dict[str, Any]] = []
    for info in versions:
        vdir: Path = info.path
        verify_or_refuse(ws, vdir)
        doc = read_personas(vdir)
        for k, v in _weighted_kpis(doc).items():
            kpis.append({"version": info.version_id, "kpi": k, "value": v})
        for p in doc["personas"]:
            sizes.append({"version": info.version_id, "persona": p["name"], "share": p["share"]})
        k_min = int(doc["params"].get("k_anonymity", 1))
        kyc = kyc_summary(vdir, k_min)
        if kyc is not None:
            known = sum(n for n in kyc.tiers.values() if n is not None)
            total = int(doc.get("customers") or known) or 1
            for t, n in kyc.tiers.items():
                share = None if n is None else round(n / total, 6)
                tiers.append({"version": info.version_id, "tier": t, "share": share})
    _mark(kpis, "kpi", "value", threshold, rel=True)
    _mark(sizes, "persona", "share", threshold, rel=False)
    _mark(tiers, "tier", "share", threshold, rel=False)
    return Trend(
        chain=f"{jurisdiction}/{purpose}",
        threshold=threshold,
        versions=[v.version_id for v in versions],
        kpis=kpis,
        sizes=sizes,
        tiers=tiers,
    )


def trend_html(trend: Trend) -> str:
    from engine.report.html import render_page

    specs: dict[str, charts.Spec] = {}
    if trend.kpis:
        specs["chart-kpis"] = charts.trend_lines(
            trend.kpis, "value", "kpi", "KPIs (customer-weighted mean over personas)", facet=True
        )
    specs["chart-sizes"] = charts.trend_lines(
        trend.sizes, "share", "persona", "Persona sizes (share of customers)"
    )
    if trend.tiers:
        specs["chart-tiers"] = charts.trend_lines(
            [t for t in trend.tiers if t["share"] is not None],
            "share",
            "tier",
            "KYC tier mix (share of customers)",
        )
    flags = [
        {
            "version": r["version"],
            "what": r.get("kpi") or r.get("persona") or r.get("tier"),
            "value": (
                fmt_kpi(r["value"], kpi_unit(r["kpi"])) if "kpi" in r else f"{r['share']:.1%}"
            ),
            "change": (
                f"{r['change']:+.1%}" + (" relative" if "kpi" in r else " points")
                if r["change"] is not None
                else "-"
            ),
        }
        for r in trend.flags
    ]
    return render_page(
        "trend.html.j2",
        specs,
        title=f"Trend of {trend.chain}",
        subtitle=f"{len(trend.versions)} verified version(s): {', '.join(trend.versions)}",
        trend=trend,
        flags=flags,
    )
