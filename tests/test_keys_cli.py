"""`pgov keys init|rotate|list`: files, permissions, refusals, audit, and no material shown."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_actor_support import enrol_actors
from typer.testing import CliRunner

from engine import audit
from engine.cli import app
from engine.pseudonym import Keyring
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"
runner = CliRunner()
ENGINEER = ["--actor", "data-engineer"]  # the role the default policy lets change keys


def _ws(tmp_path: Path, master: str = "file:keys/master.key") -> Path:
    text = DEFAULTS.read_text().replace('master = "file:keys/master.key"', f'master = "{master}"')
    (tmp_path / "pgov.toml").write_text(text)
    return tmp_path


def _files(root: Path) -> dict[str, bytes]:
    """Every file but the operational log (which records the policy decision itself)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.parent.name != "logs"
    }


def _key_hexes(root: Path) -> list[str]:
    doc = json.loads((root / "keys" / "master.key").read_text())
    return [v["key"] for v in doc["versions"].values()]


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    real = audit.record

    def record(ws: Workspace, event_type: str, actor: str, **details: Any) -> int:
        events.append({"type": event_type, "actor": actor, **details})
        if event_type == "actor_enrolled":
            # Authentication reads enrolments back from the log: they must really be there.
            real(ws, event_type, actor, **details)
        return len(events) - 1

    monkeypatch.setattr(audit, "record", record)
    return events


