"""`pgov versions list|check|resolve` against chains on disk."""

from __future__ import annotations

import json
from pathlib import Path

from test_executor_fakes import publish, write_workspace
from typer.testing import CliRunner

from engine.cli import app
from engine.workspace import Workspace

runner = CliRunner()


def test_list_and_check_an_intact_chain(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    publish(ws, "EU-DE", "kyc_aml")
    publish(ws, "EU-DE", "kyc_aml")
    publish(ws, "EU-DE", "marketing_segmentation")

    res = runner.invoke(app, ["versions", "list", "-j", "EU-DE", "-w", str(root), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    assert [(r["purpose"], r["version_id"], r["predecessor"]) for r in rows] == [
        ("kyc_aml", "v0001", None),
        ("kyc_aml", "v0002", "v0001"),
        ("marketing_segmentation", "v0001", None),
    ]
    res = runner.invoke(app, ["versions", "list", "-j", "EU-DE", "-p", "kyc_aml", "-w", str(root)])
    assert res.exit_code == 0 and "v0002" in res.output and "marketing" not in res.output

    res = runner.invoke(app, ["versions", "check", "-j", "EU-DE", "-p", "kyc_aml", "-w", str(root)])
    assert res.exit_code == 0, res.output
    assert "intact" in res.output

    res = runner.invoke(app, ["versions", "resolve", "EU-DE/kyc_aml/latest", "-w", str(root)])
    assert res.exit_code == 0 and res.stdout.strip().endswith("v0002")


def test_check_fails_with_verification_exit_code_on_a_broken_chain(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    publish(ws, "UK", "kyc_aml")
    publish(ws, "UK", "kyc_aml")
    stmt = ws.versions_dir("UK", "kyc_aml") / "v0001" / "statement.dsse.json"
    stmt.write_bytes(stmt.read_bytes().replace(b"}", b" }", 1))
    res = runner.invoke(app, ["versions", "check", "-j", "UK", "-p", "kyc_aml", "-w", str(root)])
    assert res.exit_code == 4
    assert "v0001 was altered" in res.output


def test_unknown_jurisdiction_and_missing_version_are_clear_errors(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    res = runner.invoke(app, ["versions", "list", "-j", "XX", "-w", str(root)])
    assert res.exit_code == 2 and "unknown jurisdiction 'XX'" in res.output
    res = runner.invoke(app, ["versions", "resolve", "SG/kyc_aml/latest", "-w", str(root)])
    assert res.exit_code == 5 and "no published versions" in res.output
