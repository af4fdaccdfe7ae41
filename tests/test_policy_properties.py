"""Properties over arbitrary source declarations, purposes and jurisdictions:
no special-category column survives; screening never reaches a marketing or credit frame;
no direct identifier survives in clear; every declared column gets an action."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_policy_support import BUNDLE, HmacPseudonymiser, customer, make_ws, request
from test_policy_support import source_frames as frames

from engine.config import PrivacyRole
from engine.enforce import enforce
from engine.policy import EmbeddedEngine, decide, load_bundle
from engine.policy.decide import DECISION_PATH

ENGINE = EmbeddedEngine(load_bundle(BUNDLE))
CLASSES = [
    "direct_identifier",
    "quasi_identifier",
    "special_category",
    "sensitive_pi",
    "financial",
    "behavioural",
    "screening",
    "consent",
    "outcome",
    "technical",
]
JURISDICTIONS = {
    "EU-DE": "EU",
    "EU-FR": "EU",
    "EU-ES": "EU",
    "EU-IT": "EU",
    "EU-NL": "EU",
    "UK": "UK",
    "US-CA": "US",
    "US-NY": "US",
    "SG": "SG",
    "BR": "BR",
}
PURPOSES = ["marketing_segmentation", "credit_risk_segmentation", "kyc_aml"]

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "customer_id")
columns = st.dictionaries(names, st.sampled_from(CLASSES), min_size=1, max_size=10)
sources = st.dictionaries(
    st.sampled_from(["crm", "bureau", "loans", "screening", "extra"]),
    columns,
    min_size=1,
    max_size=4,
).map(lambda d: {"crm": {}, **d})


def _input(srcs: dict[str, dict[str, str]], jurisdiction: str, purpose: str) -> dict[str, Any]:
    return {
        "actor": {
            "id": "p",
            "roles": ["regional_analyst"],
            "home_region": JURISDICTIONS[jurisdiction],
            "jurisdictions": [jurisdiction],
        },
        "purpose": purpose,
        "jurisdiction": jurisdiction,
        "as_of": "2026-11-23",
        "sources": {
            n: {
                "columns": {"customer_id": "direct_identifier", **cols},
                "subject_column": "customer_id",
                "record_date_column": None,
                "record_date_type": None,
            }
            for n, cols in srcs.items()
        },
        "subjects": sorted(srcs)[0],
        # Every role the bundle reads, so no rule denies for a missing one.
        "roles": {r.value: f"col_{r.value}" for r in PrivacyRole},
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    srcs=sources,
    jurisdiction=st.sampled_from(sorted(JURISDICTIONS)),
    purpose=st.sampled_from(PURPOSES),
)
def test_no_special_category_or_stray_screening_survives(
    srcs: dict[str, dict[str, str]], jurisdiction: str, purpose: str
) -> None:
    inp = _input(srcs, jurisdiction, purpose)
    doc = ENGINE.query(DECISION_PATH, inp)
    assert doc["allow"] is True, doc["deny"]
    for name, src in inp["sources"].items():
        planned = doc["sources"][name]["columns"]
        assert set(planned) == set(src["columns"])  # every declared column has an action
        for col, cls in src["columns"].items():
            action = planned[col]["action"]
            if cls == "special_category":
                assert action == "drop"
            if cls == "screening" and purpose != "kyc_aml":
                assert action == "drop"
            if cls == "direct_identifier":
                assert action in ("drop", "pseudonymise")
                if col == "customer_id":
                    assert planned[col]["domain"] == (
                        "kyc" if purpose == "kyc_aml" else "marketing"
                    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    jurisdiction=st.sampled_from(["EU-DE", "UK", "US-CA", "US-NY", "SG", "BR"]),
    purpose=st.sampled_from(["marketing_segmentation", "credit_risk_segmentation"]),
    pep=st.booleans(),
    religion=st.sampled_from(["a", "b", None]),
)
def test_governed_frames_hold_no_screening_or_special_category_values(
    tmp_path_factory: Any, jurisdiction: str, purpose: str, pep: bool, religion: str | None
) -> None:
    ws = make_ws(tmp_path_factory.mktemp("prop"))
    actor = {
        "EU-DE": "analyst-eu",
        "UK": "analyst-uk",
        "US-CA": "analyst-us",
        "US-NY": "analyst-us",
        "SG": "analyst-sg",
        "BR": "analyst-br",
    }[jurisdiction]
    plan = decide(ws, request(actor, jurisdiction, purpose))
    screening = [
        {
            "customer_id": "C0",
            "jurisdiction": jurisdiction,
            "pep": pep,
            "sanctions_hit": pep,
            "adverse_media": pep,
            "screened_at": date(2026, 1, 1),
        }
    ]
    crm = [customer("C0", jurisdiction, religion=religion, health_note=religion)]
    g = enforce(
        frames(ws, jurisdiction, {"crm": crm, "screening": screening}),
        plan,
        HmacPseudonymiser(),
        date(2026, 11, 23),
    )
    for name, frame in g.frames.items():
        spec = ws.source(name)
        for col in frame.columns:
            cls = spec.columns[col].classification.value if col in spec.columns else None
            assert cls not in ("special_category", "screening"), f"{name}.{col}"
    assert g.frames["screening"].columns == ["customer_id", "jurisdiction"]
    assert all(isinstance(f, pl.DataFrame) for f in g.frames.values())
