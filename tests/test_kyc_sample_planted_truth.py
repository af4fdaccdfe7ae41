"""On the sample generator's planted truth: customers planted as PEP are never below
EDD_SENIOR and sanctioned ones are always PROHIBITED; with planted dirt (null flags), no
planted PEP or sanctioned customer is ever read as low risk (SDD).

The sample's raw customer ids stand in for kyc tokens here (the data is synthetic); the
frames go through the real facts builder, ruleset and tiering.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.enforce import GovernedFrames
from engine.features import build_features
from engine.kyc import route
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.ruleset import TIER_RANK
from engine.sample.declaration import sample_config
from engine.segment.model import Segmentation

generate_module = pytest.importorskip("engine.sample.generate")
AS_OF = date(2026, 11, 1)


def _tiers(out: Path, dirt_rate: float) -> pl.DataFrame:
    generate_module.generate(3000, 11, out, dirt_rate=dirt_rate, as_of=AS_OF)
    frames = {
        name: pl.read_parquet(out / f"{name}.parquet")
        for name in ("crm", "screening", "wallets", "transactions")
    }
    truth = pl.read_parquet(out / "ground_truth.parquet")
    governed = GovernedFrames(
        jurisdiction="ALL",
        purpose="kyc_aml",
        frames=frames,
        accounting={},
        plan_digest="0" * 64,
        subject_domain="kyc",
    )
    features = build_features(governed, AS_OF, sample_config())
    seg = Segmentation(
        strategy="truth",
        params={},
        assignments=truth.select("customer_id", persona_name=pl.col("persona"), persona_id=0),
        personas=[],
        gates=[],
    )
    routing = route(features, governed, seg, evaluate_ruleset(), None, AS_OF, 90)
    return routing.table.join(truth, on="customer_id", how="inner").with_columns(
        rank=pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8)
    )


def test_planted_pep_and_sanctions_never_below_their_floor(tmp_path: Path) -> None:
    t = _tiers(tmp_path / "clean", dirt_rate=0.0)
    peps = t.filter(pl.col("planted_pep"))
    sanctioned = t.filter(pl.col("planted_sanctions"))
    assert peps.height > 0 and sanctioned.height > 0
    assert peps.filter(pl.col("rank") < TIER_RANK["EDD_SENIOR"]).height == 0
    assert (sanctioned["tier"] == "PROHIBITED").all()
    assert (sanctioned["queue"] == "sanctions-escalation").all()
    assert peps.filter(~pl.col("planted_sanctions"))["queue"].unique().to_list() == [
        "edd-senior-approval"
    ]


def test_with_dirt_planted_risk_is_never_read_as_low(tmp_path: Path) -> None:
    t = _tiers(tmp_path / "dirty", dirt_rate=0.02)
    risky = t.filter(pl.col("planted_pep") | pl.col("planted_sanctions"))
    assert risky.height > 0
    assert risky.filter(pl.col("tier") == "SDD").height == 0
    # Those below their floor lost their screening flag to planted dirt and say so.
    below = risky.filter(
        (pl.col("planted_pep") & (pl.col("rank") < TIER_RANK["EDD_SENIOR"]))
        | (pl.col("planted_sanctions") & (pl.col("tier") != "PROHIBITED"))
    )
    assert all("SCREENING_MISSING" in codes for codes in below["reason_codes"])
