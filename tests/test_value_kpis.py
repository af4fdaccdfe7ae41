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
