"""Experiments: keyed assignment, a planted lift recovered within its interval, the promotion
gate, policy and audit on every step, signed results."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from persona_flow import AS_OF, marketing_workspace, plant_outcomes, publish_and_approve
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import GateFailed, PolicyDenied, VerificationFailed
from engine.experiment.analyse import analyse_experiment
from engine.experiment.design import DesignRequest, design_experiment
from engine.experiment.promote import is_validated, promote_experiment
from engine.experiment.store import load_design
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

runner = CliRunner()
J = "EU-DE"


@pytest.fixture(scope="module")
def flow_ws(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = marketing_workspace(sample_workspace, tmp_path_factory.mktemp("exp") / "ws")
    publish_and_approve(ws, J, "analyst-eu")
    return ws


def _design(ws: Workspace, name: str, **kw: object) -> dict:
    req = DesignRequest(
        version=f"{J}/marketing_segmentation/current",
        name=name,
        arms=["control", "treatment"],
        split=[50, 50],
        stratify="persona",
        actor="analyst-eu",
        mde=0.1,
        **kw,  # type: ignore[arg-type]
    )
    return design_experiment(ws, req)


def _events(ws: Workspace, kind: str) -> list[dict]:
    return [e["details"] for e in AuditLog(ws.audit_dir).query(type=kind)]


def test_planted_lift_is_recovered_within_its_interval_and_promotes(flow_ws: Workspace) -> None:
    design = _design(flow_ws, "planted")
    # Stratified 50/50: every persona split exactly (within one customer).
    for arms in design["counts"].values():
        assert abs(arms["control"] - arms["treatment"]) <= 1
    pooled_power = design["power"]["pooled"]
    assert pooled_power["required_per_arm"] and pooled_power["smallest_arm"] > 0
    plant_outcomes(flow_ws, "planted", J, {"control": 0.10, "treatment": 0.35})
    doc = analyse_experiment(flow_ws, "planted", "campaign_results", "analyst-eu", AS_OF)
    pooled = doc["pooled"]["treatment"]
    lo, hi = pooled["ci_95"]
    assert lo <= 0.25 <= hi, pooled
    assert pooled["p_value"] < 0.001 and pooled["test"] == "two_proportion_z"
    assert doc["criteria"]["met"] is True
    assert doc["accounting"]["observed"] == doc["accounting"]["assigned"]
    for arms in doc["personas"].values():
        row = arms["treatment"]
        assert row["p_adjusted"] >= row["p_value"]  # Holm never lowers a p-value
    promoted = promote_experiment(flow_ws, "planted", "compliance-lead")
    assert promoted["version"]["version_id"] == "v0001"
    assert is_validated(flow_ws, J, "marketing_segmentation", "v0001")
    assert _events(flow_ws, "version_validated")[-1]["experiment"] == "planted"


def test_promotion_gate_refuses_an_experiment_without_lift(flow_ws: Workspace) -> None:
    _design(flow_ws, "flat")
    plant_outcomes(flow_ws, "flat", J, {"control": 0.2, "treatment": 0.2}, seed=3)
    doc = analyse_experiment(flow_ws, "flat", "campaign_results", "analyst-eu", AS_OF)
    assert doc["criteria"]["met"] is False and doc["criteria"]["reasons"]
    with pytest.raises(GateFailed, match="did not meet its declared criteria"):
        promote_experiment(flow_ws, "flat", "compliance-lead")
    refused = _events(flow_ws, "version_validation_refused")
    assert refused[-1]["experiment"] == "flat" and refused[-1]["reason"] == "criteria_not_met"
    res = runner.invoke(
        app, ["experiment", "promote", "flat", "-a", "compliance-lead", "-w", str(flow_ws.root)]
    )
    assert res.exit_code == 7, res.output


def test_assignment_is_keyed_deterministic_and_per_experiment(flow_ws: Workspace) -> None:
    _design(flow_ws, "det-a")
    _design(flow_ws, "det-b")
    root = flow_ws.root / "experiments"
    a = pl.read_parquet(root / "det-a" / "assignments.parquet")
    b = pl.read_parquet(root / "det-b" / "assignments.parquet")
    assert a.get_column("customer_id").to_list() == b.get_column("customer_id").to_list()
    # Another name is another keyed draw: the arms differ for a good share of customers.
    differ = (a.get_column("arm") != b.get_column("arm")).mean()
    assert 0.3 < float(differ) < 0.7  # type: ignore[arg-type]
    # The same name and version assign the same arms (function of key, name, token).
    from engine.experiment.design import assign_arms
    from engine.pseudonym.keyring import Keyring
    from engine.segment.io import read_assignments

    key = Keyring.load(flow_ws).derive("experiment", "det-a").hex()
    vdir = flow_ws.versions_dir(J, "marketing_segmentation") / "v0001"
    again = assign_arms(read_assignments(vdir), key, "det-a", ["control", "treatment"], [50, 50],
                        "persona")  # fmt: skip
    assert again.equals(a)
    with pytest.raises(Exception, match="already exists"):
        _design(flow_ws, "det-a")


def test_design_refused_by_policy_for_another_region_and_audited(flow_ws: Workspace) -> None:
    req = DesignRequest(
        version=f"{J}/marketing_segmentation/current",
        name="uk-try",
        arms=["control", "treatment"],
        split=[50, 50],
        stratify="persona",
        actor="analyst-uk",
        mde=0.1,
    )
    with pytest.raises(PolicyDenied) as err:
        design_experiment(flow_ws, req)
    assert "access.jurisdiction_not_assigned" in err.value.reasons
    assert not (flow_ws.root / "experiments" / "uk-try").exists()
    assert _events(flow_ws, "experiment_denied")[-1]["experiment"] == "uk-try"


def test_signed_design_detects_tampering(flow_ws: Workspace, tmp_path: Path) -> None:
    _design(flow_ws, "tamper")
    path = flow_ws.root / "experiments" / "tamper" / "assignments.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(pl.lit("treatment").alias("arm")).write_parquet(path)
    with pytest.raises(VerificationFailed, match="differ from the signed digest"):
        load_design(flow_ws, "tamper")


def test_cli_design_and_analyse_with_roi(flow_ws: Workspace) -> None:
    w = str(flow_ws.root)
    res = runner.invoke(
        app,
        ["experiment", "design", f"{J}/marketing_segmentation/current", "--name", "cli-run",
         "--arms", "control,treatment", "--split", "50/50", "--stratify", "persona",
         "--mde", "0.1", "-a", "analyst-eu", "-w", w],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "power per persona" in res.output
    plant_outcomes(flow_ws, "cli-run", J, {"control": 0.1, "treatment": 0.3}, seed=5)
    res = runner.invoke(
        app,
        ["experiment", "analyse", "cli-run", "--outcomes", "campaign_results",
         "--cost", "control=0,treatment=250", "--value", "40", "--as-of", AS_OF.isoformat(),
         "-a", "analyst-eu", "-w", w, "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    roi = doc["roi"]["treatment"]
    conversions = doc["arms"]["treatment"]["conversions"]
    assert roi["cost_cents"] == 25_000 and roi["revenue_cents"] == conversions * 4000
    assert roi["roi"] == pytest.approx((conversions * 4000 - 25_000) / 25_000, abs=1e-6)
    arms = doc["arms"]
    extra = conversions - arms["control"]["conversions"] * (
        arms["treatment"]["customers"] / arms["control"]["customers"]
    )
    assert roi["incremental_conversions"] == pytest.approx(extra, abs=1e-6)
    assert roi["incremental_roi"] == pytest.approx((extra * 4000 - 25_000) / 25_000, abs=1e-6)
    signed = flow_ws.root / "experiments" / "cli-run" / "analysis-0001.dsse.json"
    assert signed.is_file()
