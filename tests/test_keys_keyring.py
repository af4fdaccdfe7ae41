"""Keyring: where master keys come from, what is refused, what is derived, what never leaks."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from engine.errors import KeyMaterialError
from engine.pseudonym.keyring import (
    Keyring,
    KeyVersion,
    keyset_document,
    register_provider,
    write_private,
)
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"
KEY_HEX = "ab" * 32


def _ws(tmp_path: Path, master: str = "file:keys/master.key") -> Workspace:
    text = DEFAULTS.read_text().replace('master = "file:keys/master.key"', f'master = "{master}"')
    (tmp_path / "pgov.toml").write_text(text)
    return Workspace.open(tmp_path)


def _write_keyfile(ws: Workspace, doc: bytes, mode: int = 0o600) -> Path:
    path = ws.root / "keys" / "master.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(doc)
    os.chmod(path, mode)
    return path


def test_env_hex_master_is_version_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOV_TEST_MK", KEY_HEX)
    ring = Keyring.load(_ws(tmp_path, "env:PGOV_TEST_MK"))
    assert ring.current_version == 1
    assert len(ring.derive("marketing", "email")) == 32


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("ab" * 31, "at least 32"), ("zz" * 32, "not hex"), ("", "not set")],
)
def test_env_bad_master_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, fragment: str
) -> None:
    monkeypatch.setenv("PGOV_TEST_MK", value)
    with pytest.raises(KeyMaterialError, match=fragment) as err:
        Keyring.load(_ws(tmp_path, "env:PGOV_TEST_MK"))
    assert value[:16] not in str(err.value) or not value


def test_missing_env_var_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGOV_TEST_MK", raising=False)
    with pytest.raises(KeyMaterialError, match="not set"):
        Keyring.load(_ws(tmp_path, "env:PGOV_TEST_MK"))


def test_key_file_with_versions_loads(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    ring = Keyring.generate().with_new_version()
    _write_keyfile(ws, ring.document())
    loaded = Keyring.load(ws)
    assert loaded.versions == [1, 2] and loaded.current_version == 2
    assert loaded.derive("kyc", "customer_id", 1) == ring.derive("kyc", "customer_id", 1)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_with_loose_permissions_is_refused(tmp_path: Path, mode: int) -> None:
    ws = _ws(tmp_path)
    _write_keyfile(ws, Keyring.generate().document(), mode)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        Keyring.load(ws)


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="does not exist"):
        Keyring.load(_ws(tmp_path))


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    real = tmp_path / "elsewhere.key"
    real.write_bytes(Keyring.generate().document())
    os.chmod(real, 0o600)
    (ws.root / "keys").mkdir()
    (ws.root / "keys" / "master.key").symlink_to(real)
    with pytest.raises(KeyMaterialError):
        Keyring.load(ws)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (b"{not json", "not a valid key-set"),
        (b'{"current": 1}', "no 'versions'"),
        (b'{"current": 1, "versions": {}}', "no key versions"),
        (b'{"current": 1, "versions": {"1": {"key": "abcd"}}}', "at least 32"),
        (b'{"current": 1, "versions": {"1": {"key": "' + b"zz" * 32 + b'"}}}', "not hex"),
        (b'{"current": 1, "versions": {"x": {"key": "' + b"ab" * 32 + b'"}}}', "not an integer"),
        (b'{"current": 3, "versions": {"1": {"key": "' + b"ab" * 32 + b'"}}}', "current version"),
        (b"short", "at least 32"),
    ],
)
def test_malformed_key_file_is_refused(tmp_path: Path, doc: bytes, fragment: str) -> None:
    ws = _ws(tmp_path)
    _write_keyfile(ws, doc)
    with pytest.raises(KeyMaterialError, match=fragment):
        Keyring.load(ws)


def test_current_must_be_newest(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    ring = Keyring.generate().with_new_version()
    doc = ring.document().replace(b'"current": 2', b'"current": 1')
    _write_keyfile(ws, doc)
    with pytest.raises(KeyMaterialError, match="not the newest"):
        Keyring.load(ws)


@pytest.mark.parametrize(
    "master", ["nothing", "vault:x", "kms:", "kms:nosuch:ref", "kms:only-provider"]
)
def test_bad_master_spec_is_refused(tmp_path: Path, master: str) -> None:
    with pytest.raises(KeyMaterialError):
        Keyring.load(_ws(tmp_path, master))


def test_kms_provider_plugs_in(tmp_path: Path) -> None:
    calls: list[str] = []

    class FakeKms:
        def get_master_key(self, ref: str) -> bytes:
            calls.append(ref)
            return bytes(range(32))

    register_provider("fakekms", lambda ws: FakeKms())
    ring = Keyring.load(_ws(tmp_path, "kms:fakekms:arn:aws:kms:eu-west-1:1:key/abc"))
    assert calls == ["arn:aws:kms:eu-west-1:1:key/abc"]
    assert ring.current_version == 1


def test_unknown_version_is_refused() -> None:
    ring = Keyring.generate()
    with pytest.raises(KeyMaterialError, match="version 7 is unknown"):
        ring.derive("kyc", "customer_id", 7)


def test_derivation_separates_domain_column_and_version() -> None:
    ring = Keyring.generate().with_new_version()
    keys = {
        ring.derive("marketing", "email", 2),
        ring.derive("kyc", "email", 2),
        ring.derive("marketing", "phone", 2),
        ring.derive("marketing", "email", 1),
    }
    assert len(keys) == 4
    assert ring.derive("marketing", "email") == ring.derive("marketing", "email", 2)
    with pytest.raises(KeyMaterialError):
        ring.derive("a|b", "c")


def test_key_material_never_in_repr_or_pickle() -> None:
    master = bytes(range(32))
    ring = Keyring({1: KeyVersion(1, "2026-01-01", master)})
    for text in (repr(ring), str(ring), repr(KeyVersion(1, "x", master)), str(ring.info())):
        assert master.hex() not in text
        assert "key=" not in text
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_sealer_round_trip_and_rotation() -> None:
    ring = Keyring.generate()
    seal, open_ = ring.sealer("quarantine")
    blob = seal(b"row with a@example.com")
    assert b"a@example.com" not in blob
    assert open_(blob) == b"row with a@example.com"
    assert seal(b"x") != seal(b"x")  # random nonce
    rotated = ring.with_new_version()
    seal2, open2 = rotated.sealer("quarantine")
    assert open2(blob) == b"row with a@example.com"  # old version still opens
    assert open2(seal2(b"y")) == b"y"


def test_sealer_refuses_tampering_wrong_purpose_and_wrong_key() -> None:
    ring = Keyring.generate()
    seal, open_ = ring.sealer("quarantine")
    blob = seal(b"payload")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        open_(tampered)
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        ring.sealer("other")[1](blob)
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        Keyring.generate().sealer("quarantine")[1](blob)
    with pytest.raises(KeyMaterialError, match="malformed"):
        open_(b"junk")
    with pytest.raises(KeyMaterialError, match="unknown"):
        open_(blob[:4] + (9).to_bytes(4, "big") + blob[8:])


def test_write_private_never_clobbers_and_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "k" / "master.key"
    doc = keyset_document({1: KeyVersion(1, "", b"\x01" * 32)})
    write_private(path, doc, exclusive=True)
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(KeyMaterialError, match="already exists"):
        write_private(path, b"other", exclusive=True)
    assert path.read_bytes() == doc
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]
    shutil.rmtree(path.parent)


def test_env_may_hold_a_whole_key_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = Keyring.generate().with_new_version()
    monkeypatch.setenv("PGOV_TEST_MK", ring.document().decode())
    loaded = Keyring.load(_ws(tmp_path, "env:PGOV_TEST_MK"))
    assert loaded.versions == [1, 2]
    assert loaded.derive("kyc", "customer_id", 1) == ring.derive("kyc", "customer_id", 1)
