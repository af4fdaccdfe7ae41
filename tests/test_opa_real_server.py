"""`[policy] engine = "opa"` against a real OPA REST endpoint (Go OPA through its bindings,
tests/opa_server_support.py): the same plans, digests and authorizations as the embedded
engine for every jurisdiction and purpose of the sample."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opa_server_support import RealOpaServer, real_opa_server
from test_policy_support import BUNDLE, make_ws, request, require_real_opa

from engine.config import Purpose
from engine.errors import PolicyDenied, PolicyError
from engine.policy import EmbeddedEngine, OpaEngine, authorize, evaluate, load_bundle
from engine.policy.decide import engine_for
from engine.workspace import Workspace


@pytest.fixture(scope="module")
def server() -> Iterator[RealOpaServer]:
    require_real_opa()
    with real_opa_server(load_bundle(BUNDLE)) as srv:
        yield srv


@pytest.fixture(scope="module")
def embedded_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="module")
def opa_ws(tmp_path_factory: pytest.TempPathFactory, server: RealOpaServer) -> Workspace:
    return make_ws(
        tmp_path_factory.mktemp("opa"),
        f'[policy]\nengine = "opa"\nopa_url = "{server.url}"\ntimeout_seconds = 5.0',
    )


def _actor_for(ws: Workspace, jurisdiction: str, purpose: Purpose) -> str:
    if purpose == Purpose.KYC_AML:
        return "compliance-lead"
    return next(
        a
        for a, spec in sorted(ws.config.actors.items())
        if jurisdiction in spec.jurisdictions and spec.roles[0].value == "regional_analyst"
    )


SAMPLE_JURISDICTIONS = [
    "EU-DE",
    "EU-FR",
    "EU-ES",
    "EU-IT",
    "EU-NL",
    "UK",
    "US-CA",
    "US-NY",
    "SG",
    "BR",
]


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("jurisdiction", SAMPLE_JURISDICTIONS)
def test_opa_mode_plan_equals_embedded_for_every_jurisdiction_and_purpose(
    embedded_ws: Workspace,
    opa_ws: Workspace,
    server: RealOpaServer,
    jurisdiction: str,
    purpose: Purpose,
) -> None:
    req = request(_actor_for(embedded_ws, jurisdiction, purpose), jurisdiction, purpose.value)
    assert isinstance(engine_for(opa_ws), OpaEngine)
    before = server.requests
    remote = evaluate(opa_ws, req)  # the engine comes from [policy] in pgov.toml
    assert server.requests == before + 1
    local = evaluate(embedded_ws, req, EmbeddedEngine(load_bundle(BUNDLE)))
    assert remote.allowed, remote.deny_reasons
    assert remote.canonical_json() == local.canonical_json()
    assert remote.digest() == local.digest()


@pytest.mark.parametrize(
    ("actor", "jurisdiction", "purpose"),
    [
        ("compliance-lead", "EU-DE", "marketing_segmentation"),
        ("analyst-eu", "UK", "marketing_segmentation"),
        ("data-engineer", "EU-DE", "credit_risk_segmentation"),
    ],
)
def test_opa_mode_denies_like_embedded(
    embedded_ws: Workspace, opa_ws: Workspace, actor: str, jurisdiction: str, purpose: str
) -> None:
    req = request(actor, jurisdiction, purpose)
    remote = evaluate(opa_ws, req)
    local = evaluate(embedded_ws, req, EmbeddedEngine(load_bundle(BUNDLE)))
    assert not remote.allowed
    assert remote.deny_reasons == local.deny_reasons
    assert remote.digest() == local.digest()


@pytest.mark.parametrize(
    ("actor", "action", "resource"),
    [
        ("kyc-ops", "reidentify", {"jurisdiction": "EU-DE", "domain": "kyc"}),
        ("kyc-ops", "reidentify", {"jurisdiction": "EU-DE", "domain": "marketing"}),
        ("analyst-eu", "reidentify", {"jurisdiction": "EU-DE", "domain": "kyc"}),
        ("compliance-lead", "approve_version", {"jurisdiction": "SG"}),
        (
            "compliance-lead",
            "kyc_approve",
            {"jurisdiction": "EU-DE", "requested_by": "compliance-lead"},
        ),
        ("data-engineer", "rotate_keys", {}),
        ("analyst-sg", "kyc_read", {"jurisdiction": "SG"}),
    ],
)
def test_opa_mode_authorizes_like_embedded(
    embedded_ws: Workspace, opa_ws: Workspace, actor: str, action: str, resource: dict[str, str]
) -> None:
    def outcome(ws: Workspace, engine: object | None) -> list[str]:
        try:
            authorize(ws, actor, action, resource, engine)  # type: ignore[arg-type]
        except PolicyDenied as exc:
            return exc.reasons
        return []

    assert outcome(opa_ws, None) == outcome(embedded_ws, EmbeddedEngine(load_bundle(BUNDLE)))


def test_real_opa_undefined_document_denies(server: RealOpaServer) -> None:
    with pytest.raises(PolicyError) as err:
        OpaEngine(server.url).query("personagov.no_such_package.decision", {})
    assert err.value.reasons == ["policy.undefined"]


def test_server_on_an_edited_bundle_is_refused_by_revision(
    tmp_path: Path, embedded_ws: Workspace
) -> None:
    """An OPA serving another bundle revision than the one we record: deny, not a plan."""
    require_real_opa()
    root = tmp_path / "bundle"
    import shutil

    shutil.copytree(BUNDLE, root)
    data = (root / "data.json").read_text(encoding="utf-8")
    rev = load_bundle(BUNDLE).revision
    (root / "data.json").write_text(data.replace(f'"{rev}"', '"someone-elses"'), encoding="utf-8")
    with real_opa_server(load_bundle(root)) as srv:
        plan = evaluate(
            embedded_ws,
            request("analyst-eu", "EU-DE", "marketing_segmentation"),
            OpaEngine(srv.url),
        )
    assert not plan.allowed
    assert "bundle.revision_mismatch" in plan.deny_reasons
