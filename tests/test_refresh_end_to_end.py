"""A governed refresh from the CLI: published, signed, accounted, chained; refusals fail closed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import ExitCode
from engine.pseudonym.lifecycle import init_keys
from engine.workspace import Workspace
from lineage.canonical import sha256_hex

AS_OF = "2026-11-01"
runner = CliRunner()


def pgov(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        return result.exit_code, result.output + trace
    return result.exit_code, result.output


def refresh(ws: Path, jurisdiction: str, purpose: str, actor: str) -> tuple[int, str]:
    return pgov(
        "refresh",
        "-w", str(ws),
        "--jurisdiction", jurisdiction,
        "--purpose", purpose,
        "--actor", actor,
        "--as-of", AS_OF,
        "--json",
    )  # fmt: skip


@pytest.fixture(scope="module")
def refreshed(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(sample_workspace, root)
    init_keys(Workspace.open(root))
    for purpose, actor in (
        ("marketing_segmentation", "analyst-eu"),
        ("kyc_aml", "compliance-lead"),
    ):
        code, out = refresh(root, "EU-DE", purpose, actor)
        assert code in (0, ExitCode.GATE_FAILED), out
    return root


def test_refresh_publishes_a_signed_version_that_verifies(refreshed: Path) -> None:
    version = refreshed / "versions" / "EU-DE" / "marketing_segmentation" / "v0001"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["jurisdiction"] == "EU-DE"
    assert manifest["purpose"] == "marketing_segmentation"
    assert manifest["predecessor"] is None
    assert (version / "statement.dsse.json").is_file()
    code, out = pgov("lineage", "verify", str(version), "-w", str(refreshed))
    assert code == 0, out


def test_every_input_row_is_accounted_for_in_the_version(refreshed: Path) -> None:
    for purpose in ("marketing_segmentation", "kyc_aml"):
        version = refreshed / "versions" / "EU-DE" / purpose / "v0001"
        accounting = json.loads((version / "accounting.json").read_text())
        assert set(accounting) >= {"crm", "transactions", "screening"}
        for source, acc in accounting.items():
            total = acc["kept"] + acc["excluded"] + acc["quarantined"]
            assert total == acc["input_rows"], source


def test_kyc_refresh_routes_every_kept_customer_with_reasons(refreshed: Path) -> None:
    import polars as pl

    version = refreshed / "versions" / "EU-DE" / "kyc_aml" / "v0001"
    routing = pl.read_parquet(version / "routing.parquet")
    accounting = json.loads((version / "accounting.json").read_text())
    assert routing.height == accounting["crm"]["kept"]
    assert routing["tier"].null_count() == 0
    assert routing["queue"].null_count() == 0
    assert routing["customer_id"].str.starts_with("k").all()  # kyc-domain tokens
    assert (refreshed / "outbox").is_dir()


def test_marketing_refresh_sees_no_screening_data(refreshed: Path) -> None:
    version = refreshed / "versions" / "EU-DE" / "marketing_segmentation" / "v0001"
    plan = json.loads((version / "plan.json").read_text())
    columns = plan["sources"]["screening"]["columns"]
    assert {c: columns[c]["action"] for c in ("pep", "sanctions_hit", "adverse_media")} == {
        "pep": "drop",
        "sanctions_hit": "drop",
        "adverse_media": "drop",
    }


def test_a_second_refresh_chains_to_its_predecessor(refreshed: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(refreshed, root)
    code, out = refresh(root, "EU-DE", "marketing_segmentation", "analyst-eu")
    assert code in (0, ExitCode.GATE_FAILED), out
    chain = root / "versions" / "EU-DE" / "marketing_segmentation"
    manifest = json.loads((chain / "v0002" / "manifest.json").read_text())
    first_statement = (chain / "v0001" / "statement.dsse.json").read_bytes()
    assert manifest["predecessor"] == {
        "version": "v0001",
        "statement_sha256": sha256_hex(first_statement),
    }
    code, out = pgov("audit", "verify", "-w", str(root))
    assert code == 0, out


def test_refresh_outside_the_analysts_jurisdiction_is_denied_and_audited(
    refreshed: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(refreshed, root)
    code, out = refresh(root, "EU-DE", "marketing_segmentation", "analyst-uk")
    assert code == ExitCode.POLICY_DENIED, out
    assert not (root / "versions" / "EU-DE" / "marketing_segmentation" / "v0002").exists()
    code, out = pgov("audit", "query", "-w", str(root), "--type", "refresh_denied", "--json")
    assert code == 0, out
    denied = json.loads(out)
    assert any(e["actor"] == "analyst-uk" for e in denied)


def test_compliance_officer_cannot_run_a_marketing_refresh(refreshed: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(refreshed, root)
    code, out = refresh(root, "EU-DE", "marketing_segmentation", "compliance-lead")
    assert code == ExitCode.POLICY_DENIED, out


def test_unknown_actor_is_denied(refreshed: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(refreshed, root)
    code, out = refresh(root, "EU-DE", "kyc_aml", "mallory")
    assert code == ExitCode.POLICY_DENIED, out


def test_refresh_without_keys_refuses_before_reading_data(workspace_copy: Path) -> None:
    code, out = refresh(workspace_copy, "UK", "marketing_segmentation", "analyst-uk")
    assert code == ExitCode.KEY_ERROR, out
    assert "pgov keys init" in out
    assert not (workspace_copy / "versions" / "UK").exists()


def test_unknown_jurisdiction_is_a_usage_error(refreshed: Path) -> None:
    code, out = refresh(refreshed, "XX", "kyc_aml", "compliance-lead")
    assert code == ExitCode.USAGE, out


def test_an_auditor_replays_a_versions_recorded_decision(refreshed: Path) -> None:
    """decision_input.json is a signed file of the version; `pgov policy eval` on it gives
    the plan digest the statement records (the plan.json bytes)."""
    version = refreshed / "versions" / "EU-DE" / "marketing_segmentation" / "v0001"
    code, out = pgov(
        "policy", "eval", "-w", str(refreshed),
        "--input", str(version / "decision_input.json"), "--json",
    )  # fmt: skip
    assert code == 0, out
    replay = json.loads(out)
    plan = (version / "plan.json").read_bytes().rstrip(b"\n")
    assert replay["plan_digest"] == sha256_hex(plan)
    assert replay["result"]["allow"] is True


def test_a_tampered_signed_bundle_refuses_the_refresh_and_is_audited(
    refreshed: Path, tmp_path: Path
) -> None:
    import io
    import tarfile

    root = tmp_path / "ws"
    shutil.copytree(refreshed, root)
    assert pgov("policy", "keygen", "-w", str(root))[0] == 0
    code, out = pgov("policy", "build", "-w", str(root), "-o", str(root / "bundle.tar.gz"))
    assert code == 0, out
    toml = root / "pgov.toml"
    toml.write_text(
        toml.read_text().replace('bundle = ""', 'bundle = "bundle.tar.gz"', 1), encoding="utf-8"
    )
    with tarfile.open(root / "bundle.tar.gz", "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    # Drop the GDPR module: the decision would be weaker, the signature says no.
    del members["personagov/gdpr.rego"]
    with tarfile.open(root / "bundle.tar.gz", "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    code, out = refresh(root, "EU-DE", "marketing_segmentation", "analyst-eu")
    assert code == ExitCode.POLICY_DENIED, out
    assert not (root / "versions" / "EU-DE" / "marketing_segmentation" / "v0002").exists()
    code, out = pgov("audit", "query", "-w", str(root), "--type", "refresh_denied", "--json")
    assert code == 0, out
    denied = json.loads(out)
    assert denied and "bundle.file_mismatch" in json.dumps(denied[-1])
