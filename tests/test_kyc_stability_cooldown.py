"""Stability against the previous version: upgrades at once, downgrades wait the cooldown,
factor changes trigger an out-of-cycle review (AMLR Art. 26(2))."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest

from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.ruleset import KycRuleset
from engine.sample.kyc_facts import facts_from_rows

D0 = date(2026, 1, 1)
COOLDOWN = 90
EDD_FACTS = {"country": "IR"}
CDD_FACTS = {"customer_type": "smb", "employment_type": "self_employed"}


@pytest.fixture(scope="module")
def ruleset() -> KycRuleset:
    return evaluate_ruleset()


def _run(
    ruleset: KycRuleset,
    facts_by_token: Mapping[str, Mapping[str, object]],
    previous: pl.DataFrame | None,
    as_of: date,
) -> pl.DataFrame:
    return route_facts(facts_from_rows(facts_by_token), ruleset, previous, as_of, COOLDOWN).table


def _row(table: pl.DataFrame, token: str = "c") -> dict[str, Any]:
    return next(r for r in table.iter_rows(named=True) if r["customer_id"] == token)


def test_first_version_is_new(ruleset: KycRuleset) -> None:
    r = _row(_run(ruleset, {"c": {}}, None, D0))
    assert r["tier_change"] == "new"
    assert r["out_of_cycle_review"] is False


def test_upgrade_applies_at_once(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": {}}, None, D0)
    r = _row(_run(ruleset, {"c": EDD_FACTS}, v1, D0 + timedelta(days=1)))
    assert (r["tier"], r["tier_change"]) == ("EDD", "upgrade")
    assert "TIER_UPGRADE(from SDD)" in r["reasons"]
    assert r["out_of_cycle_review"] is True


def test_downgrade_waits_for_the_cooldown_then_applies(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": EDD_FACTS}, None, D0)
    # Risk falls 10 days later: computed CDD, but the customer stays EDD for now.
    d1 = D0 + timedelta(days=10)
    v2 = _run(ruleset, {"c": CDD_FACTS}, v1, d1)
    r2 = _row(v2)
    assert (r2["computed_tier"], r2["system_tier"], r2["tier"]) == ("CDD", "EDD", "EDD")
    assert r2["tier_change"] == "downgrade_deferred"
    assert r2["downgrade_pending_since"] == d1
    assert r2["review_due"] == date(2027, 1, 11)  # reviews follow the tier actually held
    assert any(
        x.startswith("DOWNGRADE_DEFERRED(computed CDD, until 2026-04-11") for x in r2["reasons"]
    )
    # Still inside the cooldown: still deferred, and the clock did not restart.
    v3 = _run(ruleset, {"c": CDD_FACTS}, v2, d1 + timedelta(days=COOLDOWN - 1))
    r3 = _row(v3)
    assert r3["tier"] == "EDD" and r3["downgrade_pending_since"] == d1
    # Cooldown elapsed since the downgrade was first computed: applied.
    v4 = _run(ruleset, {"c": CDD_FACTS}, v3, d1 + timedelta(days=COOLDOWN))
    r4 = _row(v4)
    assert (r4["tier"], r4["tier_change"]) == ("CDD", "downgrade")
    assert r4["downgrade_pending_since"] is None
    assert "DOWNGRADE_APPLIED(from EDD)" in r4["reasons"]


def test_risk_returning_during_cooldown_resets_the_clock(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": EDD_FACTS}, None, D0)
    v2 = _run(ruleset, {"c": {}}, v1, D0 + timedelta(days=10))
    v3 = _run(ruleset, {"c": EDD_FACTS}, v2, D0 + timedelta(days=20))
    r3 = _row(v3)
    assert (r3["tier"], r3["tier_change"], r3["downgrade_pending_since"]) == ("EDD", "same", None)
    v4 = _run(ruleset, {"c": {}}, v3, D0 + timedelta(days=200))
    assert _row(v4)["tier_change"] == "downgrade_deferred"


def test_zero_cooldown_downgrades_at_once(ruleset: KycRuleset) -> None:
    v1 = route_facts(facts_from_rows({"c": EDD_FACTS}), ruleset, None, D0, 0).table
    v2 = route_facts(facts_from_rows({"c": {}}), ruleset, v1, D0, 0).table
    assert (_row(v2)["tier"], _row(v2)["tier_change"]) == ("SDD", "downgrade")


def test_factor_change_within_the_same_tier_is_an_out_of_cycle_review(ruleset: KycRuleset) -> None:
    v1 = _run(
        ruleset, {"c": {"customer_type": "smb", "employment_type": "self_employed"}}, None, D0
    )
    # Same score band (CDD), different factors: smb+sector(30) vs smb+self-employed(15).
    v2 = _run(ruleset, {"c": {"customer_type": "smb", "business_sector": "gambling"}}, v1, D0)
    r = _row(v2)
    assert (r["tier"], r["tier_change"], r["out_of_cycle_review"]) == ("CDD", "same", True)
    assert "OUT_OF_CYCLE_REVIEW(factors changed)" in r["reasons"]
    # No change: no trigger.
    v3 = _run(ruleset, {"c": {"customer_type": "smb", "business_sector": "gambling"}}, v2, D0)
    assert _row(v3)["out_of_cycle_review"] is False


def test_sdd_out_of_cycle_goes_to_standard_review(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": {}}, None, D0)
    v2 = _run(ruleset, {"c": {"customer_type": "smb"}}, v1, D0)  # 10 points: still SDD
    r = _row(v2)
    assert (r["tier"], r["out_of_cycle_review"], r["queue"]) == ("SDD", True, "standard-review")


def test_previous_without_new_columns_is_tolerated(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": EDD_FACTS}, None, D0).select("customer_id", "tier")
    r = _row(_run(ruleset, {"c": {}}, v1, D0))
    assert r["tier_change"] == "downgrade_deferred" and r["out_of_cycle_review"] is False


def test_unchanged_customers_keep_their_review_date_across_refreshes(ruleset: KycRuleset) -> None:
    v1 = _run(ruleset, {"c": CDD_FACTS, "up": {}}, None, D0)
    first = _row(v1)["review_due"]
    assert first == date(2029, 1, 1)  # CDD: 36 months
    # Refreshed monthly for a year with nothing changed: the review is not pushed back.
    v = v1
    for month in range(1, 13):
        v = _run(ruleset, {"c": CDD_FACTS, "up": {}}, v, D0 + timedelta(days=30 * month))
        assert _row(v)["review_due"] == first
    # An upgrade brings the review forward to the shorter cycle (EDD: 12 months)...
    later = D0 + timedelta(days=400)
    r = _row(_run(ruleset, {"c": CDD_FACTS, "up": EDD_FACTS}, v, later), "up")
    assert r["tier_change"] == "upgrade" and r["review_due"] == date(2028, 2, 5)
    assert r["review_due"] < _row(v, "up")["review_due"]
    # ...and a factor change (a trigger event) starts a new cycle from the refresh date.
    changed = {"customer_type": "smb", "has_crypto_wallet": True}  # still CDD, new factors
    r2 = _row(_run(ruleset, {"c": changed, "up": {}}, v, later))
    assert (r2["tier"], r2["tier_change"], r2["out_of_cycle_review"]) == ("CDD", "same", True)
    assert r2["review_due"] == date(2030, 2, 5)
