"""One self-contained HTML page per report: Jinja2 templates (autoescaped), chart specs as
inline JSON, and the Vega / Vega-Lite / vega-embed JavaScript inlined from vl-convert's
offline bundle. The page makes no network request when opened.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime
from typing import Any

from engine.report import charts
from engine.report.evidence import VersionEvidence
from engine.report.profile import top_features
from engine.report.units import fmt_kpi, kpi_unit, unit_label

# Altair 6 writes Vega-Lite 6.4 specs; the inlined library must be the same version.
VL_VERSION = "6.4"


# The bundle's module scope holds the three libraries; the page's script reads them here.
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


@functools.lru_cache(maxsize=1)
def js_bundle() -> str:
    import vl_convert as vlc

    bundle: str = vlc.javascript_bundle(_GLOBALS, vl_version=VL_VERSION)
    # Inside <script>, only "</script" ends the element; escaping the slash is harmless JS.
    return bundle.replace("</script", "<\\/script")


def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("engine.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _specs_json(specs: dict[str, charts.Spec]) -> str:
    return json.dumps(specs, sort_keys=True, default=str).replace("</", "<\\/")


def render_page(template: str, specs: dict[str, charts.Spec], **context: Any) -> str:
    import vl_convert as vlc

    from engine import __version__

    return str(
        _env()
        .get_template(template)
        .render(
            charts=list(specs),
            specs_json=_specs_json(specs),
            js_bundle=js_bundle(),
            code_version=__version__,
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            vl_version=VL_VERSION,
            vega_version=vlc.get_vega_version(),
            embed_version=vlc.get_vega_embed_version(),
            **context,
        )
    )


# ---------------------------------------------------------------------- plain language


def condition_text(c: Any) -> str:
    if not isinstance(c, dict):
        return str(c)
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in c:
            return "(" + joiner.join(condition_text(x) for x in c[key]) + ")"
    if "not" in c:
        return f"not {condition_text(c['not'])}"
    op = {
        "eq": "=",
        "ne": "≠",
        "lt": "<",
        "le": "≤",
        "gt": ">",
        "ge": "≥",
        "in": "in",
        "not_in": "not in",
        "is_null": "is missing",
        "not_null": "is present",
    }.get(str(c.get("op")), str(c.get("op")))
    value = c.get("value")
    shown = "" if value is None and "null" in str(c.get("op")) else f" {value}"
    return f"{c.get('field')} {op}{shown}"


def action_text(a: dict[str, Any]) -> str:
    action = a.get("action")
    if action == "keep":
        return "kept as is"
    if action == "drop":
        return "dropped before any processing"
    if action == "pseudonymise":
        domain = a.get("domain")
        how = (
            "reversible token, re-identification only by an authorised actor, audited"
            if domain == "kyc"
            else "irreversible keyed hash"
        )
        return f"pseudonymised in the {domain} domain ({how})"
    if action == "generalise":
        params = a.get("params") or {}
        extra = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
        return f"generalised to {a.get('method')}" + (f" ({extra})" if extra else "")
    if action == "null":
        return "emptied (nulled) for these rows"
    return str(action)


def _decision_sentence(plan: dict[str, Any]) -> str:
    verdict = "allowed" if plan.get("allowed") else "denied"
    text = (
        f"The policy bundle (revision {plan.get('bundle_revision')}) {verdict} "
        f"'{plan.get('actor')}' to process {plan.get('jurisdiction')} data for "
        f"{plan.get('purpose')} under {plan.get('regime') or 'no named regime'}."
    )
    if plan.get("deny_reasons"):
        text += " Reasons: " + ", ".join(plan["deny_reasons"]) + "."
    domain = plan.get("subject_domain")
    if domain:
        text += f" Customers are joined on {domain}-domain pseudonyms."
    return text


def _params(ev: VersionEvidence) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    params = dict(ev.predicate.get("parameters") or {})
    seg = params.pop("segmentation", {}) or {}
    for k, v in sorted(params.items()):
        out.append((k, json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v)))
    for k, v in sorted(seg.items()):
        shown = json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v)
        out.append((f"segmentation.{k}", shown))
    return out


def _personas(doc: dict[str, Any], kpi_names: list[str], units: dict[str, str]) -> list[Any]:
    top = top_features(doc)
    rows = []
    for p in doc["personas"]:
        stab = p.get("stability")
        kpis = p.get("kpis") or {}
        rows.append(
            {
                "id": p["persona_id"],
                "name": p["name"],
                "size": p["size"],
                "share": f"{p['share']:.1%}",
                "stability": "-" if stab is None else f"{stab:.2f}",
                "top": top.get(p["persona_id"], []),
                "descriptors": [
                    f"{k}: {v}" for k, v in sorted((p.get("descriptors") or {}).items())
                ],
                "kpis": [fmt_kpi(kpis.get(k), units[k]) if k in kpis else "-" for k in kpi_names],
            }
        )
    return rows


def _diff_rows(diff: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "from": f"{c['persona_id']} {c['name']}",
            "to": "-" if c["matched_id"] is None else f"{c['matched_id']} {c['matched_name']}",
            "s1": f"{c['share_v1']:.1%}",
            "s2": "-" if c["share_v2"] is None else f"{c['share_v2']:.1%}",
            "change": "-" if c["size_change"] is None else f"{c['size_change']:+.1%}",
            "shift": "-" if c["centroid_shift"] is None else f"{c['centroid_shift']:.3f}",
            "flags": ", ".join(c["flags"]),
        }
        for c in diff.get("changes") or []
    ]


def _backdated(ev: VersionEvidence) -> tuple[int, str]:
    built = str(ev.predicate.get("started_at", ""))[:10]
    try:
        days = (date.fromisoformat(built) - date.fromisoformat(str(ev.manifest["as_of"]))).days
    except ValueError:
        return 0, built
    return max(days, 0), built


def version_specs(ev: VersionEvidence, units: dict[str, str]) -> dict[str, charts.Spec]:
    doc = ev.personas
    specs = {
        "chart-accounting": charts.accounting(ev.accounting),
        "chart-sizes": charts.persona_sizes(doc["personas"]),
        "chart-profile": charts.profile_heatmap(doc),
    }
    if any(v is not None for p in doc["personas"] for v in (p.get("kpis") or {}).values()):
        specs["chart-kpis"] = charts.kpi_bars(doc, {k: unit_label(u) for k, u in units.items()})
    if ev.diff:
        specs["chart-migration"] = charts.migration(ev.diff, ev.k)
    if ev.kyc:
        specs["chart-tiers"] = charts.tiers(ev.kyc.tiers, ev.kyc.k)
        specs["chart-reasons"] = charts.reasons(ev.kyc.reasons, ev.kyc.k)
        specs["chart-queues"] = charts.queue_load(ev.kyc.queues, ev.kyc.k)
    return specs


def version_html(ev: VersionEvidence) -> str:
    doc = ev.personas
    plan = ev.plan
    kpi_names = sorted({k for p in doc["personas"] for k in (p.get("kpis") or {})})
    units = {k: kpi_unit(k, doc.get("kpi_units")) for k in kpi_names}
    columns: list[dict[str, Any]] = []
    row_rules: list[dict[str, Any]] = []
    treatments: dict[str, list[str]] = {}
    for source, sp in sorted((plan.get("sources") or {}).items()):
        for col, a in sorted((sp.get("columns") or {}).items()):
            plain = action_text(a)
            treatments.setdefault(plain, []).append(f"{source}.{col}")
            if a.get("action") == "keep":
                continue
            columns.append(
                {
                    "source": source,
                    "column": col,
                    "plain": plain,
                    "reason": a.get("reason"),
                    "article": a.get("article"),
                }
            )
        for rule in sp.get("row_rules") or []:
            row_rules.append(
                {
                    "source": source,
                    "when": condition_text(rule.get("condition")),
                    "reason": rule.get("reason"),
                    "article": rule.get("article"),
                }
            )
    order = {"dropped": 0, "pseudonymised": 1, "generalised": 2, "emptied": 3, "kept": 4}
    accounting = [
        {
            "source": s,
            **{k: a.get(k, 0) for k in ("input_rows", "kept", "excluded", "quarantined")},
            "reasons": ", ".join(
                f"{r} {n}"
                for r, n in sorted(
                    {
                        **(a.get("excluded_by_reason") or {}),
                        **(a.get("quarantined_by_reason") or {}),
                    }.items()
                )
            ),
        }
        for s, a in sorted(ev.accounting.items())
    ]
    backdated, built_day = _backdated(ev)
    has_intervals = any(p.get("kpi_intervals") for p in doc["personas"])
    toc = [
        ("request", "Request"),
        ("policy", "Policy decision"),
        ("accounting", "Row accounting"),
        ("columns", "Columns"),
        ("personas", "Personas"),
        *([("kyc", "KYC")] if ev.kyc else []),
        ("governance", "Governance"),
    ]
    return render_page(
        "version.html.j2",
        version_specs(ev, units),
        title=f"Persona version {ev.ref}",
        subtitle=f"Evidence pack for {ev.manifest['jurisdiction']} · {ev.manifest['purpose']}",
        toc=toc,
        ev=ev,
        m=ev.manifest,
        p=ev.predicate,
        params=_params(ev),
        backdated=backdated,
        built_day=built_day,
        decision_sentence=_decision_sentence(plan),
        obligations=plan.get("obligations") or [],
        regime=plan.get("regime") or "-",
        row_rules=row_rules,
        columns=columns,
        kept_count=len(treatments.get("kept as is", [])),
        treatments=sorted(treatments.items(), key=lambda t: (order.get(t[0].split()[0], 9), t[0])),
        suppressions=[
            {
                "table": s.get("table"),
                "cell": ", ".join(f"{k}={v}" for k, v in sorted((s.get("cell") or {}).items())),
                "reason": s.get("reason"),
            }
            for s in ev.suppressions
        ],
        accounting=accounting,
        pd=doc,
        personas=_personas(doc, kpi_names, units),
        kpi_names=[(k, unit_label(units[k])) for k in kpi_names],
        interval_note=(
            "Bars carry the 95% interval of each KPI's mean, as stored with the version "
            "(normal approximation: mean ± 1.96 s/√n over the persona's customers)."
            if has_intervals
            else "This version stores point values only, so the KPI bars carry no interval."
        ),
        diff=ev.diff,
        diff_rows=_diff_rows(ev.diff) if ev.diff else [],
        kyc=ev.kyc,
        gov=ev.governance,
    )
