"""The commands docs/compliance-officer.md and docs/keys.md give for chain verification, actor
credentials, recovery, replay and the key compromise procedure run as written."""

from __future__ import annotations

import base64
import json
import shutil
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
    assert "pgov keys revoke KEY_ID --at WHEN --actor data-engineer -w WS" in keys


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


def test_compromise_procedure_revoke_rotate_refresh(ws: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    listed = json.loads(_pgov("keys", "list", "-w", str(copy), "--json")[1])
    kid = listed["signing"][0]["key_id"]
    code, out = _pgov("keys", "revoke", kid, "--actor", "data-engineer", "-w", str(copy))
    assert code == 0, out
    refresh = ["refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
               "--as-of", "2026-11-01", "-w", str(copy)]  # fmt: skip
    code, out = _pgov(*refresh)
    assert code == 6 and "no usable signing key" in out
    assert not (copy / "versions" / "UK").exists()  # refused before any work
    code, out = _pgov("keys", "rotate", "--signing", "--actor", "data-engineer", "-w", str(copy))
    assert code == 0, out
    code, out = _pgov(*refresh)
    assert code in (0, 7), out
