"""CLTV per customer in integer cents from declared columns, its distribution per persona,
approval rates; on a workspace shaped unlike the sample (other names, one table)."""

from __future__ import annotations

import polars as pl

from engine.config import ValueSpec
from engine.enforce import GovernedFrames
from engine.segment.value import customer_cltv, value_kpis


def _governed() -> GovernedFrames:
    facilities = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "d"],
            "principal": [1000.0, 500.0, 2000.0, 100.0, 300.0],
            "apr": [0.12, 0.10, 0.05, 0.2, 0.1],
            "months": [12, 24, 6, 12, 12],
            "charges": [10.0, 0.0, 5.5, 0.0, 1.0],
            "state": ["ok", "ok", "bad", "ok", "ok"],
            "granted": [True, False, True, True, True],
        }
    )
    return GovernedFrames(
        jurisdiction="X",
        purpose="credit_risk_segmentation",
        frames={"facilities": facilities},
        accounting={},
        plan_digest="0" * 64,
        subject_domain="marketing",
    )


SPEC = ValueSpec(
    source="facilities",
    amount="principal",
    rate="apr",
    tenure_months="months",
    fees="charges",
    loss_when={"field": "state", "op": "eq", "value": "bad"},  # type: ignore[arg-type]
    loss_given_default=0.5,
    applications_source="facilities",
    approved_column="granted",
)


def test_cltv_is_interest_plus_fees_minus_expected_loss_in_cents() -> None:
    cltv = dict(customer_cltv(_governed(), SPEC).iter_rows())
    # a: 1000*0.12*1 + 10 + 500*0.10*2 = 230.00
    assert cltv["a"] == 23_000
    # b: 2000*0.05*0.5 + 5.50 - 2000*0.5 = -944.50: a defaulted loan destroys value
    assert cltv["b"] == -94_450
    assert all(isinstance(v, int) for v in cltv.values())


def test_distribution_per_persona_and_k_suppression() -> None:
    assignments = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "persona_id": [0, 0, 1, 1]})
    doc, suppressed = value_kpis(assignments, _governed(), SPEC, k=2)
    p0 = doc["personas"]["0"]
    assert p0["cltv_cents"]["total"] == 23_000 - 94_450
    assert p0["application_rate"] == 1.0 and p0["approval_rate"] == round(2 / 3, 6)
    doc3, suppressed3 = value_kpis(assignments, _governed(), SPEC, k=3)
    assert doc3["personas"]["1"]["cltv_cents"] is None
    assert {s["cell"]["persona_id"] for s in suppressed3} == {"0", "1"}
    assert suppressed == []


def test_the_segment_stage_publishes_the_value_its_early_start_made() -> None:
    # segment() starts customer_cltv before the fits; the document must be the one
    # value_kpis makes on its own, and a withheld column must still say so.
    import numpy as np

    import engine.segment as seg_mod
    from engine.config import SegmentationSpec
    from engine.features import FeatureFrame

    rng = np.random.default_rng(2)
    ids = ["a", "b", "c", "d"] * 50
    df = pl.DataFrame(
        {"customer_id": [f"{c}{i:03d}" for i, c in enumerate(ids)], "x": rng.normal(size=200)}
    )
    features = FeatureFrame(df, ["x"], [])
    rows = pl.DataFrame(
        {
            "customer_id": df["customer_id"],
            "principal": rng.uniform(100, 1000, 200),
            "apr": rng.uniform(0, 0.2, 200),
            "months": rng.integers(1, 36, 200),
            "charges": rng.uniform(0, 10, 200),
            "state": ["ok"] * 200,
            "granted": [True] * 200,
        }
    )
    governed = _governed()
    governed.frames["facilities"] = rows
    spec = SegmentationSpec(k=2, bootstrap_runs=2, value=SPEC)
    seg = seg_mod.segment(features, spec, 5, 7, governed)
    want, _ = value_kpis(seg.assignments, governed, SPEC, 5)
    assert seg.artifacts["value.json"] == want
    governed.frames["facilities"] = rows.drop("charges")
    withheld = seg_mod.segment(features, spec, 5, 7, governed)
    assert "charges" in withheld.artifacts["value.json"]["unavailable"]
