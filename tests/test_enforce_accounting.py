"""Row accounting and column actions: propagation to child sources, per-reason and distinct
counts, quarantine in the balance, tokens that join, nulling, refusals."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl
import pytest
from test_policy_support import AS_OF, HmacPseudonymiser, customer, kept_ids, make_ws, request
from test_policy_support import source_frames as frames

from engine.conditions import Condition
from engine.enforce import enforce
from engine.errors import PolicyDenied, PolicyError
from engine.policy import decide
from engine.policy.plan import RowRule
from engine.workspace import Workspace

MKT, KYC = "marketing_segmentation", "kyc_aml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("acc"))


def txn(tid: str, cid: str, ts: datetime, jurisdiction: str = "EU-DE") -> dict[str, Any]:
    return {
        "txn_id": tid,
        "customer_id": cid,
        "jurisdiction": jurisdiction,
        "ts": ts,
        "amount": 10.0,
        "direction": "debit",
        "channel": "card",
    }


def scenario(ws: Workspace) -> tuple[Any, Any]:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    crm = [
        customer("C0"),
        # excluded twice: objection and withdrawn consent, plus stale
        customer(
            "C1",
            objection_direct_marketing=True,
            consent_withdrawn=True,
            last_activity_date=date(2020, 1, 1),
        ),
        customer("C2"),
    ]
    recent, old = datetime(2026, 11, 1, 12), datetime(2023, 1, 1, 12)
    transactions = [
        txn("T1", "C0", recent),
        txn("T2", "C0", old),  # retention.expired
        txn("T3", "C1", recent),  # subject_excluded
        txn("T4", "C1", old),  # subject_excluded and retention.expired
        txn("T5", "CX", recent),  # subject not in crm (e.g. quarantined there)
        txn("T6", "C2", recent, jurisdiction="EU-FR"),  # must never appear in an EU-DE run
    ]
    sf = frames(ws, "EU-DE", {"crm": crm, "transactions": transactions}, quarantined={"crm": 2})
    return plan, enforce(sf, plan, HmacPseudonymiser(), AS_OF)


def test_crm_counts_each_reason_and_each_row_once(ws: Workspace) -> None:
    _, g = scenario(ws)
    acc = g.accounting["crm"]
    assert acc.excluded_by_reason == {
        "gdpr.objection": 1,
        "gdpr.consent_withdrawn": 1,
        "retention.expired": 1,
    }
    assert (acc.input_rows, acc.kept, acc.excluded, acc.quarantined) == (5, 2, 1, 2)
    assert acc.balanced()


def test_child_rows_follow_their_subject(ws: Workspace) -> None:
    _, g = scenario(ws)
    acc = g.accounting["transactions"]
    assert acc.excluded_by_reason == {
        "subject_excluded": 2,
        "retention.expired": 2,
        "subject_unknown": 1,
        "jurisdiction_mismatch": 1,
    }
    assert (acc.input_rows, acc.kept, acc.excluded) == (6, 1, 5)
    assert acc.balanced()
    assert g.frames["transactions"]["txn_id"].to_list() == ["T1"]


def test_every_source_balances(ws: Workspace) -> None:
    _, g = scenario(ws)
    assert set(g.accounting) == set(ws.config.sources)
    assert all(a.balanced() for a in g.accounting.values())


def test_tokens_join_across_sources_and_no_raw_identifiers_remain(ws: Workspace) -> None:
    plan, g = scenario(ws)
    crm, tx = g.frames["crm"], g.frames["transactions"]
    assert tx["customer_id"].is_in(crm["customer_id"].implode()).all()
    everything = (
        pl.concat(
            [f.select(pl.all().cast(pl.String)).unpivot() for f in g.frames.values() if f.width],
            how="vertical",
        )["value"]
        .drop_nulls()
        .to_list()
    )
    for raw in ("C0", "C2", "C0@example.test", "Name C0", "+4930123456", "1980-05-17"):
        assert raw not in everything
    assert g.subject_domain == "marketing" and g.plan_digest == plan.digest()


def test_columns_dropped_generalised_and_named(ws: Workspace) -> None:
    _, g = scenario(ws)
    cols = g.frames["crm"].columns
    for gone in (
        "email",
        "phone",
        "full_name",
        "national_id",
        "address",
        "religion",
        "health_note",
        "marketing_consent",
        "date_of_birth",
        "postcode",
        "annual_income",
    ):
        assert gone not in cols
    for present in ("customer_id", "age_band", "postcode_district", "income_band", "country"):
        assert present in cols
    assert g.frames["crm"]["age_band"].to_list() == ["45-54", "45-54"]
    assert g.frames["crm"]["postcode_district"].to_list() == ["10", "10"]  # DE: Leitregion
    assert g.column_actions["crm.religion"]["reason"] == "special_category"
    assert g.column_actions["crm.date_of_birth"]["output"] == "age_band"


def test_kyc_uses_kyc_domain_and_keeps_screening(ws: Workspace) -> None:
    plan = decide(ws, request("compliance-lead", "EU-DE", KYC))
    screening = [
        {
            "customer_id": "C0",
            "jurisdiction": "EU-DE",
            "pep": True,
            "sanctions_hit": False,
            "adverse_media": None,
            "screened_at": date(2026, 1, 1),
        }
    ]
    g = enforce(
        frames(ws, "EU-DE", {"crm": [customer("C0")], "screening": screening}),
        plan,
        HmacPseudonymiser(),
        AS_OF,
    )
    assert g.subject_domain == "kyc"
    assert g.frames["crm"]["customer_id"][0].startswith("k1.")
    assert g.frames["screening"]["pep"].to_list() == [True]
    assert g.frames["crm"]["email"][0].startswith("k1.")  # re-identifiable by KYC ops only
    assert "religion" not in g.frames["crm"].columns


def test_screening_never_reaches_marketing(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    screening = [
        {
            "customer_id": "C0",
            "jurisdiction": "EU-DE",
            "pep": True,
            "sanctions_hit": True,
            "adverse_media": True,
            "screened_at": date(2026, 1, 1),
        }
    ]
    g = enforce(
        frames(ws, "EU-DE", {"crm": [customer("C0")], "screening": screening}),
        plan,
        HmacPseudonymiser(),
        AS_OF,
    )
    assert g.frames["screening"].columns == ["customer_id", "jurisdiction"]


def test_ccpa_limit_sensitive_pi_nulls_only_that_customer(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-us", "US-CA", MKT))
    crm = [
        customer("C0", "US-CA", country="US"),
        customer("C1", "US-CA", country="US", limit_sensitive_pi=True),
    ]
    g = enforce(frames(ws, "US-CA", {"crm": crm}), plan, HmacPseudonymiser(), AS_OF)
    assert kept_ids(plan, g.frames["crm"], ["C0", "C1"]) == {"C0", "C1"}
    assert g.frames["crm"]["precise_geolocation"].null_count() == 1


def test_pdpa_marketing_carries_phone_suppression(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-sg", "SG", MKT))
    assert "suppress_channel:phone" in plan.obligations
    g = enforce(
        frames(ws, "SG", {"crm": [customer("C0", "SG", country="SG", do_not_call=True)]}),
        plan,
        HmacPseudonymiser(),
        AS_OF,
    )
    assert "phone" not in g.frames["crm"].columns


def test_denied_plan_is_refused(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    denied = plan.model_copy(update={"allowed": False, "deny_reasons": ["x"]})
    with pytest.raises(PolicyDenied):
        enforce(frames(ws, "EU-DE", {}), denied, HmacPseudonymiser(), AS_OF)


def test_unknown_field_in_a_rule_is_an_error_not_a_pass(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    bad = RowRule(
        reason="x",
        condition=Condition.model_validate({"field": "no_such_fact", "op": "eq", "value": True}),
    )
    tampered = plan.model_copy(update={"subject_exclusions": [*plan.subject_exclusions, bad]})
    with pytest.raises(PolicyError) as err:
        enforce(
            frames(ws, "EU-DE", {"crm": [customer("C0")]}), tampered, HmacPseudonymiser(), AS_OF
        )
    assert "policy.unknown_field" in err.value.reasons


def test_sources_of_another_jurisdiction_are_refused(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    with pytest.raises(PolicyError) as err:
        enforce(frames(ws, "EU-FR", {}), plan, HmacPseudonymiser(), AS_OF)
    assert err.value.reasons == ["enforce.jurisdiction_mismatch"]


def test_missing_date_of_birth_counts_as_under_age(ws: Workspace) -> None:
    plan = decide(ws, request("analyst-eu", "EU-DE", MKT))
    crm = [customer("C0"), customer("C1", date_of_birth=None)]
    g = enforce(frames(ws, "EU-DE", {"crm": crm}), plan, HmacPseudonymiser(), AS_OF)
    assert g.accounting["crm"].excluded_by_reason == {"gdpr.child": 1}


def test_releasing_sources_gives_the_same_result_and_empties_them(ws: Workspace) -> None:
    """With `release`, enforce copies kept rows column by column and drops each raw column
    as it goes: the governed frames, accounting and lineage are those of a run that keeps
    the sources, and afterwards the sources hold no rows (metadata kept)."""
    plan = decide(ws, request("compliance-lead", "EU-DE", KYC))
    recent, old = datetime(2026, 11, 1, 12), datetime(2023, 1, 1, 12)
    rows = {
        "crm": [customer("C0"), customer("C1", consent_withdrawn=True), customer("C2")],
        "transactions": [
            txn("T1", "C2", recent),
            txn("T2", "C0", old),
            txn("T3", "C0", recent),
            txn("T4", "CX", recent),
            txn("T5", "C2", recent),
        ],
    }
    kept = enforce(frames(ws, "EU-DE", rows), plan, HmacPseudonymiser(), AS_OF)
    sources = frames(ws, "EU-DE", rows)
    released = enforce(sources, plan, HmacPseudonymiser(), AS_OF, release=True)
    for name, frame in kept.frames.items():
        assert released.frames[name].equals(frame), name
    assert released.accounting == kept.accounting
    assert released.column_actions == kept.column_actions
    assert all(f.frame.height == 0 for f in sources.frames.values())
    assert sources.frames["transactions"].accounting.valid_rows == 5


def test_distinct_published_subject_tokens_are_those_the_frames_carry(ws: Workspace) -> None:
    """The vault files exactly the kyc subject tokens a version publishes: enforce hands
    them over distinct (subjects with a kept row in any source), not read back per row."""
    plan = decide(ws, request("compliance-lead", "EU-DE", KYC))
    recent = datetime(2026, 11, 1, 12)
    crm = [customer("C0"), customer("C1"), customer("C2"), customer("C3")]
    # C2 and C3 have no transactions: their crm rows still publish their tokens.
    transactions = [txn("T1", "C1", recent), txn("T2", "C1", recent), txn("T3", "C0", recent)]
    g = enforce(
        frames(ws, "EU-DE", {"crm": crm, "transactions": transactions}),
        plan,
        HmacPseudonymiser(),
        AS_OF,
    )
    carried = pl.concat([f["customer_id"] for f in g.frames.values()]).unique()
    assert {"crm", "transactions"} <= g.subject_token_sources
    assert sorted(g.subject_tokens["customer_id"].to_list()) == sorted(carried.to_list())
    assert g.subject_tokens["customer_id"].len() == 4
