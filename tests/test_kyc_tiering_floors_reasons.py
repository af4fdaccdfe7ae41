"""Tiers from points and thresholds, floors that weighting cannot lower, reasons for every
customer, review dates by tier (AMLR Art. 26(2))."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import polars as pl
import pytest

from engine.errors import PolicyError
from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.ruleset import TIER_RANK, KycRuleset
from engine.kyc.tiering import add_months
from engine.sample.kyc_facts import facts_from_rows, synthetic_facts

AS_OF = date(2026, 11, 23)


@pytest.fixture(scope="module")
def ruleset() -> KycRuleset:
    return evaluate_ruleset()


def _rows(
    ruleset: KycRuleset, rows: Mapping[str, Mapping[str, object]]
) -> dict[str, dict[str, Any]]:
    table = route_facts(facts_from_rows(rows), ruleset, None, AS_OF, 90).table
    return {r["customer_id"]: r for r in table.iter_rows(named=True)}


def test_low_risk_customer_is_sdd_with_a_reason(ruleset: KycRuleset) -> None:
    r = _rows(ruleset, {"k1": {}})["k1"]
    assert (r["score"], r["computed_tier"], r["tier"]) == (0, "SDD", "SDD")
    assert r["reasons"] == ["NO_RISK_FACTORS(+0)"]
    assert r["ruleset_version"] == ruleset.version


def test_points_add_up_to_threshold_tiers(ruleset: KycRuleset) -> None:
    out = _rows(
        ruleset,
        {
            # smb 10 + self-employed 5 = 15 -> CDD (threshold 15)
            "cdd": {"customer_type": "smb", "employment_type": "self_employed"},
            # smb 10 + sector 20 + cash 15 = 45 -> EDD by score alone
            "edd": {"customer_type": "smb", "business_sector": "gambling", "cash_share": 0.8},
            # 10 points only -> SDD
            "sdd": {"customer_type": "smb"},
        },
    )
    assert (out["cdd"]["score"], out["cdd"]["tier"]) == (15, "CDD")
    assert (out["edd"]["score"], out["edd"]["tier"]) == (45, "EDD")
    assert (out["sdd"]["score"], out["sdd"]["tier"]) == (10, "SDD")
    assert set(out["edd"]["reasons"]) == {
        "CUST_BUSINESS_CUSTOMER(+10)",
        "CUST_HIGH_RISK_SECTOR(+20)",
        "TXN_CASH_INTENSIVE(+15)",
    }


def test_pep_with_zero_points_is_still_edd_senior(ruleset: KycRuleset) -> None:
    r = _rows(ruleset, {"pep": {"pep": True}})["pep"]
    assert r["score"] == 0
    assert r["computed_tier"] == "EDD_SENIOR"
    assert "PEP(floor:EDD_SENIOR)" in r["reasons"]
    assert r["queue"] == "edd-senior-approval"


def test_sanctions_hit_is_prohibited_whatever_else(ruleset: KycRuleset) -> None:
    out = _rows(ruleset, {"s": {"sanctions_hit": True}, "sp": {"sanctions_hit": True, "pep": True}})
    for token in ("s", "sp"):
        assert out[token]["tier"] == "PROHIBITED"
        assert out[token]["queue"] == "sanctions-escalation"
        assert "SANCTIONS_HIT(floor:PROHIBITED)" in out[token]["reasons"]


def test_high_risk_third_country_and_adverse_media_floor_at_edd(ruleset: KycRuleset) -> None:
    out = _rows(ruleset, {"geo": {"country": "IR"}, "media": {"adverse_media": True}})
    assert out["geo"]["tier"] == "EDD"
    assert "HIGH_RISK_THIRD_COUNTRY(floor:EDD)" in out["geo"]["reasons"]
    assert out["media"]["tier"] == "EDD" and out["media"]["score"] == 0


def test_floor_never_lowers_a_higher_score_tier(ruleset: KycRuleset) -> None:
    # Score EDD (45) plus the unscreened floor (CDD): the higher of the two wins.
    r = _rows(
        ruleset,
        {
            "x": {
                "customer_type": "smb",
                "business_sector": "gambling",
                "cash_share": 0.8,
                "screened": False,
                "pep": None,
                "sanctions_hit": None,
                "adverse_media": None,
            }
        },
    )["x"]
    assert r["tier"] == "EDD"


def test_unscreened_customer_is_never_read_as_clear(ruleset: KycRuleset) -> None:
    r = _rows(
        ruleset,
        {"u": {"screened": False, "pep": None, "sanctions_hit": None, "adverse_media": None}},
    )["u"]
    assert r["tier"] == "CDD"  # not SDD: missing screening is not a clean result
    assert "SCREENING_MISSING(+15)" in r["reasons"]
    assert "SCREENING_MISSING(floor:CDD)" in r["reasons"]


def test_every_customer_has_reasons_and_tier_at_least_its_floors(ruleset: KycRuleset) -> None:
    facts = synthetic_facts(20_000, seed=3)
    t = route_facts(facts, ruleset, None, AS_OF, 90).table.join(
        facts.select("customer_id", "pep", "sanctions_hit", "country"), on="customer_id"
    )
    assert t.height == 20_000
    assert t.filter(pl.col("reasons").list.len() == 0).height == 0
    rank = pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8)
    assert t.filter(pl.col("sanctions_hit") & (pl.col("tier") != "PROHIBITED")).height == 0
    assert t.filter(pl.col("pep") & (rank < TIER_RANK["EDD_SENIOR"])).height == 0
    assert t.filter(pl.col("country").is_in(["IR", "NG", "VN"]) & (rank < 2)).height == 0
    # the synthetic population really exercises the floors
    assert t.filter(pl.col("pep")).height > 50


@pytest.mark.parametrize(
    ("changes", "tier", "months"),
    [
        ({}, "SDD", 60),
        ({"customer_type": "smb", "employment_type": "self_employed"}, "CDD", 36),
        ({"country": "IR"}, "EDD", 12),
        ({"pep": True}, "EDD_SENIOR", 12),
        ({"sanctions_hit": True}, "PROHIBITED", 12),
    ],
)
def test_review_due_by_tier(
    ruleset: KycRuleset, changes: dict[str, object], tier: str, months: int
) -> None:
    r = _rows(ruleset, {"c": changes})["c"]
    assert r["tier"] == tier
    assert r["review_due"] == add_months(AS_OF, months)


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2027, 12, 15), 12) == date(2028, 12, 15)
    assert add_months(date(2026, 11, 23), 60) == date(2031, 11, 23)


def test_condition_on_a_missing_fact_refuses(ruleset: KycRuleset) -> None:
    facts = facts_from_rows({"a": {}}).drop("cash_share")
    with pytest.raises(PolicyError):
        route_facts(facts, ruleset, None, AS_OF, 90)


def test_type_mismatch_in_a_rule_refuses(ruleset: KycRuleset) -> None:
    doc = ruleset.to_json()
    doc["factors"][0]["condition"] = {"field": "tenure_days", "op": "lt", "value": "ninety"}
    bad = KycRuleset.from_policy(doc)
    with pytest.raises(PolicyError):
        route_facts(facts_from_rows({"a": {}}), bad, None, AS_OF, 90)


def test_ruleset_too_large_for_the_pattern_key_refuses(ruleset: KycRuleset) -> None:
    doc = ruleset.to_json()
    base = doc["factors"][0]
    doc["factors"] = [{**base, "id": f"f{i}"} for i in range(40)]
    with pytest.raises(PolicyError):
        route_facts(facts_from_rows({"a": {}}), KycRuleset.from_policy(doc), None, AS_OF, 90)


def test_many_distinct_patterns_are_scored_like_one_at_a_time(ruleset: KycRuleset) -> None:
    facts = synthetic_facts(3_000, seed=9)
    whole = route_facts(facts, ruleset, None, AS_OF, 90).table
    for row in facts.head(25).iter_rows(named=True):
        alone = route_facts(
            facts.filter(pl.col("customer_id") == row["customer_id"]), ruleset, None, AS_OF, 90
        ).table
        joined = whole.filter(pl.col("customer_id") == row["customer_id"])
        assert alone.drop("queue", "sla_days", "sla_due").equals(
            joined.drop("queue", "sla_days", "sla_due")
        )
