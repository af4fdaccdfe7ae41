"""Every row rule, on sample rows: the clean customer is kept, the triggering one is
excluded under the right reason code; purposes under legal obligation keep them."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import AS_OF, HmacPseudonymiser, customer, kept_ids, make_ws, request
from test_policy_support import source_frames as frames

from engine.enforce import enforce
from engine.policy import decide
from engine.workspace import Workspace

MKT, CREDIT, KYC = "marketing_segmentation", "credit_risk_segmentation", "kyc_aml"
ANALYST = {
    "EU-DE": "analyst-eu",
    "EU-FR": "analyst-eu",
    "UK": "analyst-uk",
    "US-CA": "analyst-us",
    "US-NY": "analyst-us",
    "SG": "analyst-sg",
    "BR": "analyst-br",
}


def dob_for_age(years: int) -> date:
    return date(AS_OF.year - years, AS_OF.month, AS_OF.day)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("rules"))


def run(
    ws: Workspace,
    jurisdiction: str,
    purpose: str,
    subject: dict[str, Any],
    requests: list[str] = (),  # type: ignore[assignment]
    actor: str | None = None,
) -> tuple[set[str], dict[str, int]]:
    actor = actor or (ANALYST[jurisdiction] if purpose != KYC else "compliance-lead")
    plan = decide(ws, request(actor, jurisdiction, purpose))
    country = {"UK": "GB", "US-CA": "US", "US-NY": "US"}.get(jurisdiction, jurisdiction[-2:])
    crm = [
        customer("C0", jurisdiction, country=country),
        customer("C1", jurisdiction, **{"country": country, **subject}),
    ]
    pr = [
        {
            "request_id": f"R{i}",
            "customer_id": "C1",
            "jurisdiction": jurisdiction,
            "request_type": kind,
            "requested_at": date(2026, 1, 1),
        }
        for i, kind in enumerate(requests)
    ]
    governed = enforce(
        frames(ws, jurisdiction, {"crm": crm, "privacy_requests": pr}),
        plan,
        HmacPseudonymiser(),
        AS_OF,
    )
    return kept_ids(plan, governed.frames["crm"], ["C0", "C1"]), governed.accounting[
        "crm"
    ].excluded_by_reason


CASES: list[tuple[str, str, dict[str, Any], list[str], str | None]] = [
    # GDPR Art. 6(1)(a),(f): consent or legitimate interest, else excluded
    ("EU-DE", MKT, {"lawful_basis_marketing": "none"}, [], "gdpr.no_lawful_basis"),
    ("EU-DE", MKT, {"lawful_basis_marketing": None}, [], "gdpr.no_lawful_basis"),
    ("EU-DE", MKT, {"marketing_consent": False}, [], "gdpr.no_lawful_basis"),
    ("EU-DE", MKT, {"marketing_consent": None}, [], "gdpr.no_lawful_basis"),
    (
        "EU-DE",
        MKT,
        {"lawful_basis_marketing": "legitimate_interest", "marketing_consent": None},
        [],
        None,
    ),
    # Art. 21(2)-(3) objection, also as a privacy request
    (
        "EU-DE",
        MKT,
        {"lawful_basis_marketing": "legitimate_interest", "objection_direct_marketing": True},
        [],
        "gdpr.objection",
    ),
    ("EU-FR", MKT, {}, ["opt_out"], "gdpr.objection"),
    # Art. 7(3)
    ("EU-DE", MKT, {"consent_withdrawn": True}, [], "gdpr.consent_withdrawn"),
    # Art. 8(1): DE 16, FR 15
    ("EU-DE", MKT, {"date_of_birth": dob_for_age(15)}, [], "gdpr.child"),
    ("EU-FR", MKT, {"date_of_birth": dob_for_age(15)}, [], None),
    ("EU-FR", MKT, {"date_of_birth": dob_for_age(14)}, [], "gdpr.child"),
    # Art. 17(1)
    ("EU-DE", MKT, {}, ["erasure"], "erasure.requested"),
    ("EU-DE", CREDIT, {}, ["erasure"], "erasure.requested"),
    # Art. 5(1)(e): marketing keeps 730 days
    ("EU-DE", MKT, {"last_activity_date": date(2024, 11, 22)}, [], "retention.expired"),
    ("EU-DE", MKT, {"last_activity_date": date(2024, 11, 23)}, [], None),
    # UK: 13
    ("UK", MKT, {"date_of_birth": dob_for_age(13)}, [], None),
    ("UK", MKT, {"date_of_birth": dob_for_age(12)}, [], "uk_gdpr.child"),
    ("UK", MKT, {"objection_direct_marketing": True}, [], "uk_gdpr.objection"),
    # LGPD
    ("BR", MKT, {"objection_direct_marketing": True}, [], "lgpd.objection"),
    ("BR", MKT, {"consent_withdrawn": True}, [], "lgpd.consent_withdrawn"),
    ("BR", MKT, {"lawful_basis_marketing": "none"}, [], "lgpd.no_lawful_basis"),
    # CCPA
    ("US-CA", MKT, {"ccpa_do_not_sell_share": True}, [], "ccpa.opt_out_sale_share"),
    ("US-CA", MKT, {}, ["opt_out"], "ccpa.opt_out_sale_share"),
    ("US-CA", MKT, {"gpc_signal": True}, [], "ccpa.gpc_signal"),
    (
        "US-CA",
        MKT,
        {"date_of_birth": dob_for_age(15), "marketing_consent": False},
        [],
        "ccpa.minor_no_opt_in",
    ),
    ("US-CA", MKT, {"date_of_birth": dob_for_age(15), "marketing_consent": True}, [], None),
    ("US-CA", MKT, {}, ["deletion"], "erasure.requested"),
    # US-NY baseline
    ("US-NY", MKT, {"gpc_signal": True}, [], "us_baseline.opt_out"),
    ("US-NY", MKT, {"date_of_birth": dob_for_age(12)}, [], "us_baseline.child"),
    ("US-NY", MKT, {"lawful_basis_marketing": "none", "marketing_consent": False}, [], None),
    # PDPA
    (
        "SG",
        MKT,
        {"marketing_consent": False, "lawful_basis_marketing": "legitimate_interest"},
        [],
        "pdpa.no_consent",
    ),
    ("SG", MKT, {"consent_withdrawn": True}, [], "pdpa.consent_withdrawn"),
    # KYC/AML: legal obligation, opt-outs and erasure do not exclude...
    (
        "EU-DE",
        KYC,
        {"objection_direct_marketing": True, "lawful_basis_marketing": "none"},
        ["erasure", "opt_out"],
        None,
    ),
    ("US-CA", KYC, {"ccpa_do_not_sell_share": True, "gpc_signal": True}, ["deletion"], None),
    ("EU-DE", KYC, {"date_of_birth": dob_for_age(15)}, [], None),
    # ...but retention still applies (5 years)
    ("EU-DE", KYC, {"last_activity_date": date(2021, 11, 1)}, [], "retention.expired"),
    # credit risk is not direct marketing: an objection to marketing does not exclude
    ("EU-DE", CREDIT, {"objection_direct_marketing": True, "marketing_consent": False}, [], None),
]


@pytest.mark.parametrize(("jurisdiction", "purpose", "subject", "requests", "reason"), CASES)
def test_rule_keeps_or_excludes_with_reason(
    ws: Workspace,
    jurisdiction: str,
    purpose: str,
    subject: dict[str, Any],
    requests: list[str],
    reason: str | None,
) -> None:
    kept, by_reason = run(ws, jurisdiction, purpose, subject, requests)
    assert "C0" in kept, "the clean customer must always be kept"
    if reason is None:
        assert kept == {"C0", "C1"}
        assert by_reason == {}
    else:
        assert kept == {"C0"}
        assert by_reason.get(reason) == 1, by_reason


def test_request_filed_after_as_of_does_not_count(ws: Workspace, tmp_path: Path) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    crm = [customer("C0"), customer("C1")]
    pr = [
        {
            "request_id": "R1",
            "customer_id": "C1",
            "jurisdiction": "EU-DE",
            "request_type": "erasure",
            "requested_at": date(2026, 12, 1),
        }
    ]
    governed = enforce(
        frames(ws, "EU-DE", {"crm": crm, "privacy_requests": pr}), plan, HmacPseudonymiser(), AS_OF
    )
    assert kept_ids(plan, governed.frames["crm"], ["C0", "C1"]) == {"C0", "C1"}
