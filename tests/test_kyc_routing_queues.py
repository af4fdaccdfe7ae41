"""Queue routing in rule order, SLA due dates, k-anonymous summaries, routing files, and the
facts frame built from governed frames (missing screening = unscreened, never clear)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.enforce import GovernedFrames
from engine.features import FeatureFrame, build_features
from engine.kyc import route, route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.facts import build_facts
from engine.kyc.io import load_routing, read_routing, write_routing
from engine.kyc.ruleset import KycRuleset
from engine.sample.declaration import sample_config
from engine.sample.kyc_facts import facts_from_rows, synthetic_facts
from engine.segment.model import Segmentation

AS_OF = date(2026, 11, 23)


@pytest.fixture(scope="module")
def ruleset() -> KycRuleset:
    return evaluate_ruleset()


def test_queue_rules_apply_in_order(ruleset: KycRuleset) -> None:
    t = route_facts(
        facts_from_rows(
            {
                "a-sanctioned-pep": {"sanctions_hit": True, "pep": True},
                "b-pep": {"pep": True},
                "c-edd": {"country": "IR"},
                "d-cdd": {"customer_type": "smb", "employment_type": "self_employed"},
                "e-sdd": {},
            }
        ),
        ruleset,
        None,
        AS_OF,
        90,
    ).table
    got = dict(zip(t["customer_id"], t["queue"], strict=True))
    assert got == {
        "a-sanctioned-pep": "sanctions-escalation",
        "b-pep": "edd-senior-approval",
        "c-edd": "edd-review",
        "d-cdd": "standard-review",
        "e-sdd": "expedited-onboarding",
    }
    sla = ruleset.queue_sla()
    for row in t.iter_rows(named=True):
        assert row["sla_days"] == sla[row["queue"]]
        assert row["sla_due"] == AS_OF + timedelta(days=sla[row["queue"]])


def test_reordering_rules_changes_the_outcome(ruleset: KycRuleset) -> None:
    doc = ruleset.to_json()
    doc["queues"] = [doc["queues"][1], doc["queues"][0], *doc["queues"][2:]]
    swapped = KycRuleset.from_policy(doc)
    t = route_facts(
        facts_from_rows({"x": {"sanctions_hit": True, "pep": True}}), swapped, None, AS_OF, 90
    ).table
    assert t["queue"].to_list() == ["edd-senior-approval"]


def test_unmatched_customer_goes_to_default_queue(ruleset: KycRuleset) -> None:
    doc = ruleset.to_json()
    doc["queues"] = [q for q in doc["queues"] if q["queue"] != "expedited-onboarding"]
    rs = KycRuleset.from_policy(doc)
    t = route_facts(facts_from_rows({"x": {}}), rs, None, AS_OF, 90).table
    assert t["queue"].to_list() == [rs.default_queue]


def test_summaries_count_every_customer_and_suppress_small_cells(ruleset: KycRuleset) -> None:
    routing = route_facts(synthetic_facts(5_000, seed=11), ruleset, None, AS_OF, 90)
    counts = routing.table.group_by("queue").len()
    for queue, n in counts.iter_rows():
        s = routing.summaries[queue]
        if n >= ruleset.min_cell_size:
            assert s["count"] == n
        else:
            assert s["count"] is None and s["suppressed"]
    for s in routing.summaries.values():
        for v in [*s["tiers"].values(), *s["reasons"].values()]:
            assert v is None or v >= ruleset.min_cell_size


def test_routing_files_round_trip_sorted_by_token(tmp_path: Path, ruleset: KycRuleset) -> None:
    facts = synthetic_facts(2_000, seed=5).sample(fraction=1.0, shuffle=True, seed=1)
    routing = route_facts(facts, ruleset, None, AS_OF, 90)
    paths = write_routing(routing, tmp_path)
    assert sorted(p.name for p in paths) == ["queues.json", "routing.parquet", "ruleset.json"]
    back = read_routing(tmp_path)
    assert back["customer_id"].is_sorted()
    assert back.equals(routing.table)
    queues = json.loads((tmp_path / "queues.json").read_text())
    assert queues["ruleset_version"] == ruleset.version
    loaded = load_routing(tmp_path)
    assert loaded.ruleset == ruleset
    # Same input, same bytes: the version digests are reproducible.
    other = tmp_path / "again"
    write_routing(route_facts(facts, ruleset, None, AS_OF, 90), other)
    for name in ("routing.parquet", "queues.json", "ruleset.json"):
        assert (other / name).read_bytes() == (tmp_path / name).read_bytes()


def _governed(screening: pl.DataFrame | None) -> GovernedFrames:
    crm = pl.DataFrame(
        {
            "customer_id": ["t1", "t2", "t3"],
            "jurisdiction": ["EU-DE"] * 3,
            "country": ["DE", "IR", "DE"],
            "customer_type": ["retail", "retail", "smb"],
            "employment_type": ["salaried", "salaried", "business_owner"],
            "business_sector": [None, None, "gambling"],
            "signup_date": [date(2020, 1, 1), date(2020, 1, 1), AS_OF - timedelta(days=10)],
        }
    )
    frames = {
        "crm": crm,
        "transactions": pl.DataFrame(
            {
                "customer_id": ["t1", "t1", "t3"],
                "ts": [datetime(2026, 10, 30), datetime(2026, 9, 1), datetime(2026, 10, 1)],
                "amount": [100.0, 300.0, 20_000.0],
                "direction": ["debit", "debit", "credit"],
                "channel": ["cash", "card", "cash"],
            }
        ),
        "wallets": pl.DataFrame({"customer_id": ["t3"], "trading_volume_90d": [250_000.0]}),
    }
    if screening is not None:
        frames["screening"] = screening
    return GovernedFrames(
        jurisdiction="EU-DE",
        purpose="kyc_aml",
        frames=frames,
        accounting={},
        plan_digest="0" * 64,
        subject_domain="kyc",
    )


def _features(governed: GovernedFrames) -> FeatureFrame:
    """The sample's declared features (KYC facts included) over these frames."""
    return build_features(governed, AS_OF, sample_config())


