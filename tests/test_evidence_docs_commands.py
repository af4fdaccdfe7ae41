"""The commands docs/compliance-officer.md and docs/keys.md give for chain verification, actor
credentials, recovery, replay and the key compromise procedure run as written."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _pgov(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs") / "ws"
    assert _pgov("init", str(root), "--sample", "600")[0] == 0
    assert _pgov("keys", "init", "-w", str(root))[0] == 0
    code, out = _pgov(
        "refresh", "-j", "EU-DE", "-p", "kyc_aml", "-a", "compliance-lead",
        "--as-of", "2026-11-01", "-w", str(root),
    )  # fmt: skip
    assert code in (0, 7), out
    return root


def test_the_documented_commands_are_in_the_docs() -> None:
    officer = (DOCS / "compliance-officer.md").read_text()
    keys = (DOCS / "keys.md").read_text()
    assert "pgov lineage verify --all -w WS --trust" in officer and "--pin" in officer
    assert "pgov versions recover --actor A -w WS" in officer
    assert "pgov versions restore-config J/P/V --out DIR -w WS" in officer
    assert "pgov keys enrol-actor NAME --actor A [--public-key B64] [-w WS]" in keys
    assert "pgov keys revoke KEY_ID --since WHEN --actor data-engineer -w WS" in keys


def test_verify_all_with_a_pinned_trust_file_and_checkpoint(ws: Path, tmp_path: Path) -> None:
    verifier = tmp_path / "pgov-verifier"
    verifier.mkdir()
    shutil.copy(ws / "keys" / "trust.json", verifier / "trust.json")
    pin = verifier / "WS.checkpoint"
    args = ["lineage", "verify", "--all", "-w", str(ws), "--trust", str(verifier / "trust.json")]
    code, out = _pgov(*args, "--pin", str(pin))
    assert code == 0, out
    assert "trusting only the keys found in the workspace" not in out
    assert pin.is_file()
    inside = _pgov(*args, "--pin", str(ws / "my.checkpoint"))
    assert inside[0] == 2 and "outside" in inside[1]


def test_recover_and_restore_config(ws: Path, tmp_path: Path) -> None:
    code, out = _pgov("versions", "recover", "--actor", "compliance-lead", "-w", str(ws))
    assert code == 0 and "0 repair(s)" in out, out
    out_dir = tmp_path / "replay"
    code, out = _pgov(
        "versions", "restore-config", "EU-DE/kyc_aml/v0001", "--out", str(out_dir), "-w", str(ws)
    )
    assert code == 0, out
    assert (out_dir / "pgov.toml").read_bytes() == (ws / "pgov.toml").read_bytes()
    assert (out_dir / "bundle" / ".manifest").is_file()


def test_enrol_actor_with_a_public_key_held_elsewhere(ws: Path) -> None:
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    b64 = base64.b64encode(pub).decode()
    code, out = _pgov(
        "keys", "enrol-actor", "analyst-br", "--public-key", b64,
        "--actor", "data-engineer", "-w", str(ws),
    )  # fmt: skip
    assert code == 0 and "enrolled" in out, out
    assert json.loads((ws / "keys" / "actors.json").read_text())["actors"]["analyst-br"] == {
        "public_key": b64
    }
    denied = _pgov("keys", "enrol-actor", "analyst-br", "--actor", "analyst-eu", "-w", str(ws))
    assert denied[0] == 3


def _procedure() -> list[str]:
    text = (DOCS / "keys.md").read_text()
    section = text.split("## Compromise procedure (signing key)")[1].split("\n## ")[0]
    return re.findall(r"`(pgov [^`]+)`", section.replace("\n   ", " "))


def test_the_compromise_procedure_in_keys_md_runs_as_written(ws: Path, tmp_path: Path) -> None:
    """Back-dated revocation, new key, re-checkpoint: the log verifies again; the version
    signed before WHEN verifies, the one signed after by the revoked key fails naming the
    key and since when; a rerun publishes a version that verifies."""
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    kid = json.loads(_pgov("keys", "list", "-w", str(copy), "--json")[1])["signing"][0]["key_id"]
    when = datetime.now(UTC)
    time.sleep(0.05)
    code, out = _pgov(
        "refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
        "--as-of", "2026-11-01", "-w", str(copy),
    )  # fmt: skip
    assert code in (0, 7), out  # signed by the key, after WHEN: the thief's, perhaps
    steps = _procedure()
    assert [s.split(" -")[0].split(" KEY_ID")[0] for s in steps] == [
        "pgov keys list",
        "pgov keys revoke",
        "pgov keys rotate",
        "pgov audit checkpoint",
        "pgov audit verify",
        "pgov lineage verify",
        "pgov refresh",
    ]
    since = when.isoformat()
    outs: dict[str, tuple[int, str]] = {}
    for step in steps:
        cmd = step.replace("KEY_ID", kid).replace("WHEN", since).replace("WS", str(copy))
        outs[step.split(" -")[0]] = _pgov(*shlex.split(cmd)[1:])
    codes = {k: v[0] for k, v in outs.items()}
    assert codes["pgov keys list"] == 0
    assert codes["pgov keys revoke KEY_ID"] == 0, outs["pgov keys revoke KEY_ID"]
    assert codes["pgov keys rotate"] == 0
    assert codes["pgov audit checkpoint"] == 0
    assert codes["pgov audit verify"] == 0, outs["pgov audit verify"][1]
    assert "revoked-checkpoints" in outs["pgov audit verify"][1]
    assert codes["pgov refresh"] in (0, 7), outs["pgov refresh"][1]
    code, out = outs["pgov lineage verify"]
    assert code == 4, out
    fails = [ln for ln in out.splitlines() if ln.startswith("FAIL ")]
    assert len(fails) == 1, fails
    assert "UK/kyc_aml/v0001" in fails[0] and f"signing key {kid[:16]} was revoked at" in fails[0]
    assert "EU-DE" not in "".join(fails)
    # After the rerun: the new version verifies under the new key, the suspect one still fails.
    assert _pgov("lineage", "verify", "UK/kyc_aml/v0002", "-w", str(copy))[0] == 0
    assert _pgov("lineage", "verify", "EU-DE/kyc_aml/v0001", "-w", str(copy))[0] == 0
    code, out = _pgov("lineage", "verify", "--all", "-w", str(copy))
    assert code == 4 and sum(ln.startswith("FAIL ") for ln in out.splitlines()) == 1, out
    # A refresh while every key is revoked is refused before any work.
    new = next(k for k in json.loads(_pgov("keys", "list", "-w", str(copy), "--json")[1])[
        "signing"] if k["active"])["key_id"]  # fmt: skip
    assert _pgov("keys", "revoke", new, "--actor", "data-engineer", "-w", str(copy))[0] == 0
    code, out = _pgov(
        "refresh", "-j", "US-CA", "-p", "kyc_aml", "-a", "compliance-lead",
        "--as-of", "2026-11-01", "-w", str(copy),
    )  # fmt: skip
    assert code == 6 and "no usable signing key" in out
    assert not (copy / "versions" / "US-CA").exists()


def test_audit_verify_fails_while_no_valid_checkpoint_covers_the_revoked_keys_heads(
    ws: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    kid = json.loads(_pgov("keys", "list", "-w", str(copy), "--json")[1])["signing"][0]["key_id"]
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    # Revoked from yesterday, no new key yet: every checkpoint since is the old key's.
    assert _pgov("keys", "revoke", kid, "--since", since, "--actor", "data-engineer",
                 "-w", str(copy))[0] == 0  # fmt: skip
    code, out = _pgov("audit", "verify", "-w", str(copy))
    assert code == 4
    assert f"signed by key {kid[:16]}" in out and "after its revocation at" in out
    assert "no later checkpoint by a valid key covers" in out
