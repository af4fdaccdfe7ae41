"""The token vault in the product: kyc_aml refreshes file kv tokens once, `pgov reidentify`
reads the vault, `pgov vault erase` removes a subject (policy-gated, audited), lineage
verifies, determinism holds; and the same on a workspace unlike the sample (integer ids,
one table)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Purpose
from engine.pseudonym import Pseudonymiser, parse_token
from engine.pseudonym.lifecycle import init_keys
from engine.pseudonym.vault import Vault
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

runner = CliRunner()
AS_OF = "2026-11-01"


def _pgov(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _events(ws: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in AuditLog(ws / "audit").query() if e.get("type") == kind]


@pytest.fixture(scope="module")
def refreshed(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vault") / "ws"
    shutil.copytree(sample_workspace, root)
    init_keys(Workspace.open(root))
    for _ in range(2):  # the second refresh finds every token in the vault already
        code, out = _pgov("refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
                          "-w", str(root), "--as-of", AS_OF)  # fmt: skip
        assert code == 0, out
    return root


def test_a_kyc_refresh_files_its_tokens_once(refreshed: Path) -> None:
    vault = Vault.for_workspace(Workspace.open(refreshed))
    stores = dict(vault.stores())
    assert stores.get("customer_id") == 1
    [filed] = _events(refreshed, "vault_written")  # the second refresh added nothing
    details = filed["details"]
    assert details["jurisdiction"] == "UK" and details["purpose"] == "kyc_aml"
    by_column = {s["column"]: s for s in details["stores"]}
    routing = pl.read_parquet(refreshed / "versions/UK/kyc_aml/v0002/routing.parquet")
    toks = routing["customer_id"].drop_nulls()
    assert toks.len() > 0 and all(parse_token(t).scheme == "vault" for t in toks.to_list())
    held = vault.tokens("customer_id", 1)
    assert toks.is_in(held.implode()).all()  # every published token re-identifies
    assert by_column["customer_id"]["added"] == held.len()
    # Lineage names counts and digests, never a token.
    assert not any(t in json.dumps(filed) for t in toks.head(50).to_list())


def test_reidentify_reads_the_vault_and_lineage_verifies(refreshed: Path) -> None:
    routing = pl.read_parquet(refreshed / "versions/UK/kyc_aml/v0002/routing.parquet")
    token = routing["customer_id"][0]
    code, out = _pgov("reidentify", "--token", token, "--actor", "kyc-ops",
                      "--reason", "EDD file review", "-w", str(refreshed), "--json")  # fmt: skip
    assert code == 0, out
    [row] = json.loads(out)
    crm = pl.read_parquet(refreshed / "data/crm.parquet", columns=["customer_id"])
    assert row["customer_id"] in set(crm["customer_id"].to_list())
    code, out = _pgov("lineage", "verify", "--all", "-w", str(refreshed))
    assert code == 0, out
    code, out = _pgov("vault", "status", "-w", str(refreshed), "--json")
    assert code == 0, out
    status = {r["column"]: r for r in json.loads(out)}
    assert status["customer_id"]["entries"] > 0 and len(status["customer_id"]["sha256"]) == 64


def test_vault_erase_is_policy_gated_audited_and_stops_reidentification(
    refreshed: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(refreshed, ws)
    routing = pl.read_parquet(ws / "versions/UK/kyc_aml/v0002/routing.parquet")
    token = routing["customer_id"][1]
    [value] = Pseudonymiser.for_workspace(Workspace.open(ws)).reveal([token], "customer_id")
    values = tmp_path / "erase.txt"
    values.write_text(value + "\n")
    common = ["--values-file", str(values), "--reason", "erasure after AML retention",
              "-w", str(ws)]  # fmt: skip
    code, out = _pgov("vault", "erase", "--actor", "analyst-uk", *common)
    assert code == 3, out  # not a key-management actor: denied, audited
    assert _events(ws, "key_change_refused")[-1]["details"]["operation"] == "vault_erase"
    code, out = _pgov("vault", "erase", "--actor", "data-engineer", *common)
    assert code == 0 and "1 vault entry erased" in out, out
    [erased] = _events(ws, "vault_erased")
    assert erased["details"]["erased"] == 1 and erased["details"]["request"]
    assert value not in json.dumps(erased) and token not in json.dumps(erased)
    code, out = _pgov("reidentify", "--token", token, "--actor", "kyc-ops",
                      "--reason", "EDD file review", "-w", str(ws))  # fmt: skip
    assert code == 6 and "not in the token vault" in out, out
    assert value not in out
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 0, out


def test_two_runs_same_inputs_give_the_same_vault(sample_workspace: Path, tmp_path: Path) -> None:
    request = RefreshRequest(actor="compliance-lead", jurisdiction="US-CA",
                             purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1), seed=11)  # fmt: skip
    vaults = []
    for name in ("a", "b"):
        shutil.copytree(sample_workspace, tmp_path / name)
        ws = Workspace.open(tmp_path / name)
        init_keys(ws)
        if name == "b":
            shutil.copy2(tmp_path / "a/keys/master.key", tmp_path / "b/keys/master.key")
        run_refresh(ws, request)
        v = Vault.for_workspace(ws)
        files = sorted(p.relative_to(v.root).as_posix() for p in v.root.rglob("seg-*.parquet"))
        vaults.append((files, [v.digest(c, k) for c, k in v.stores()]))
    assert vaults[0] == vaults[1] and vaults[0][0]


def test_a_workspace_unlike_the_sample_integer_ids_one_table(tmp_path: Path) -> None:
    """One CSV table, integer applicant numbers under another column name: the kyc plan's
    subject tokens are kv tokens filed in the vault and reveal to the integers."""
    from test_byod_support import credit_table, in_clear

    from engine.enforce import enforce
    from engine.policy.decide import decide, engine_for
    from engine.pseudonym.filing import file_tokens
    from engine.sources import load_sources

    ws = Workspace.open(credit_table(tmp_path / "ws", n=300))
    as_of = date(2026, 11, 1)
    request = RefreshRequest(
        actor="officer", jurisdiction="UK", purpose=Purpose.KYC_AML, as_of=as_of
    )
    plan = decide(ws, request, engine_for(ws))
    assert plan.subject_domain == "kyc"
    pseudo = Pseudonymiser.for_workspace(ws)
    governed = enforce(load_sources(ws, "UK", as_of), plan, pseudo, as_of)
    [write] = [w for w in file_tokens(ws, pseudo, "officer", run_id="t") if w.added]
    toks = governed.frames["applicants"]["customer_id"].to_list()
    assert write.context == "customer_id" and write.added == len(toks)
    revealed = Pseudonymiser.for_workspace(ws).reveal(toks, "customer_id")
    source = pl.read_csv(ws.root / "data/applicants.csv")["applicant_no"].cast(pl.String)
    assert set(revealed) <= set(source.to_list()) and len(set(revealed)) == len(toks)
    # Nothing in the vault holds an applicant number in clear: not in its bytes, and not in
    # any decoded cell of its segments (compression would hide a value from a byte search).
    files = [p for p in (ws.root / "vault").rglob("*") if p.is_file()]
    raw = b"\n".join(p.read_bytes() for p in files)
    cells = {
        v
        for p in files
        if p.suffix == ".parquet"
        for col in pl.read_parquet(p).iter_columns()
        for c in col.drop_nulls().to_list()
        for v in [c.decode("latin-1") if isinstance(c, bytes) else str(c)]
    }
    assert raw and cells and not in_clear(revealed, raw) and not cells & set(revealed)


def test_subjects_the_version_excluded_are_not_filed_in_the_vault(refreshed: Path) -> None:
    version = refreshed / "versions/UK/kyc_aml/v0001"
    accounting = json.loads((version / "accounting.json").read_text())
    assert json.dumps(accounting).count("excluded") > 0
    published = pl.concat(
        [
            pl.read_parquet(version / name, columns=["customer_id"])["customer_id"]
            for name in ("routing.parquet", "assignments.parquet")
        ]
    ).unique()
    held = Vault.for_workspace(Workspace.open(refreshed)).tokens("customer_id", 1)
    # Enforcement mints a token for every subject, excluded ones too; only the tokens a
    # version publishes are stored (an erasure-requested subject's id must not be).
    assert held.len() > 0
    assert held.is_in(published.implode()).all(), held.len() - published.len()


def test_an_erasure_entry_without_a_signed_request_fails_lineage_verify(
    refreshed: Path, tmp_path: Path
) -> None:
    from engine import audit

    copy = tmp_path / "ws"
    shutil.copytree(refreshed, copy)
    # Written through the API, outside any actor's signed request: nobody was authenticated.
    audit.record(Workspace.open(copy), "vault_erased", "compliance-lead", column="customer_id")
    code, out = _pgov("lineage", "verify", "--all", "-w", str(copy))
    assert code == 4, out
    assert "vault_erased" in out and "carries no signed request" in out
