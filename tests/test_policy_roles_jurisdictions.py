"""Privacy roles and jurisdictions are declared in the workspace: Rego reads roles, never
column names; a missing role denies naming role and rule; a jurisdiction the bundle does not
ship is declared as data; the reason catalogue covers every code; decisions replay."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import BUNDLE, DEFAULT_TOML, make_ws, request
from typer.testing import CliRunner

from engine.cli import app
from engine.config import PrivacyRole, parse_config
from engine.errors import ConfigError, ExitCode, PolicyDenied
from engine.policy import build_input, decide, evaluate, load_bundle
from engine.policy.catalogue import lookup
from engine.workspace import Workspace

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def _defaults() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))


# A lender's single table: its own names, integer ids, its own consent columns.
ACCOUNTS_TOML = """
name = "lender"
jurisdictions = ["EU-DE", "US-CA", "US-TX"]
subjects = "accounts"

[actors.ana]
roles = ["regional_analyst"]
home_region = "EU"
jurisdictions = ["EU-DE"]

[actors.tex]
roles = ["regional_analyst"]
home_region = "US"
jurisdictions = ["US-CA", "US-TX"]

[sources.accounts]
path = "data/accounts.csv"
format = "csv"
key = ["acct_no"]
subject_column = "acct_no"
jurisdiction_column = "region"

