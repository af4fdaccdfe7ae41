"""Signing keys: 0600 private keys, derived key ids, rotation keeps old keys, revocation."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.errors import KeyMaterialError
from lineage.signing import SigningKeyring, TrustStore, key_id_of


def _kr(tmp_path: Path) -> SigningKeyring:
    return SigningKeyring(tmp_path / "keys" / "signing", tmp_path / "keys" / "trust.json")


def test_init_writes_a_0600_key_and_a_trust_file_with_its_derived_id(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kid = kr.init()
    pem = kr.signing_dir / f"{kid}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert kr.signing_dir.stat().st_mode & 0o777 == 0o700
    store = TrustStore.load(kr.trust_file)
    assert [k.key_id for k in store.keys] == [kid]
    assert key_id_of(store.keys[0].public_raw) == kid
    assert b"PRIVATE" not in kr.trust_file.read_bytes()
    assert kr.signer().key_id == kid


def test_init_twice_is_refused(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kr.init()
    with pytest.raises(KeyMaterialError, match="already initialised"):
        kr.init()


def test_a_group_readable_private_key_is_refused(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kid = kr.init()
    os.chmod(kr.signing_dir / f"{kid}.pem", 0o640)
    with pytest.raises(KeyMaterialError, match="too open"):
        kr.signer()


def test_rotation_adds_a_key_signs_with_it_and_keeps_the_old_one(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    first = kr.init()
    second = kr.rotate()
    assert first != second
    assert kr.signer().key_id == second
    listed = {k["key_id"]: k for k in kr.list()}
    assert listed[first]["active"] is False and listed[second]["active"] is True
    assert listed[first]["revoked_at"] is None


def test_revoking_the_active_key_leaves_no_signer_until_rotation(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kid = kr.init()
    kr.revoke(kid, datetime.now(UTC))
    with pytest.raises(KeyMaterialError, match="no usable signing key"):
        kr.signer()
    assert kr.list()[0]["revoked_at"] is not None
    new = kr.rotate()
    assert kr.signer().key_id == new


def test_trust_file_binding_a_key_id_to_another_key_is_refused(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kr.init()
    doc = json.loads(kr.trust_file.read_text())
    doc["keys"][0]["key_id"] = "0" * 64
    kr.trust_file.write_text(json.dumps(doc))
    with pytest.raises(KeyMaterialError, match="does not match its public key"):
        TrustStore.load(kr.trust_file)


def test_trust_file_listing_a_key_twice_is_refused(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kr.init()
    doc = json.loads(kr.trust_file.read_text())
    doc["keys"].append(doc["keys"][0])
    kr.trust_file.write_text(json.dumps(doc))
    with pytest.raises(KeyMaterialError, match="listed twice"):
        TrustStore.load(kr.trust_file)


def test_naive_revocation_time_is_refused(tmp_path: Path) -> None:
    kr = _kr(tmp_path)
    kid = kr.init()
    with pytest.raises(KeyMaterialError, match="time zone"):
        kr.revoke(kid, datetime(2026, 1, 1))