def _segmentation() -> Segmentation:
    a = pl.DataFrame(
        {
            "customer_id": ["t1", "t2", "t3"],
            "persona_id": [0, 0, 1],
            "persona_name": ["steady", "steady", "cash-flow-volatile microbusiness"],
        }
    )
    return Segmentation(strategy="rules", params={}, assignments=a, personas=[], gates=[])


def test_facts_from_governed_frames() -> None:
    screening = pl.DataFrame(
        {
            "customer_id": ["t1", "t3"],
            "pep": [False, True],
            "sanctions_hit": [False, False],
            "adverse_media": [False, None],
        }
    )
    g = _governed(screening)
    f = build_facts(_features(g), g, _segmentation(), AS_OF)
    rows = {r["customer_id"]: r for r in f.iter_rows(named=True)}
    assert f["customer_id"].to_list() == ["t1", "t2", "t3"]
    assert rows["t1"]["screened"] is True and rows["t1"]["pep"] is False
    # t2 has no screening row: unscreened, flags unknown (null), never False.
    assert rows["t2"]["screened"] is False and rows["t2"]["pep"] is None
    assert rows["t3"]["adverse_media"] is None  # null stays unknown
    assert rows["t1"]["cash_share"] == pytest.approx(0.25)
    assert rows["t2"]["txn_total_amount"] == 0.0 and rows["t2"]["has_crypto_wallet"] is False
    assert rows["t3"]["wallet_volume_90d"] == 250_000.0 and rows["t3"]["max_txn_amount"] == 20_000.0
    assert rows["t3"]["tenure_days"] == 10
    assert (
        rows["t1"]["recency_days"] == 24.0
    )  # feature columns joined (last txn 30 Oct, as of 23 Nov)
    assert rows["t3"]["persona_name"] == "cash-flow-volatile microbusiness"


def test_route_end_to_end_from_governed_frames(ruleset: KycRuleset) -> None:
    screening = pl.DataFrame(
        {
            "customer_id": ["t1", "t3"],
            "pep": [False, True],
            "sanctions_hit": [False, False],
            "adverse_media": [False, False],
        }
    )
    g = _governed(screening)
    routing = route(_features(g), g, _segmentation(), ruleset, None, AS_OF, 90)
    got = {r["customer_id"]: r for r in routing.table.iter_rows(named=True)}
    assert got["t1"]["tier"] == "SDD"
    assert got["t2"]["tier"] == "EDD"  # high-risk country floor, plus unscreened
    assert "SCREENING_MISSING(floor:CDD)" in got["t2"]["reasons"]
    assert got["t3"]["tier"] == "EDD_SENIOR"
    assert "PERSONA_HIGH_RISK(+10)" in got["t3"]["reasons"]


def test_no_screening_source_means_everyone_unscreened(ruleset: KycRuleset) -> None:
    g = _governed(None)
    routing = route(_features(g), g, _segmentation(), ruleset, None, AS_OF, 90)
    assert routing.table.filter(pl.col("tier") == "SDD").height == 0
    assert all("SCREENING_MISSING" in codes for codes in routing.table["reason_codes"])
