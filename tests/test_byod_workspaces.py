"""Workspaces shaped unlike the sample refresh, list their features, report outcome KPIs per
persona and verify, with no code change: only their pgov.toml declarations differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_byod_support import (
    AS_OF,
    card_transactions,
    credit_table,
    in_clear,
    new_jurisdiction,
    pgov,
)

from engine.errors import ExitCode

PURPOSES = ("credit_risk_segmentation", "marketing_segmentation")


def _refresh(ws: Path, jurisdiction: str, purpose: str) -> tuple[int, str]:
    return pgov(
        "refresh", "-w", str(ws), "-j", jurisdiction, "-p", purpose,
        "-a", "analyst", "--as-of", AS_OF, "--json",
    )  # fmt: skip


def _personas(ws: Path, jurisdiction: str, purpose: str) -> list[dict]:
    version = ws / "versions" / jurisdiction / purpose / "v0001"
    return json.loads((version / "personas.json").read_text())["personas"]


@pytest.fixture(scope="module")
def credit_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = credit_table(tmp_path_factory.mktemp("credit") / "ws")
    for purpose in PURPOSES:
        code, out = _refresh(ws, "UK", purpose)
        assert code in (0, ExitCode.GATE_FAILED), out
    return ws


@pytest.fixture(scope="module")
def card_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = card_transactions(tmp_path_factory.mktemp("cards") / "ws")
    for purpose in PURPOSES:
        code, out = _refresh(ws, "SG", purpose)
        assert code in (0, ExitCode.GATE_FAILED), out
    return ws


@pytest.mark.parametrize("purpose", PURPOSES)
def test_single_table_credit_dataset_gets_personas_with_default_rates(
    credit_ws: Path, purpose: str
) -> None:
    personas = _personas(credit_ws, "UK", purpose)
    assert len(personas) >= 2
    rates = [p["kpis"].get("default_rate") for p in personas]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rates)
    assert max(rates) > min(rates)  # the planted groups default at different rates
    assert all(
        "monthly_income" in p["kpis"] and "monthly_income_sum" in p["kpis"] for p in personas
    )
    # Its own 0-1000 bands name the rating, never an assumed FICO scale.
    bands = {p["descriptors"]["rating_band"].split(" (")[0] for p in personas}
    assert bands <= {"weak", "moderate", "strong", "excellent"}


def test_credit_dataset_lists_features_with_plan_reasons(credit_ws: Path) -> None:
    code, out = pgov(
        "features", "list", "-w", str(credit_ws), "-j", "UK",
        "-p", "credit_risk_segmentation", "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    by_name = {f["feature"]: f for f in doc["features"]}
    assert by_name["rating"]["available"] and by_name["default_rate"]["available"]
    assert by_name["rating"]["inputs"][0]["column"] == "applicants.rating"


def test_card_transactions_with_own_columns_and_timestamps(card_ws: Path) -> None:
    for purpose in PURPOSES:
        personas = _personas(card_ws, "SG", purpose)
        assert len(personas) >= 2
        assert all(p["kpis"].get("churn_rate") is not None for p in personas)
        assert all("spend_12m" in p["kpis"] for p in personas)
    features = json.loads(
        (card_ws / "versions/SG/credit_risk_segmentation/v0001/features.json").read_text()
    )
    assert {"txns_per_month", "spend_log", "days_since_last", "refund_share"} <= set(
        features["features"]
    )


@pytest.mark.parametrize(("fixture", "jurisdiction"), [("credit_ws", "UK"), ("card_ws", "SG")])
def test_byod_versions_verify(
    fixture: str, jurisdiction: str, request: pytest.FixtureRequest
) -> None:
    ws: Path = request.getfixturevalue(fixture)
    code, out = pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 0, out


def test_byod_outputs_carry_no_raw_ids(credit_ws: Path) -> None:
    # Integer ids are pseudonymised like any other subject key: none leaves in clear.
    version = credit_ws / "versions" / "UK" / "credit_risk_segmentation" / "v0001"
    text = "".join(p.read_text(errors="ignore") for p in version.glob("*.json"))
    assert text and not in_clear(["100001", "100777"], text)


def test_undeclared_jurisdiction_is_denied_with_how_to_declare_it(tmp_path: Path) -> None:
    ws = new_jurisdiction(tmp_path / "ws")
    code, out = _refresh(ws, "CA-ON", "credit_risk_segmentation")
    assert code == ExitCode.POLICY_DENIED, out
    assert "jurisdiction" in out


CA_ON = """
# Ontario is not in the shipped bundle: declared as data (docs/policy.md). PIPEDA is
# consent-based with implied consent for existing relationships; the closest shipped
# regime's rules (consent or legitimate interest, objection, withdrawal, age) apply.
[jurisdiction_data.CA-ON]
country = "CA"
region = "CA"
regime = "gdpr"
digital_consent_age = 13
adequacy = ["CA"]
"""


@pytest.mark.parametrize("purpose", PURPOSES)
def test_jurisdiction_declared_as_data_refreshes_without_code_changes(
    tmp_path: Path, purpose: str
) -> None:
    ws = new_jurisdiction(tmp_path / "ws")
    toml = ws / "pgov.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + CA_ON, encoding="utf-8")
    code, out = _refresh(ws, "CA-ON", purpose)
    assert code in (0, ExitCode.GATE_FAILED), out
    manifest = ws / "versions" / "CA-ON" / purpose / "v0001" / "decision_input.json"
    assert json.loads(manifest.read_text())["jurisdiction_data"]["CA-ON"]["country"] == "CA"
    code, out = pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 0, out
