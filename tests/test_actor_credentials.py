"""Authenticated actors (issue 14): `--actor X` must be backed by X's own key, every governed
action is a signed request kept in the log, and four eyes is two actors' signatures that a
verifier checks later."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from engine.actors import ENV, verify_requests
from engine.cli import app
from lineage.auditlog import AuditLog
from lineage.canonical import canonical_json

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
    assert verify_requests(entries) == []
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