[sources.accounts.columns]
acct_no = { type = "int", classification = "direct_identifier", required = true }
region = { type = "str", classification = "technical", required = true }
born = { type = "date", classification = "quasi_identifier", role = "date_of_birth" }
basis = { type = "str", classification = "consent", role = "lawful_basis_marketing" }
mkt_ok = { type = "bool", classification = "consent", role = "marketing_consent" }
withdrawn = { type = "bool", classification = "consent", role = "consent_withdrawn" }
no_dm = { type = "bool", classification = "consent", role = "objection_direct_marketing" }
forget_me = { type = "bool", classification = "consent", role = "erasure_requested" }
balance = { type = "float", classification = "financial" }
"""


def _accounts_ws(tmp_path: Path, extra: str = "") -> Workspace:
    root = tmp_path / "lender"
    root.mkdir(parents=True)
    (root / "pgov.toml").write_text(ACCOUNTS_TOML + extra, encoding="utf-8")
    return Workspace.open(root)


def test_roles_map_to_the_workspaces_own_columns(tmp_path: Path) -> None:
    ws = _accounts_ws(tmp_path)
    doc = build_input(ws, request("ana", "EU-DE", "marketing_segmentation"))
    assert doc["subjects"] == "accounts"
    assert doc["roles"] == {
        "consent_withdrawn": "withdrawn",
        "date_of_birth": "born",
        "erasure_requested": "forget_me",
        "lawful_basis_marketing": "basis",
        "marketing_consent": "mkt_ok",
        "objection_direct_marketing": "no_dm",
    }
    plan = decide(ws, request("ana", "EU-DE", "marketing_segmentation"))
    fields = set(re.findall(r'"field":"([^"]+)"', plan.canonical_json().decode()))
    # The conditions read this workspace's columns (and the age enforce derives from `born`),
    # never the sample's names.
    assert {"mkt_ok", "basis", "withdrawn", "no_dm", "forget_me", "age_years"} <= fields
    assert not fields & {"marketing_consent", "gpc_signal", "erasure_requested"}


def test_missing_role_denies_naming_role_rule_and_remedy(tmp_path: Path) -> None:
    ws = _accounts_ws(tmp_path)
    with pytest.raises(PolicyDenied) as err:
        decide(ws, request("tex", "US-CA", "marketing_segmentation"))
    assert "role.missing:gpc:ccpa.gpc_signal" in err.value.reasons
    assert "role.missing:limit_sensitive_pi:ccpa.limit_sensitive_pi" in err.value.reasons
    assert "rule ccpa.gpc_signal needs the privacy role 'gpc'" in err.value.message
    assert "source 'accounts'" in err.value.message
    # Not an unknown-field error, and the credit purpose (no marketing rules) still runs.
    assert not any("unknown" in r for r in err.value.reasons)


def test_explain_lists_roles_needed_and_provided(tmp_path: Path) -> None:
    ws = _accounts_ws(tmp_path)
    result = runner.invoke(
        app,
        ["policy", "explain", "-w", str(ws.root), "-j", "US-CA", "-p",
         "marketing_segmentation", "-a", "tex", "--as-of", "2026-11-23", "--json"],
    )  # fmt: skip
    assert result.exit_code == ExitCode.POLICY_DENIED
    doc = json.loads(result.stdout)
    needed = {(n["rule"], n["role"]): n["provided_by"] for n in doc["roles_needed"]}
    assert needed[("ccpa.gpc_signal", "gpc")] is None
    assert needed[("ccpa.minor_no_opt_in", "date_of_birth")] == "born"
    assert needed[("erasure.requested", "erasure_requested|deletion_requested")] == "forget_me"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["sources"]["crm"]["columns"]["signup_date"].update(role="date_of_birth"),
            "sources.crm.columns.signup_date.role: role 'date_of_birth' is already declared at "
            "sources.crm.columns.date_of_birth.role",
        ),
        (
            lambda c: c["sources"]["bureau"]["columns"]["credit_score"].update(role="gpc"),
            "role 'gpc' needs a column of type bool",
        ),
        (
            lambda c: (
                c["sources"]["crm"]["columns"]["gpc_signal"].pop("role"),
                c["sources"]["outcomes"]["columns"]["converted"].update(role="gpc"),
            ),
            "sources.outcomes.columns.converted.role: role 'gpc' must be on a column of the "
            "subjects source 'crm'",
        ),
        (lambda c: c.update(subjects="customers"), "subjects: 'customers' is not a declared"),
        (
            lambda c: c.update(jurisdiction_data={"US-TX": {"country": "usa", "region": "US"}}),
            "jurisdiction_data.US-TX",
        ),
        (
            lambda c: c["sources"]["crm"]["columns"]["gpc_signal"].update(role="telepathy"),
            "sources.crm.columns.gpc_signal.role",
        ),
    ],
)
def test_bad_role_and_jurisdiction_declarations_name_the_key_path(
    mutate: Any, message: str
) -> None:
    cfg = copy.deepcopy(_defaults())
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        parse_config(cfg, "pgov.toml")
    assert message in str(err.value)


def test_sample_provides_every_role_the_bundle_reads(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    roles = build_input(ws, request("analyst-eu", "EU-DE", "marketing_segmentation"))["roles"]
    # Columns of crm, plus the request facts enforce derives from privacy_request_type.
    request_roles = {PrivacyRole.PRIVACY_REQUEST_TYPE, PrivacyRole.PRIVACY_REQUEST_DATE}
    assert set(roles) == {r.value for r in PrivacyRole} - request_roles
    assert roles["gpc"] == "gpc_signal"


OVERLAY = """
[jurisdiction_data.US-TX]
country = "US"
region = "US"
regime = "us_baseline"
digital_consent_age = 13
"""


def test_undeclared_jurisdiction_is_denied_with_how_to_declare_it(tmp_path: Path) -> None:
    ws = _accounts_ws(tmp_path)
    with pytest.raises(PolicyDenied) as err:
        decide(ws, request("tex", "US-TX", "credit_risk_segmentation"))
    assert err.value.reasons == ["jurisdiction.unknown"]
    assert "[jurisdiction_data.<TAG>]" in err.value.message


def test_jurisdiction_declared_as_data_decides_and_is_recorded(tmp_path: Path) -> None:
    ws = _accounts_ws(tmp_path, OVERLAY)
    req = request("tex", "US-TX", "credit_risk_segmentation")
    plan = decide(ws, req)
    assert plan.regime == "us_baseline"
    doc = build_input(ws, req)
    assert doc["jurisdiction_data"]["US-TX"]["digital_consent_age"] == 13
    # The overlay is part of the input digest lineage records.
    bare = _accounts_ws(tmp_path / "x", OVERLAY.replace("= 13", "= 14"))
    assert evaluate(bare, req).input_digest != plan.input_digest


def test_us_ny_children_rule_uses_13_and_us_law(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    plan = decide(ws, request("analyst-us", "US-NY", "marketing_segmentation"))
    child = next(r for r in plan.subject_exclusions if r.reason == "us_baseline.child")
    assert child.condition.to_json()["any"][0]["value"] == 13
    articles = {a.article for sp in plan.sources.values() for a in sp.columns.values()}
    assert not any("GDPR" in a for a in articles)


# ---------------------------------------------------------------- catalogue


def _codes_in_sources() -> set[str]:
    codes: set[str] = set()
    for p in sorted((REPO / "policies").rglob("*.rego")):
        if p.name.endswith("_test.rego"):
            continue
        text = p.read_text(encoding="utf-8")
        codes |= set(re.findall(r'contains "([a-z_.:]+)"', text))
        codes |= set(re.findall(r'lib\.rule\(\s*"([a-z_.]+)"', text))
        codes |= set(re.findall(r'"reason": "([a-z_.]+)"', text))
        codes |= {c.split("%")[0] for c in re.findall(r'sprintf\("([a-z_.:%]+)"', text)}
    for p in sorted((REPO / "engine" / "policy").glob("*.py")):
        codes |= set(re.findall(r'reasons=\["([a-z_.:]+)"\]', p.read_text(encoding="utf-8")))
        codes |= set(re.findall(r'"(bundle\.[a-z_]+)"', p.read_text(encoding="utf-8")))
    return {c.rstrip(":") for c in codes if "." in c or ":" in c}


def test_every_reason_code_has_a_catalogue_entry() -> None:
    bundle = load_bundle(BUNDLE)
    codes = _codes_in_sources()
    assert len(codes) > 60
    missing = sorted(c for c in codes if lookup(bundle, c) is None)
    assert not missing, missing
    entry = lookup(bundle, "role.missing:gpc:ccpa.gpc_signal")
    assert entry is not None and "role" in entry.text


@pytest.mark.parametrize(
    ("actor", "action", "extra", "code"),
    [
        ("analyst-eu", "reidentify", ["--resource", "domain=kyc"], 3),
        ("kyc-ops", "reidentify", ["--resource", "domain=kyc"], 0),
        ("analyst-eu", "approve_version", [], 3),
        ("analyst-sg", "kyc_read", [], 3),
        ("data-engineer", "rotate_keys", [], 0),
    ],
)
def test_explain_other_actions_with_reasons(
    tmp_path: Path, actor: str, action: str, extra: list[str], code: int
) -> None:
    ws = make_ws(tmp_path)
    result = runner.invoke(
        app,
        ["policy", "explain", "-w", str(ws.root), "--action", action, "-a", actor,
         "-j", "EU-DE", "--json", *extra],
    )  # fmt: skip
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["allow"] is (code == 0)
    for r in doc["reasons"]:
        assert r["article"] and r["text"] and r["text"] != "no catalogue entry for this code"


# ---------------------------------------------------------------- replay


def test_explain_input_out_replays_to_the_same_plan(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    inp = tmp_path / "input.json"
    explained = runner.invoke(
        app,
        ["policy", "explain", "-w", str(ws.root), "-j", "EU-DE", "-p", "marketing_segmentation",
         "-a", "analyst-eu", "--as-of", "2026-11-23", "--json", "--input-out", str(inp)],
    )  # fmt: skip
    assert explained.exit_code == 0, explained.output
    replayed = runner.invoke(app, ["policy", "eval", "-w", str(ws.root), "-i", str(inp), "--json"])
    assert replayed.exit_code == 0, replayed.output
    a, b = json.loads(explained.stdout), json.loads(replayed.stdout)
    assert b["plan_digest"] == a["plan_digest"]
    assert b["input_digest"] == a["input_digest"]
    assert b["result"]["allow"] is True
    doc = json.loads(inp.read_text())
    doc["as_of"] = "2026-02-30"
    inp.write_text(json.dumps(doc))
    bad = runner.invoke(app, ["policy", "eval", "-w", str(ws.root), "-i", str(inp), "--json"])
    assert bad.exit_code == ExitCode.POLICY_DENIED
    assert json.loads(bad.stdout)["result"]["deny"] == ["input.invalid:as_of"]
