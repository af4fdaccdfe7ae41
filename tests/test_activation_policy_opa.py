"""The activation/experiment Rego module on real Go OPA (opa-golib-python-bindings, when
installed; see FIELD-NOTES): its tests pass there too, and both engines give the same
decisions, including on inputs with fields missing (total over its input)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.policy.bundle import default_bundle_path, load_bundle
from engine.policy.engines import EmbeddedEngine

opa = pytest.importorskip("opa_bindings")

MODULE_TEST = "personagov/activation_test.rego"

ANALYST = {
    "id": "a",
    "roles": ["regional_analyst"],
    "home_region": "EU",
    "jurisdictions": ["EU-DE"],
}
INPUTS: list[dict[str, Any]] = [
    {},
    {"action": "activate"},
    {"actor": ANALYST, "action": "activate", "resource": {"jurisdiction": "EU-DE"}},
    {
        "actor": ANALYST,
        "action": "activate",
        "resource": {
            "jurisdiction": "EU-DE",
            "purpose": "marketing_segmentation",
            "version": {"validity": "valid", "approved": True},
            "destination": {"region": "US", "channel": "phone", "transfer_mechanism": "x"},
            "consent_rechecked": True,
            "obligations": ["suppress_channel:phone"],
        },
    },
    {"actor": ANALYST, "action": "experiment_promote", "resource": {"jurisdiction": "EU-DE"}},
]


@pytest.fixture(scope="module")
def engines() -> tuple[Any, EmbeddedEngine]:
    bundle = load_bundle(default_bundle_path())
    real = opa.OpaEngine()
    for path, text in bundle.modules.items():
        # Only this module's tests: other modules' tests belong to their own parity checks.
        if not path.endswith("_test.rego") or path == MODULE_TEST:
            real.add_policy(path, text)
    for key, doc in bundle.data.items():
        real.add_data(doc, path=key)
    return real, EmbeddedEngine(bundle)


def test_module_tests_pass_on_real_opa(engines: tuple[Any, EmbeddedEngine]) -> None:
    real, _ = engines
    text = load_bundle(default_bundle_path()).modules[MODULE_TEST]
    names = re.findall(r"^(test_\w+)", text, re.M)
    assert len(names) >= 10
    failed = [
        n for n in names if real.eval_document(f"personagov.activation_test.{n}", {}) is not True
    ]
    assert failed == []


@pytest.mark.parametrize("doc", INPUTS)
def test_both_engines_decide_the_same(engines: tuple[Any, EmbeddedEngine], doc: dict) -> None:
    real, embedded = engines
    for rule in ("decision", "authz"):
        want = real.eval_document(f"personagov.activation.{rule}", doc)
        got = embedded.query(f"personagov.activation.{rule}", doc)
        assert got == want, rule
