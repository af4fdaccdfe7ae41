"""The bundle's own Rego tests, run through `pgov policy test` (the embedded engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_policy_support import BUNDLE, copy_bundle
from typer.testing import CliRunner

from engine.cli import app
from engine.policy import load_bundle
from engine.policy.testing import discover, run_tests

MODULES = [
    "gdpr",
    "uk_gdpr",
    "ccpa",
    "lgpd",
    "pdpa",
    "us_baseline",
    "kyc_aml",
    "access",
    "transfers",
    "baseline",
    "decision",
]


def test_every_rego_test_passes() -> None:
    results = run_tests(load_bundle(BUNDLE))
    failed = [f"{r.path}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed
    assert len(results) >= 80


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_tests_beside_it(module: str) -> None:
    assert (BUNDLE / "personagov" / f"{module}_test.rego").is_file()
    tests = [r for _, pkg, r in discover(load_bundle(BUNDLE)) if pkg == f"personagov.{module}_test"]
    assert len(tests) >= 3


def test_cli_reports_like_opa_test_and_exits_zero() -> None:
    result = CliRunner().invoke(app, ["policy", "test", "--bundle", str(BUNDLE), "-v"])
    assert result.exit_code == 0, result.output
    assert "data.personagov.gdpr_test.test_objection_excludes: PASS" in result.output
    assert "PASS: " in result.output


def test_cli_fails_on_a_failing_or_undefined_test(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    (root / "personagov" / "zz_test.rego").write_text(
        "package personagov.zz_test\n\nimport rego.v1\n\n"
        "test_false if { 1 == 2 }\n\n"
        "test_true if { 1 == 1 }\n"
    )
    result = CliRunner().invoke(app, ["policy", "test", "--bundle", str(root), "--json"])
    assert result.exit_code == 3
    assert '"failed": 1' in result.output
    text = CliRunner().invoke(app, ["policy", "test", "--bundle", str(root)]).output
    assert "data.personagov.zz_test.test_false: FAIL (undefined)" in text
    assert "FAIL: 1/" in text


def test_cli_refuses_a_missing_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "test", "--bundle", str(tmp_path / "none")])
    assert result.exit_code == 3
    assert "not found" in result.output
