"""`pgov policy explain`: tables for people, JSON for machines, exit 3 on a deny."""

from __future__ import annotations

import json
from pathlib import Path

from test_policy_support import make_ws
from typer.testing import CliRunner

from engine.cli import app


def test_explain_json_is_the_plan(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            "-j",
            "US-CA",
            "-p",
            "marketing_segmentation",
            "-a",
            "analyst-us",
            "-w",
            str(ws.root),
            "--as-of",
            "2026-11-23",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["allowed"] is True
    assert doc["sources"]["crm"]["columns"]["religion"]["action"] == "drop"
    assert {r["reason"] for r in doc["subject_exclusions"]} >= {"ccpa.gpc_signal"}
    assert doc["sources"]["crm"]["nullings"][0]["columns"] == ["precise_geolocation"]
    assert len(doc["plan_digest"]) == 64


def test_explain_tables(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            "-j",
            "SG",
            "-p",
            "marketing_segmentation",
            "-a",
            "analyst-sg",
            "-w",
            str(ws.root),
            "--as-of",
            "2026-11-23",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    for text in ("Column actions", "Row exclusions", "pdpa.no_consent", "suppress_channel:phone"):
        assert text in result.output


def test_explain_deny_exits_3_with_reasons(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            "-j",
            "EU-DE",
            "-p",
            "marketing_segmentation",
            "-a",
            "compliance-lead",
            "-w",
            str(ws.root),
        ],
    )
    assert result.exit_code == 3
    assert "access.compliance_cannot_run_marketing" in result.output


def test_explain_bad_purpose_is_a_usage_error(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            "-j",
            "EU-DE",
            "-p",
            "astrology",
            "-a",
            "analyst-eu",
            "-w",
            str(ws.root),
        ],
    )
    assert result.exit_code == 2
