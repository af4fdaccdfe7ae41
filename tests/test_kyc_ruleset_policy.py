"""The Rego ruleset: its own Rego tests pass, and the Python edge refuses malformed answers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import regorus

from engine.errors import PolicyError
from engine.kyc.bundle import default_bundle_dir, evaluate_ruleset
from engine.kyc.ruleset import KycRuleset

KYC_DIR = default_bundle_dir() / "kyc"


def _engine() -> regorus.Engine:
    e = regorus.Engine()
    e.add_policy("kyc/ruleset.rego", (KYC_DIR / "ruleset.rego").read_text())
    e.add_policy("kyc/ruleset_test.rego", (KYC_DIR / "ruleset_test.rego").read_text())
    e.add_data_json(json.dumps({"kyc": json.loads((KYC_DIR / "data.json").read_text())}))
    return e


def _rego_tests() -> list[str]:
    return re.findall(r"^(test_\w+)", (KYC_DIR / "ruleset_test.rego").read_text(), re.M)


@pytest.mark.parametrize("name", _rego_tests())
def test_rego_test_rule_passes(name: str) -> None:
    answer = _engine().eval_query(f"data.personagov.kyc_ruleset_test.{name}")
    assert answer["result"], f"{name} is undefined (failed)"
    assert answer["result"][0]["expressions"][0]["value"] is True


def test_rego_tests_can_fail() -> None:
    # Weaken the PEP floor in the module text: its Rego test must stop passing.
    text = (KYC_DIR / "ruleset.rego").read_text()
    weakened = text.replace('"min_tier": "EDD_SENIOR"', '"min_tier": "EDD"')
    assert weakened != text
    e = regorus.Engine()
    e.add_policy("kyc/ruleset.rego", weakened)
    e.add_policy("kyc/ruleset_test.rego", (KYC_DIR / "ruleset_test.rego").read_text())
    e.add_data_json(json.dumps({"kyc": json.loads((KYC_DIR / "data.json").read_text())}))
    answer = e.eval_query("data.personagov.kyc_ruleset_test.test_pep_floor_is_edd_senior")
    assert not answer["result"] or answer["result"][0]["expressions"][0]["value"] is not True


def _doc() -> dict[str, Any]:
    return evaluate_ruleset().to_json()


def test_shipped_ruleset_parses_and_round_trips() -> None:
    rs = evaluate_ruleset()
    assert rs.version
    assert KycRuleset.from_policy(rs.to_json()) == rs
    assert {f.family for f in rs.factors} == {
        "customer",
        "geography",
        "product_channel",
        "transaction",
        "persona",
    }


def test_undefined_ruleset_is_a_deny(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "kyc").mkdir(parents=True)
    shutil.copy(KYC_DIR / "ruleset.rego", bundle / "kyc" / "ruleset.rego")  # no data.json
    shutil.copy(KYC_DIR.parent / ".manifest", bundle / ".manifest")
    with pytest.raises(PolicyError) as err:
        evaluate_ruleset(bundle)
    assert "kyc.ruleset_undefined" in err.value.reasons


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(factors=[{**d["factors"][0], "condition": {"field": "x", "op": "??"}}]),
        lambda d: d.update(factors=[{**d["factors"][0], "condition": {"all": []}}]),
        lambda d: d.update(thresholds={"SDD": 0, "CDD": 50, "EDD": 40}),
        lambda d: d.update(review_months={**d["review_months"], "EDD_SENIOR": 36}),
        lambda d: d.update(review_months={**d["review_months"], "SDD": 72}),
        lambda d: d.update(floors=[{**d["floors"][0], "min_tier": "VERY_HIGH"}]),
        lambda d: d.update(default_queue="nowhere"),
        lambda d: d.update(queues=[]),
        lambda d: d.update(queues=[{**d["queues"][0], "queue": "../etc"}]),
        lambda d: d.update(
            queues=[
                {**d["queues"][0], "condition": {"field": "reason.NOPE", "op": "eq", "value": True}}
            ]
        ),
        lambda d: d.pop("version"),
        lambda d: d.update(surprise=1),
    ],
)
def test_malformed_ruleset_is_a_deny(mutate: Any) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(PolicyError):
        KycRuleset.from_policy(doc)


@pytest.mark.parametrize("raw", [None, [], "ruleset", 3])
def test_non_object_ruleset_is_a_deny(raw: Any) -> None:
    with pytest.raises(PolicyError):
        KycRuleset.from_policy(raw)
