"""decide / authorize: the input document, deny paths with clear reasons, the plan's
canonical form, and Python's refusal of plans that would leak (defence in depth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import BUNDLE, copy_bundle, make_ws, request

from engine.errors import PolicyDenied, PolicyError
from engine.policy import (
    EmbeddedEngine,
    EnforcementPlan,
    authorize,
    build_input,
    decide,
    evaluate,
    load_bundle,
)
from engine.policy.decide import DECISION_PATH, plan_from_decision
from engine.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("decide"))


def test_input_document_shape(ws: Workspace) -> None:
    doc = build_input(ws, request("analyst-uk", "UK", "marketing_segmentation"))
    assert doc["actor"] == {
        "id": "analyst-uk",
        "roles": ["regional_analyst"],
        "home_region": "UK",
        "jurisdictions": ["UK"],
    }
    assert (doc["purpose"], doc["jurisdiction"], doc["subjects"], doc["as_of"]) == (
        "marketing_segmentation",
        "UK",
        "crm",
        "2026-11-23",
    )
    # Roles, not column names: the sample's GPC flag is its column gpc_signal; request facts
    # are derived by enforce from the privacy_request_type column.
    assert doc["roles"]["gpc"] == "gpc_signal"
    assert doc["roles"]["do_not_sell_share"] == "ccpa_do_not_sell_share"
    assert doc["roles"]["erasure_requested"] == "erasure_requested"
    assert "country" not in doc  # the country comes from the jurisdiction's data
    assert doc["sources"]["transactions"] == {
        "columns": {
            "txn_id": "technical",
            "customer_id": "direct_identifier",
            "jurisdiction": "technical",
            "ts": "behavioural",
            "amount": "financial",
            "direction": "financial",
            "merchant_category": "behavioural",
            "channel": "behavioural",
        },
        "subject_column": "customer_id",
        "record_date_column": "ts",
        "record_date_type": "datetime",
        "open_condition": None,
    }
    assert doc["sources"]["loans"]["open_condition"] == {
        "field": "status",
        "op": "in",
        "value": ["active", "defaulted"],
    }
    assert {"age_years", "erasure_requested", "marketing_consent"} <= set(doc["subject_fields"])


def test_unknown_actor_is_denied_before_any_query(ws: Workspace) -> None:
    with pytest.raises(PolicyDenied) as err:
        decide(ws, request("mallory", "EU-DE", "marketing_segmentation"))
    assert err.value.reasons == ["access.unknown_actor"]
    with pytest.raises(PolicyDenied):
        authorize(ws, "mallory", "verify", {})


@pytest.mark.parametrize(
    ("actor", "jurisdiction", "purpose", "reasons"),
    [
        ("analyst-eu", "UK", "marketing_segmentation", ["access.jurisdiction_not_assigned"]),
        (
            "compliance-lead",
            "EU-DE",
            "marketing_segmentation",
            ["access.compliance_cannot_run_marketing", "access.purpose_not_permitted_for_role"],
        ),
        ("kyc-ops", "EU-DE", "marketing_segmentation", ["access.purpose_not_permitted_for_role"]),
        (
            "analyst-eu",
            "EU-XX",
            "marketing_segmentation",
            ["access.jurisdiction_not_assigned", "jurisdiction.unknown"],
        ),
    ],
)
def test_denies_carry_reasons_and_a_clear_message(
    ws: Workspace, actor: str, jurisdiction: str, purpose: str, reasons: list[str]
) -> None:
    with pytest.raises(PolicyDenied) as err:
        decide(ws, request(actor, jurisdiction, purpose))
    assert err.value.reasons == reasons
    assert actor in err.value.message and reasons[0] in err.value.message


def test_cross_border_actor_without_mechanism_is_denied(tmp_path: Path) -> None:
    text = (make_ws(tmp_path).config_path).read_text()
    text += (
        '\n[actors.analyst-us-br]\nroles = ["regional_analyst"]\nhome_region = "US"\n'
        'jurisdictions = ["BR"]\n'
    )
    (tmp_path / "ws" / "pgov.toml").write_text(text)
    ws2 = Workspace.open(tmp_path / "ws")
    with pytest.raises(PolicyDenied) as err:
        decide(ws2, request("analyst-us-br", "BR", "marketing_segmentation"))
    assert err.value.reasons == ["transfer.no_adequacy_or_mechanism"]


def test_transfer_mechanism_is_an_obligation(ws: Workspace) -> None:
    plan = decide(ws, request("compliance-lead", "SG", "kyc_aml"))
    assert "transfer_mechanism:intra_group_binding_corporate_rules" in plan.obligations


def test_kyc_plan_carries_the_ruleset_opaque(ws: Workspace) -> None:
    plan = decide(ws, request("kyc-ops", "EU-DE", "kyc_aml"))
    assert isinstance(plan.kyc_ruleset, dict) and plan.kyc_ruleset
    assert plan.subject_domain == "kyc"
    assert decide(ws, request("analyst-eu", "EU-DE", "marketing_segmentation")).kyc_ruleset is None


def test_kyc_without_ruleset_is_denied(tmp_path: Path, ws: Workspace) -> None:
    root = copy_bundle(tmp_path)
    shutil.rmtree(root / "kyc")
    engine = EmbeddedEngine(load_bundle(root))
    with pytest.raises(PolicyDenied) as err:
        decide(ws, request("kyc-ops", "EU-DE", "kyc_aml"), engine)
    assert err.value.reasons == ["kyc.ruleset_undefined"]


def test_plan_canonical_json_and_digest_are_stable(ws: Workspace) -> None:
    req = request("analyst-us", "US-CA", "marketing_segmentation")
    a, b = decide(ws, req), decide(ws, req)
    assert a.canonical_json() == b.canonical_json() and a.digest() == b.digest()
    doc = json.loads(a.canonical_json())
    assert doc["bundle_revision"] == load_bundle(BUNDLE).revision
    assert doc["subject_exclusions"][0]["condition"]  # conditions in their JSON form
    assert EnforcementPlan.model_validate(doc).digest() == a.digest()  # round trip
    later = decide(
        ws,
        request("analyst-us", "US-CA", "marketing_segmentation").model_copy(
            update={"as_of": req.as_of.replace(year=2027)}
        ),
    )
    assert later.digest() != a.digest()


def _doc(ws: Workspace, actor: str, j: str, p: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    req = request(actor, j, p)
    inp = build_input(ws, req)
    engine = EmbeddedEngine(load_bundle(BUNDLE))
    return engine.query(DECISION_PATH, inp), req, inp


@pytest.mark.parametrize(
    ("source", "column", "action", "reason"),
    [
        ("crm", "religion", {"action": "keep"}, "policy.special_category_kept"),
        ("crm", "email", {"action": "keep"}, "policy.identifier_in_clear"),
        ("screening", "pep", {"action": "keep"}, "policy.screening_outside_kyc"),
        ("loans", "customer_id", {"action": "keep"}, "policy.subject_key_not_pseudonymised"),
        (
            "loans",
            "customer_id",
            {"action": "pseudonymise", "domain": "kyc", "output": "customer_id"},
            "policy.subject_key_not_pseudonymised",
        ),
        ("crm", "nonexistent", {"action": "keep"}, "policy.unknown_column"),
        ("crm", "annual_income", {"action": "shred"}, "policy.malformed_decision"),
    ],
)
def test_python_refuses_a_leaky_plan_whatever_rego_says(
    ws: Workspace, source: str, column: str, action: dict[str, Any], reason: str
) -> None:
    doc, req, inp = _doc(ws, "analyst-eu", "EU-DE", "marketing_segmentation")
    doc["sources"][source]["columns"][column] = action
    with pytest.raises(PolicyError) as err:
        plan_from_decision(ws, req, doc, load_bundle(BUNDLE), inp)
    assert err.value.reasons == [reason]


def test_column_without_action_is_dropped(ws: Workspace) -> None:
    doc, req, inp = _doc(ws, "analyst-eu", "EU-DE", "marketing_segmentation")
    del doc["sources"]["crm"]["columns"]["annual_income"]
    plan = plan_from_decision(ws, req, doc, load_bundle(BUNDLE), inp)
    assert plan.sources["crm"].columns["annual_income"].action == "drop"
    assert plan.sources["crm"].columns["annual_income"].reason == "no_policy_action"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(allow="yes"), "policy.non_boolean_allow"),
        (lambda d: d.update(allow=None), "policy.non_boolean_allow"),
        (lambda d: d.update(deny=["x"]), "policy.inconsistent"),
        (lambda d: d.pop("sources"), "policy.malformed_decision"),
        (lambda d: d["sources"].pop("loans"), "policy.source_missing"),
        (lambda d: d.update(subject_domain="kyc"), "policy.wrong_domain"),
        (
            lambda d: d.update(subject_exclusions=[{"reason": "x", "condition": {"op": "eq"}}]),
            "policy.malformed_decision",
        ),
    ],
)
def test_malformed_decisions_deny(ws: Workspace, mutate: Any, reason: str) -> None:
    doc, req, inp = _doc(ws, "analyst-eu", "EU-DE", "marketing_segmentation")
    mutate(doc)
    with pytest.raises(PolicyError) as err:
        plan_from_decision(ws, req, doc, load_bundle(BUNDLE), inp)
    assert err.value.reasons == [reason]


def test_denied_without_reason_still_names_one(ws: Workspace) -> None:
    doc, req, inp = _doc(ws, "analyst-eu", "EU-DE", "marketing_segmentation")
    doc.update(allow=False, deny=[])
    plan = plan_from_decision(ws, req, doc, load_bundle(BUNDLE), inp)
    assert not plan.allowed and plan.deny_reasons == ["policy.denied_without_reason"]


def test_undefined_decision_denies(tmp_path: Path, ws: Workspace) -> None:
    root = copy_bundle(tmp_path)
    (root / "personagov" / "decision.rego").unlink()
    (root / "personagov" / "decision_test.rego").unlink()
    (root / "personagov" / "kyc_aml_test.rego").unlink()
    with pytest.raises(PolicyDenied) as err:
        evaluate(
            ws,
            request("analyst-eu", "EU-DE", "marketing_segmentation"),
            EmbeddedEngine(load_bundle(root)),
        )
    assert err.value.reasons == ["policy.undefined"]


def test_workspace_bundle_setting_is_honoured(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    root = copy_bundle(tmp_path, "mybundle")
    manifest = json.loads((root / ".manifest").read_text())
    (root / ".manifest").write_text(json.dumps({**manifest, "revision": "other"}))
    ws2 = make_ws(tmp_path, '[policy]\nengine = "embedded"\nbundle = "mybundle.tar.gz"')
    runner = CliRunner()
    assert runner.invoke(app, ["policy", "keygen", "-w", str(ws2.root)]).exit_code == 0
    built = runner.invoke(
        app,
        ["policy", "build", "-w", str(ws2.root), "--bundle", str(root),
         "-o", str(ws2.root / "mybundle.tar.gz")],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    plan = evaluate(ws2, request("analyst-eu", "EU-DE", "marketing_segmentation"))
    # data.json still says the old revision: the decision came from another bundle revision
    assert plan.bundle_revision == "other"
    assert plan.deny_reasons == ["bundle.revision_mismatch"]


@pytest.mark.parametrize(
    ("actor", "action", "resource", "reasons"),
    [
        ("kyc-ops", "reidentify", {"domain": "kyc"}, None),
        ("kyc-ops", "reidentify", {"domain": "marketing"}, ["access.reidentify_domain_not_kyc"]),
        ("compliance-lead", "reidentify", {"domain": "kyc"}, ["access.role_not_permitted"]),
        ("compliance-lead", "verify", {"jurisdiction": "BR"}, None),
        ("analyst-eu", "verify", {"jurisdiction": "UK"}, ["access.jurisdiction_not_assigned"]),
        ("analyst-eu", "approve_version", {"jurisdiction": "EU-DE"}, ["access.role_not_permitted"]),
        ("kyc-ops", "kyc_override", {"jurisdiction": "SG"}, None),
        ("compliance-deputy", "kyc_approve", {"jurisdiction": "SG"}, None),
        ("data-engineer", "launch_rockets", {}, ["access.unknown_action"]),
    ],
)
def test_authorize(
    ws: Workspace, actor: str, action: str, resource: dict[str, Any], reasons: list[str] | None
) -> None:
    if reasons is None:
        authorize(ws, actor, action, resource)
        return
    with pytest.raises(PolicyDenied) as err:
        authorize(ws, actor, action, resource)
    assert err.value.reasons == reasons