def test_init_creates_private_master_and_signing_key(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    res = runner.invoke(app, ["keys", "init", "-w", str(root)])
    assert res.exit_code == 0, res.output
    key = root / "keys" / "master.key"
    assert (key.stat().st_mode & 0o777) == 0o600
    assert Keyring.load(Workspace.open(root)).versions == [1]
    assert list((root / "keys" / "signing").glob("*.pem"))
    assert (root / "keys" / "trust.json").is_file()
    assert not any(h in res.output for h in _key_hexes(root))


def test_second_init_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    assert runner.invoke(app, ["keys", "init", "-w", str(root)]).exit_code == 0
    before = _files(root)
    res = runner.invoke(app, ["keys", "init", "-w", str(root)])
    assert res.exit_code == 6 and "already exists" in res.output
    assert _files(root) == before


def test_init_with_unset_env_master_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGOV_TEST_UNSET", raising=False)
    root = _ws(tmp_path, "env:PGOV_TEST_UNSET")
    res = runner.invoke(app, ["keys", "init", "-w", str(root)])
    assert res.exit_code == 6 and "not set" in res.output
    assert not (root / "keys").exists()


def test_rotate_adds_a_version_keeps_old_ones_and_is_audited(
    tmp_path: Path, audited: list[dict[str, Any]]
) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    [v1] = _key_hexes(root)
    res = runner.invoke(app, ["keys", "rotate", "-w", str(root), "--actor", "data-engineer"])
    assert res.exit_code == 0, res.output
    hexes = _key_hexes(root)
    assert hexes[0] == v1 and len(hexes) == 2
    assert ((root / "keys" / "master.key").stat().st_mode & 0o777) == 0o600
    assert [e for e in audited if e["type"] == "key_rotation"] == [
        {
            "type": "key_rotation",
            "actor": "data-engineer",
            "kind": "master",
            "previous_version": 1,
            "new_version": 2,
        }
    ]
    assert not any(h in res.output or h in repr(audited) for h in hexes)


def test_rotate_signing_adds_a_key(tmp_path: Path, audited: list[dict[str, Any]]) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    res = runner.invoke(app, ["keys", "rotate", "--signing", "-w", str(root), "--json", *ENGINEER])
    assert res.exit_code == 0, res.output
    kid = json.loads(res.stdout)["signing_key_id"]
    assert audited[-1]["kind"] == "signing" and audited[-1]["new_key_id"] == kid
    assert len(list((root / "keys" / "signing").glob("*.pem"))) == 2


def test_rotate_refuses_loose_permissions_and_writes_nothing(
    tmp_path: Path, audited: list[dict[str, Any]]
) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    os.chmod(root / "keys" / "master.key", 0o644)
    before = _files(root)
    res = runner.invoke(app, ["keys", "rotate", "-w", str(root), *ENGINEER])
    assert res.exit_code == 6 and "chmod 600" in res.output
    assert _files(root) == before
    # Only the key setup and the (authenticated) rotation request: nothing rotated.
    kinds = [e["type"] for e in audited if e["type"] != "actor_enrolled"]
    assert kinds == ["key_initialised", "actor_request"]


def test_rotate_refuses_env_master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOV_TEST_MK", "cd" * 32)
    root = _ws(tmp_path, "env:PGOV_TEST_MK")
    enrol_actors(Workspace.open(root))
    res = runner.invoke(app, ["keys", "rotate", "-w", str(root), *ENGINEER])
    assert res.exit_code == 6 and "rotate it in that key store" in res.output


def test_list_shows_versions_and_ids_never_material(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    runner.invoke(app, ["keys", "rotate", "-w", str(root), *ENGINEER])
    res = runner.invoke(app, ["keys", "list", "-w", str(root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert [v["version"] for v in info["master"]["versions"]] == [1, 2]
    assert info["master"]["current_version"] == 2
    assert len(info["signing"]) == 1
    pem = next((root / "keys" / "signing").glob("*.pem")).read_text()
    for h in _key_hexes(root):
        assert h not in res.output
    assert "PRIVATE" not in res.output and pem.splitlines()[1] not in res.output
    plain = runner.invoke(app, ["keys", "list", "-w", str(root)])
    assert plain.exit_code == 0 and "v2" in plain.output


def test_rotation_lands_in_the_real_audit_log_without_material(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    res = runner.invoke(app, ["keys", "rotate", "-w", str(root), "--actor", "data-engineer"])
    assert res.exit_code == 0, res.output
    blob = b"".join(p.read_bytes() for p in (root / "audit").rglob("*") if p.is_file())
    assert b"key_rotation" in blob
    assert not any(h.encode() in blob for h in _key_hexes(root))


def test_init_is_audited_and_revoke_marks_a_signing_key(
    tmp_path: Path, audited: list[dict[str, Any]]
) -> None:
    root = _ws(tmp_path)
    assert runner.invoke(app, ["keys", "init", "-w", str(root), "--actor", "ops"]).exit_code == 0
    assert audited[0]["type"] == "key_initialised" and audited[0]["master_version"] == 1
    kid = audited[0]["signing_key_id"]
    res = runner.invoke(app, ["keys", "revoke", kid, "-w", str(root), *ENGINEER])
    assert res.exit_code == 0, res.output
    assert audited[-1]["type"] == "key_revocation" and audited[-1]["key_id"] == kid
    info = json.loads(runner.invoke(app, ["keys", "list", "-w", str(root), "--json"]).stdout)
    assert info["signing"][0]["revoked_at"]
    unknown = runner.invoke(app, ["keys", "revoke", "nope", "-w", str(root), *ENGINEER])
    assert unknown.exit_code == 6
    bad_time = runner.invoke(
        app, ["keys", "revoke", kid, "--at", "yesterday", "-w", str(root), *ENGINEER]
    )
    assert bad_time.exit_code == 2


@pytest.mark.parametrize("args", [["rotate"], ["rotate", "--signing"], ["revoke", "KID"]])
def test_key_changes_by_an_actor_the_policy_does_not_allow_are_refused_and_audited(
    tmp_path: Path, audited: list[dict[str, Any]], args: list[str]
) -> None:
    root = _ws(tmp_path)
    runner.invoke(app, ["keys", "init", "-w", str(root)])
    kid = audited[0]["signing_key_id"]
    args = [kid if a == "KID" else a for a in args]
    before = _files(root)
    for actor, reason in (("analyst-eu", "access.role_not_permitted"), ("nobody", "not declared")):
        res = runner.invoke(app, ["keys", *args, "-w", str(root), "--actor", actor])
        assert res.exit_code == 3, res.output
        assert reason in res.output
    assert _files(root) == before  # no key written, none revoked
    # The policy refused analyst-eu; nobody (undeclared) could not even present a request.
    refused = [e for e in audited if e["type"] == "key_change_refused"]
    assert [e["actor"] for e in refused] == ["analyst-eu"]
    denied = [e for e in audited if e["type"] == "access_denied"]
    assert [e["actor"] for e in denied] == ["nobody"]
    without = runner.invoke(app, ["keys", *args, "-w", str(root)])
    assert without.exit_code == 2  # --actor is required: no default OS user for changes
