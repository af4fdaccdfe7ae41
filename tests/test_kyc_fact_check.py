"""A kyc_aml refresh on a workspace that does not declare the facts the KYC ruleset reads is
refused after the policy decision, before any source is read: exit 2, every missing fact
named with the rules that read it, audited as a failed refresh at the kyc stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_byod_support import AS_OF, credit_table, pgov
from test_policy_support import make_ws, request

from engine.errors import ConfigError
from engine.kyc.fact_check import declared_facts, named_facts, refuse_undeclared_facts
from engine.kyc.ruleset import KycRuleset
from engine.policy.decide import decide
from engine.workspace import Workspace


def _failures(root: Path) -> list[dict]:
    code, out = pgov("audit", "query", "-w", str(root), "--json", "--type", "refresh_failed")
    assert code == 0, out
    entries: list[dict] = json.loads(out)
    return entries


def test_kyc_refresh_on_a_one_table_lender_names_every_missing_fact_before_reading(
    tmp_path: Path,
) -> None:
    root = credit_table(tmp_path / "lender")
    code, out = pgov(
        "refresh", "-w", str(root), "--jurisdiction", "UK", "--purpose", "kyc_aml",
        "--actor", "officer", "--as-of", AS_OF,
    )  # fmt: skip
    assert code == 2, out
    assert "customer_type (read by customer.smb)" in out
    assert "pep (read by floor.pep)" in out
    assert "screened (read by customer.unscreened, floor.unscreened)" in out
    assert 'kyc_fact = "<name>"' in out
    # Refused before the sources stage: nothing quarantined, nothing staged or published.
    assert not any((root / "quarantine").rglob("*.json"))
    assert not any((root / "versions").rglob("manifest.json"))
    failed = _failures(root)
    assert len(failed) == 1
    assert failed[0]["details"]["stage"] == "kyc"
    assert failed[0]["details"]["exit_code"] == 2


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> KycRuleset:
    ws: Workspace = make_ws(tmp_path_factory.mktemp("policy"))
    raw = decide(ws, request("kyc-ops", "EU-DE", "kyc_aml")).kyc_ruleset
    return KycRuleset.from_policy(raw)


def test_the_sample_declares_every_fact_the_shipped_ruleset_reads(
    ruleset: KycRuleset, sample_ws: Workspace
) -> None:
    assert set(named_facts(ruleset)) <= declared_facts(sample_ws.config)
    refuse_undeclared_facts(sample_ws.config, ruleset.to_json())  # no error


def test_a_fact_declared_under_another_name_counts_and_a_removed_one_is_named(
    ruleset: KycRuleset, sample_ws: Workspace
) -> None:
    cfg = sample_ws.config
    pep = next(n for n, s in cfg.features.items() if (s.kyc_fact or n) == "pep")
    # Declared under the workspace's own feature name, mapped to the ruleset's name.
    renamed = {("lender_pep_flag" if n == pep else n): s for n, s in cfg.features.items()}
    renamed["lender_pep_flag"] = renamed["lender_pep_flag"].model_copy(update={"kyc_fact": "pep"})
    refuse_undeclared_facts(cfg.model_copy(update={"features": renamed}), ruleset.to_json())
    without = {n: s for n, s in cfg.features.items() if n != pep}
    with pytest.raises(ConfigError) as err:
        refuse_undeclared_facts(cfg.model_copy(update={"features": without}), ruleset.to_json())
    assert "pep (read by floor.pep)" in err.value.message
    assert "customer_type" not in err.value.message


def test_no_ruleset_is_left_to_tiering(sample_ws: Workspace) -> None:
    refuse_undeclared_facts(sample_ws.config, None)
