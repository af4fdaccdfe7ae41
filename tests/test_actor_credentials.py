"""Authenticated actors (issue 14): `--actor X` must be backed by X's own key, every governed
action is a signed request kept in the log, and four eyes is two actors' signatures that a
verifier checks later."""

from __future__ import annotations

import base64
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from typer.testing import CliRunner

from engine.actors import ENV, verify_requests
from engine.cli import app
from lineage.auditlog import AuditLog
from lineage.canonical import canonical_json
from lineage.signing import SigningKeyring, TrustStore

runner = CliRunner()
AS_OF = "2026-11-01"


def _pgov(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def _base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("actors") / "ws"
    assert _pgov("init", str(root), "--sample", "800")[0] == 0
    assert _pgov("keys", "init", "-w", str(root))[0] == 0
    code, out = _pgov(
        "refresh", "-j", "EU-DE", "-p", "kyc_aml", "-a", "kyc-ops", "--as-of", AS_OF,
        "-w", str(root),
    )  # fmt: skip
    assert code in (0, 7), out
    return root


@pytest.fixture()
def ws(_base: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(_base, dest)
    return dest


def _entries(root: Path) -> list[dict[str, Any]]:
    return AuditLog(root / "audit").query()


def _edd(root: Path) -> str:
    vdir = root / "versions" / "EU-DE" / "kyc_aml" / "v0001"
    table = pl.read_parquet(vdir / "routing.parquet")
    return str(table.filter(pl.col("tier") == "EDD")["customer_id"][0])


def _override(root: Path, actor: str) -> tuple[int, str]:
    return _pgov(
        "kyc", "override", "--customer", _edd(root), "--tier", "CDD", "--reason", "checked",
        "--actor", actor, "-j", "EU-DE", "--json", "-w", str(root),
    )  # fmt: skip


def test_init_sample_and_keys_init_enrol_every_declared_actor(ws: Path) -> None:
    enrolled = {
        e["details"]["enrolled_actor"] for e in _entries(ws) if e["type"] == "actor_enrolled"
    }
    from engine.actors import keystore
    from engine.workspace import Workspace

    declared = set(Workspace.open(ws).config.actors)
    assert enrolled == declared
    for actor in declared:  # the private halves live in the keystore, outside the workspace
        assert (keystore() / f"{actor}.pem").is_file()
    assert set(json.loads((ws / "keys" / "actors.json").read_text())["actors"]) == enrolled


def test_an_actor_without_a_credential_is_refused_exit_6_and_audited(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "empty-keystore"))
    code, out = _override(ws, "kyc-ops")
    assert code == 6 and "no credential for actor 'kyc-ops'" in out
    last = _entries(ws)[-1]
    assert last["type"] == "actor_unauthenticated" and last["actor"] == "kyc-ops"
    assert not (ws / "kyc" / "overrides.jsonl").exists()


def test_someone_elses_key_under_a_name_is_refused(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    mine = tmp_path / "attacker-keys"
    mine.mkdir()
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (mine / "compliance-deputy.pem").write_bytes(pem)
    monkeypatch.setenv(ENV, str(mine))
    code, out = _pgov("versions", "approve", "EU-DE/kyc_aml/latest", "--actor",
                      "compliance-deputy", "-w", str(ws))  # fmt: skip
    assert code == 6 and "not signed by the key enrolled" in out
    assert not (ws / "versions" / "EU-DE" / "kyc_aml" / "CURRENT.json").exists()


def test_a_key_swapped_into_the_workspace_is_refused(ws: Path) -> None:
    path = ws / "keys" / "actors.json"
    doc = json.loads(path.read_text())
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    doc["actors"]["compliance-deputy"]["public_key"] = base64.b64encode(other).decode()
    path.write_text(json.dumps(doc))
    code, out = _pgov("versions", "approve", "EU-DE/kyc_aml/latest", "--actor",
                      "compliance-deputy", "-w", str(ws))  # fmt: skip
    assert code == 6 and "different key" in out


def test_four_eyes_is_two_actors_signatures_that_verify_later(ws: Path) -> None:
    code, out = _override(ws, "kyc-ops")
    assert code == 0, out
    oid = json.loads(out)["id"]
    code, out = _pgov("kyc", "approve", "--override", oid, "--actor", "compliance-lead",
                      "-w", str(ws))  # fmt: skip
    assert code == 0, out
    entries = _entries(ws)
    requests = {
        e["details"]["request_id"]: e["actor"] for e in entries if e["type"] == "actor_request"
    }
    req = next(e for e in entries if e["type"] == "kyc_override_requested")
    ok = next(e for e in entries if e["type"] == "kyc_override_approved")
    assert requests[req["details"]["request"]] == "kyc-ops"
    assert requests[ok["details"]["request"]] == "compliance-lead"
    assert verify_requests(entries, TrustStore.load(ws / "keys" / "trust.json")) == []
    assert _pgov("lineage", "verify", "--all", "-w", str(ws))[0] == 0


def test_a_governed_entry_without_a_signed_request_fails_verification(ws: Path) -> None:
    code, out = _override(ws, "kyc-ops")
    oid = json.loads(out)["id"]
    # Someone with write access appends the approval straight into the log and the file.
    forged = {
        "type": "kyc_override_approved",
        "actor": "compliance-deputy",
        "time": datetime.now(UTC).isoformat(),
        "details": {"override_id": oid, "customer": _edd(ws)},
    }
    AuditLog(ws / "audit").append(canonical_json(forged))
    line = {"actor": "compliance-deputy", "at": datetime.now(UTC).isoformat(),
            "event": "approved", "id": oid}  # fmt: skip
    with (ws / "kyc" / "overrides.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 4 and "carries no signed request" in out


def _append_enrolment(root: Path, actor: str, pub: bytes, **extra: Any) -> None:
    entry = {
        "type": "actor_enrolled",
        "actor": "data-engineer",
        "time": datetime.now(UTC).isoformat(),
        "details": {
            "enrolled_actor": actor,
            "public_key": base64.b64encode(pub).decode(),
            **extra,
        },
    }
    AuditLog(root / "audit").append(canonical_json(entry))


def _mallory(root: Path, actor: str) -> Ed25519PrivateKey:
    """Write access, no signing key: a new key for `actor` in the keystore, the log and
    keys/actors.json, as an attacker would place it."""
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    keystore = Path(os.environ[ENV])
    (keystore / f"{actor}.pem").write_bytes(pem)
    doc = json.loads((root / "keys" / "actors.json").read_text())
    doc["actors"][actor] = {"public_key": base64.b64encode(pub).decode()}
    (root / "keys" / "actors.json").write_text(json.dumps(doc))
    return key


def test_an_unsigned_enrolment_appended_to_the_log_grants_nothing_and_fails_verify(
    ws: Path,
) -> None:
    key = _mallory(ws, "compliance-deputy")
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    _append_enrolment(ws, "compliance-deputy", pub)
    code, out = _override(ws, "compliance-deputy")  # acting with the planted key
    assert code == 6, out
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 4
    fails = [ln for ln in out.splitlines() if "FAIL" in ln and "actor-requests" in ln]
    assert any(
        "enrolment of 'compliance-deputy' carries no signature by a workspace signing key" in ln
        and "its key is not accepted" in ln
        for ln in fails
    ), out


def test_an_enrolment_signed_by_a_key_outside_the_pinned_trust_fails_verify(
    ws: Path, tmp_path: Path
) -> None:
    pinned = tmp_path / "pinned-trust.json"
    shutil.copy(ws / "keys" / "trust.json", pinned)
    # The attacker adds a signing key to the workspace's own trust file and signs with it.
    rogue = SigningKeyring(tmp_path / "rogue", ws / "keys" / "trust.json")
    rogue.rotate()
    from engine.actors import enrol
    from engine.workspace import Workspace

    w = Workspace.open(ws)
    pub = (
        _mallory(ws, "compliance-deputy").public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    # enrol() signs with the newest key with a private half in the workspace: move the rogue
    # key there as an attacker with write access would.
    for pem in (tmp_path / "rogue").glob("*.pem"):
        shutil.copy(pem, ws / "keys" / "signing" / pem.name)
        (ws / "keys" / "signing" / pem.name).chmod(0o600)
    assert enrol(w, "compliance-deputy", "data-engineer", pub)
    # The workspace's own trust file vouches for it; the pinned copy does not.
    args = ["lineage", "verify", "--all", "-w", str(ws), "--trust", str(pinned)]
    code, out = _pgov(*args)
    assert code == 4
    assert "enrolment of 'compliance-deputy' is signed by key" in out
    assert "which the trust store" in out and "does not hold" in out


def test_a_signed_enrolment_whose_key_was_swapped_after_signing_fails(ws: Path) -> None:
    entries = _entries(ws)
    good = next(e for e in entries if e["type"] == "actor_enrolled")
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    d = dict(good["details"])
    d["enrolled_actor"] = "compliance-deputy"
    _append_enrolment(ws, "compliance-deputy", other, **{
        k: d[k] for k in ("enrolment", "signature", "signing_key")
    })  # fmt: skip
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 4
    assert "enrolment of 'compliance-deputy'" in out and "its key is not accepted" in out


READS = [
    ["kyc", "queue", "edd-review", "-j", "EU-DE", "--version", "latest", "--json"],
    ["kyc", "show", "--customer", "CUSTOMER", "-j", "EU-DE", "--version", "latest", "--json"],
    ["kyc", "overrides", "-j", "EU-DE", "--json"],
]


@pytest.mark.parametrize("read", READS, ids=lambda r: " ".join(r[:2]))
def test_reading_customers_without_a_credential_is_refused_exit_6_and_audited(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: list[str]
) -> None:
    args = [a.replace("CUSTOMER", _edd(ws)) for a in read]
    monkeypatch.setenv(ENV, str(tmp_path / "empty-keystore"))
    code, out = _pgov(*args, "--actor", "kyc-ops", "-w", str(ws))
    assert code == 6 and "no credential for actor 'kyc-ops'" in out
    assert _edd(ws) not in out
    last = [e for e in _entries(ws) if e["type"] != "checkpoint_signed"][-1]
    assert last["type"] == "actor_unauthenticated" and last["actor"] == "kyc-ops"
    assert last["details"]["action"] == f"kyc_{read[1]}"


@pytest.mark.parametrize("read", READS, ids=lambda r: " ".join(r[:2]))
def test_a_read_runs_under_the_readers_signed_request_which_verifies_later(
    ws: Path, read: list[str]
) -> None:
    args = [a.replace("CUSTOMER", _edd(ws)) for a in read]
    before = len(_entries(ws))
    code, out = _pgov(*args, "--actor", "kyc-ops", "-w", str(ws))
    assert code == 0, out
    new = _entries(ws)[before:]
    (req,) = [e for e in new if e["type"] == "actor_request"]
    assert req["actor"] == "kyc-ops" and req["details"]["action"] == f"kyc_{read[1]}"
    viewed = [e for e in new if e["type"] in ("kyc_queue_viewed", "kyc_customer_viewed")]
    assert all(e["details"]["request"] == req["details"]["request_id"] for e in viewed)
    trust = TrustStore.load(ws / "keys" / "trust.json")
    assert verify_requests(_entries(ws), trust) == []


@pytest.mark.slow
def test_all_jurisdiction_jobs_in_pool_processes_carry_the_parents_signed_request(
    ws: Path,
) -> None:
    before = len(_entries(ws))
    code, out = _pgov(
        "refresh", "--all-jurisdictions", "-p", "marketing_segmentation", "-a", "analyst-eu",
        "--executor", "local", "--workers", "2", "--as-of", AS_OF, "--json", "-w", str(ws),
    )  # fmt: skip
    assert code in (0, 3, 7), out  # 3: analyst-eu is denied the jurisdictions outside the EU
    new = _entries(ws)[before:]
    (req,) = [e for e in new if e["type"] == "actor_request"]
    rid = req["details"]["request_id"]
    jobs = [e for e in new if e["type"] not in ("actor_request", "checkpoint_signed")]
    published = [e for e in jobs if e["type"] == "version_published"]
    assert published, out  # at least one jurisdiction ran in a pool process
    assert {e["details"].get("request") for e in jobs} == {rid}
    assert {e["type"] for e in jobs} >= {"refresh_placement", "version_published"}
    trust = TrustStore.load(ws / "keys" / "trust.json")
    assert verify_requests(_entries(ws), trust) == []


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["activate", "EU-DE/kyc_aml/latest", "--destination", "crm-export"], "activate"),
        (["experiment", "promote", "spring-test"], "experiment_promote"),
        (["experiment", "analyse", "spring-test", "--outcomes", "outcomes"], "experiment_analyse"),
    ],
    ids=["activate", "experiment promote", "experiment analyse"],
)
def test_activation_and_experiments_need_the_actors_credential(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], action: str
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "empty-keystore"))
    code, out = _pgov(*args, "--actor", "analyst-eu", "-w", str(ws))
    assert code == 6 and "no credential for actor 'analyst-eu'" in out, out
    last = [e for e in _entries(ws) if e["type"] != "checkpoint_signed"][-1]
    assert last["type"] == "actor_unauthenticated" and last["details"]["action"] == action


def test_a_refresh_run_without_a_signed_request_fails_verify(ws: Path) -> None:
    """The CLI signs every refresh; one run straight through the Python API after actors
    were enrolled carries no request, and verify names it."""
    from datetime import date

    from engine.config import Purpose
    from engine.refresh import run_refresh
    from engine.request import RefreshRequest
    from engine.workspace import Workspace

    assert _pgov("lineage", "verify", "--all", "-w", str(ws))[0] == 0
    req = RefreshRequest(
        actor="compliance-lead",
        jurisdiction="UK",
        purpose=Purpose("kyc_aml"),
        as_of=date.fromisoformat(AS_OF),
    )
    run_refresh(Workspace.open(ws), req)
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 4
    assert "(refresh_requested) by 'compliance-lead' carries no signed request" in out
