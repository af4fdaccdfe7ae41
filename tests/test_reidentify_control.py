"""Controlled re-identification: authorised, audited without cleartext, refuses otherwise."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_actor_support import enrol_actors
from typer.testing import CliRunner

import engine.policy  # noqa: F401  (imported before any test swaps engine.policy.decide)
from engine import audit
from engine.cli import app
from engine.errors import BadInputError, KeyMaterialError, PolicyDenied, UsageError
from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.reidentify import queue_tokens, reidentify, token_digest
from engine.pseudonym.vault import Vault
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"
ALLOWED = "kyc-ops"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "pgov.toml").write_text(DEFAULTS.read_text())
    keyfile = tmp_path / "keys" / "master.key"
    keyfile.parent.mkdir()
    keyfile.write_bytes(Keyring.generate().document())
    os.chmod(keyfile, 0o600)
    ws = Workspace.open(tmp_path)
    enrol_actors(ws)  # actors' credentials, so the CLI can authenticate them
    return ws


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def record(ws: Workspace, event_type: str, actor: str, **details: Any) -> int:
        events.append({"type": event_type, "actor": actor, **details})
        return len(events) - 1

    monkeypatch.setattr(audit, "record", record)
    return events


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any]]]:
    """A stand-in policy: only kyc-ops may reidentify (the real bundle is tested elsewhere)."""
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def authorize(ws: Workspace, actor: str, action: str, resource: dict[str, Any]) -> None:
        calls.append((actor, action, resource))
        if actor != ALLOWED:
            raise PolicyDenied(f"policy denies '{action}'", reasons=["not_kyc_operations"])

    fake = types.ModuleType("engine.policy.decide")
    fake.authorize = authorize  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.policy.decide", fake)
    return calls


def _publish(ws: Workspace, toks: list[str], jurisdiction: str = "EU-DE") -> None:
    """Put tokens into a published kyc_aml version of `jurisdiction`: where a token comes
    from is what decides whose scope its re-identification needs."""
    vdir = ws.versions_dir(jurisdiction, "kyc_aml") / "v0001"
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "manifest.json").write_text(json.dumps({"jurisdiction": jurisdiction}))
    path = vdir / "routing.parquet"
    old = pl.read_parquet(path)["customer_id"].to_list() if path.is_file() else []
    pl.DataFrame({"customer_id": old + toks}).write_parquet(path)


def _tokens(
    ws: Workspace, values: list[str], jurisdiction: str = "EU-DE", scheme: str = "vault"
) -> list[str]:
    """Tokens as a refresh makes them: kv tokens filed in the workspace's vault (or old-style
    AES-SIV `k` tokens with scheme="siv"), published in a version of `jurisdiction`."""
    pseudo = Pseudonymiser(Keyring.load(ws), scheme=scheme, vault=Vault.for_workspace(ws))
    toks = pseudo.tokenise(values, "customer_id", "kyc")  # type: ignore[arg-type]
    pseudo.flush()
    out = [t for t in toks if t is not None]
    _publish(ws, out, jurisdiction)
    return out


def test_authorised_actor_gets_values_and_audit_has_only_digests(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    toks = _tokens(ws, ["CUST-000123", "CUST-000456"])
    assert reidentify(ws, ALLOWED, toks, "customer_id") == ["CUST-000123", "CUST-000456"]
    resource = {"domain": "kyc", "column": "customer_id", "jurisdiction": "EU-DE"}
    assert policy == [(ALLOWED, "reidentify", resource)]
    [event] = audited
    assert event["type"] == "reidentification" and event["outcome"] == "revealed"
    assert event["count"] == 2 and event["column"] == "customer_id"
    assert event["token_digests"] == [hashlib.sha256(t.encode()).hexdigest() for t in toks]
    text = json.dumps(event)
    assert "CUST-000123" not in text and toks[0] not in text


def test_denied_actor_gets_nothing_and_the_attempt_is_audited(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    toks = _tokens(ws, ["CUST-000123"])
    with pytest.raises(PolicyDenied):
        reidentify(ws, "analyst-eu", toks, "customer_id")
    assert [(e["actor"], e["outcome"], e["reason"]) for e in audited] == [
        ("analyst-eu", "refused", "PolicyDenied")
    ]


def test_missing_policy_layer_refuses(
    ws: Workspace, audited: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "engine.policy.decide", None)  # import fails
    with pytest.raises(PolicyDenied, match="not available"):
        reidentify(ws, ALLOWED, _tokens(ws, ["C1"]), "customer_id")
    assert audited[0]["outcome"] == "refused"


def test_marketing_tokens_are_refused_before_policy(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    [m] = Pseudonymiser(Keyring.load(ws)).tokenise(["C1"], "customer_id", "marketing")
    assert m is not None
    with pytest.raises(KeyMaterialError, match="irreversible"):
        reidentify(ws, ALLOWED, [m], "customer_id")
    assert policy == [] and audited[0]["outcome"] == "refused"


def test_altered_token_or_wrong_key_never_returns_garbage(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    good, other = _tokens(ws, ["C1", "C2"])
    altered = other[:-2] + ("aa" if other[-2:] != "aa" else "bb")
    _publish(ws, [altered])  # even a token planted in a version never decrypts to garbage
    with pytest.raises(KeyMaterialError, match="not in the token vault"):
        reidentify(ws, ALLOWED, [good, altered], "customer_id")
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        reidentify(ws, ALLOWED, [good], "customer_id", keyring=Keyring.generate())
    old_good, old_other = _tokens(ws, ["C1", "C2"], scheme="siv")
    flipped = old_other[:-2] + ("AA" if old_other[-2:] != "AA" else "BB")
    _publish(ws, [flipped])
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        reidentify(ws, ALLOWED, [old_good, flipped], "customer_id")
    assert all(e["outcome"] == "refused" for e in audited)
    with pytest.raises(UsageError):
        reidentify(ws, ALLOWED, [], "customer_id")


def test_tokens_survive_rotation(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    from engine.pseudonym.lifecycle import rotate_master

    siv = _tokens(ws, ["C9"], scheme="siv")  # published before the token vault existed
    old = _tokens(ws, ["C9"])
    assert rotate_master(ws, "data-engineer") == 2
    new = _tokens(ws, ["C9"])
    assert new[0].startswith("kv2.") and old[0].startswith("kv1.") and siv[0].startswith("k1.")
    assert reidentify(ws, ALLOWED, siv + old + new, "customer_id") == ["C9", "C9", "C9"]


def test_queue_files_parquet_and_json(ws: Workspace, tmp_path: Path) -> None:
    toks = _tokens(ws, ["C1", "C2", "C3"])
    vdir = tmp_path / "v1"
    vdir.mkdir()
    pl.DataFrame({"customer_id": toks, "queue": ["EDD", "CDD", "EDD"]}).write_parquet(
        vdir / "routing.parquet"
    )
    assert queue_tokens("EDD", vdir) == [toks[0], toks[2]]
    listed = tmp_path / "q.json"
    listed.write_text(json.dumps({"tokens": toks[:2]}))
    assert queue_tokens(str(listed), None) == toks[:2]
    with pytest.raises(UsageError):
        queue_tokens("EDD", None)


def test_cli_reidentify_prints_values_and_refuses_unauthorised(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    toks = _tokens(ws, ["CUST-1", "CUST-2"])
    runner = CliRunner()
    args = ["reidentify", "-w", str(ws.root), "--column", "customer_id"]
    no_reason = runner.invoke(app, [*args, "--actor", ALLOWED, "--token", toks[0]])
    assert no_reason.exit_code == 2 and "CUST-1" not in no_reason.output
    args += ["--reason", "EDD review of a flagged transfer", "--case", "AML-2026-0042"]
    ok = runner.invoke(app, [*args, "--actor", ALLOWED, "--token", toks[0], "--token", toks[1]])
    assert ok.exit_code == 0, ok.output
    assert "CUST-1" in ok.output and "CUST-2" in ok.output
    revealed = audited[-1]
    assert revealed["case"] == "AML-2026-0042" and len(revealed["reason_sha256"]) == 64
    # Each revealed token is in the log as its digest, never in clear.
    assert revealed["token_digests"] == [token_digest(t) for t in toks]
    assert not any(t in json.dumps(revealed) for t in toks)
    denied = runner.invoke(app, [*args, "--actor", "analyst-eu", "--token", toks[0]])
    assert denied.exit_code == 3
    assert "CUST-1" not in denied.output
    both = runner.invoke(app, [*args, "--actor", ALLOWED])
    assert both.exit_code == 2


def test_real_policy_denies_an_analyst(ws: Workspace, audited: list[dict[str, Any]]) -> None:
    """Whatever state the bundle is in, an analyst never re-identifies (fail closed)."""
    with pytest.raises(PolicyDenied):
        reidentify(ws, "analyst-eu", _tokens(ws, ["C1"]), "customer_id")


def test_real_policy_lets_kyc_operations_reidentify(
    ws: Workspace, audited: list[dict[str, Any]]
) -> None:
    toks = _tokens(ws, ["CUST-000777"])
    assert reidentify(ws, "kyc-ops", toks, "customer_id") == ["CUST-000777"]
    assert audited[-1]["outcome"] == "revealed"


def test_unknown_key_version_is_refused(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    [tok] = _tokens(ws, ["C1"])
    future = "k9." + tok.split(".", 1)[1]
    _publish(ws, [future])
    with pytest.raises(KeyMaterialError, match="version 9 is unknown"):
        reidentify(ws, ALLOWED, [future], "customer_id")
    assert audited[-1]["outcome"] == "refused"


def test_queue_from_an_outbox_jsonl_file(ws: Workspace, tmp_path: Path) -> None:
    toks = _tokens(ws, ["C1", "C2"])
    outbox = tmp_path / "v0001.jsonl"
    outbox.write_text("\n".join(json.dumps({"customer": t, "queue": "edd-review"}) for t in toks))
    assert queue_tokens(str(outbox), None) == toks
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"customer": 5}\n')
    with pytest.raises(BadInputError):
        queue_tokens(str(bad), None)


def test_token_in_no_published_version_is_refused_and_audited(
    ws: Workspace, audited: list[dict[str, Any]], policy: list[Any]
) -> None:
    toks = Pseudonymiser(Keyring.load(ws)).tokenise(["C1"], "customer_id", "kyc")  # type: ignore[arg-type]
    with pytest.raises(PolicyDenied, match="no published version"):
        reidentify(ws, ALLOWED, [t for t in toks if t], "customer_id")
    assert policy == []  # refused before the policy: there is no jurisdiction to decide on
    assert audited[-1]["outcome"] == "refused"
    assert audited[-1]["policy_reasons"] == ["reidentify.jurisdiction_unknown"]


def test_real_policy_decides_on_the_tokens_own_jurisdiction(
    ws: Workspace, audited: list[dict[str, Any]]
) -> None:
    """A UK-only KYC operator re-identifies UK tokens and no others (issue 14: cross-border)."""
    text = (ws.root / "pgov.toml").read_text()
    text += '\n[actors.kyc-ops-uk]\nroles = ["kyc_operations"]\nhome_region = "UK"\n'
    text += 'jurisdictions = ["UK"]\n'
    (ws.root / "pgov.toml").write_text(text)
    uk_ws = Workspace.open(ws.root)
    uk = _tokens(uk_ws, ["UK-1"], "UK")
    de = _tokens(uk_ws, ["DE-1"], "EU-DE")
    assert reidentify(uk_ws, "kyc-ops-uk", uk, "customer_id") == ["UK-1"]
    for toks in (de, uk + de):
        with pytest.raises(PolicyDenied, match="jurisdiction_not_assigned"):
            reidentify(uk_ws, "kyc-ops-uk", toks, "customer_id")
        assert audited[-1]["outcome"] == "refused"
        assert "EU-DE" in audited[-1]["jurisdictions"]
