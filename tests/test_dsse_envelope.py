"""DSSE envelopes: PAE, interop with securesystemslib both ways, and every tamper refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from engine.errors import VerificationFailed
from lineage.canonical import canonical_json
from lineage.dsse import IN_TOTO_PAYLOAD_TYPE, pae, sign_envelope, verify_envelope
from lineage.signing import Ed25519Signer, SigningKeyring, TrustedKey, TrustStore, key_id_of

PAYLOAD = canonical_json({"_type": "https://in-toto.io/Statement/v1", "subject": []})


@pytest.fixture()
def keyring(tmp_path: Path) -> SigningKeyring:
    kr = SigningKeyring(tmp_path / "signing", tmp_path / "trust.json")
    kr.init()
    return kr


def test_pae_matches_the_spec_example() -> None:
    # From the DSSE protocol document: PAE("http://example.com/HelloWorld", "hello world").
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_round_trip_returns_the_exact_signed_payload(keyring: SigningKeyring) -> None:
    env = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, keyring.signer())
    assert verify_envelope(env, keyring.trust(), None) == PAYLOAD


def test_securesystemslib_verifies_our_envelope(keyring: SigningKeyring) -> None:
    signer = keyring.signer()
    env = Envelope.from_dict(json.loads(sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, signer)))
    pub = SSlibKey.from_crypto(signer._key.public_key(), keyid=signer.key_id)
    verified = env.verify([pub], threshold=1)
    assert list(verified) == [signer.key_id]
    assert env.payload == PAYLOAD


def test_we_verify_a_securesystemslib_envelope(tmp_path: Path) -> None:
    priv = Ed25519PrivateKey.generate()
    cs = CryptoSigner(priv)
    raw = cs.public_key.keyval["public"]
    pub_raw = bytes.fromhex(raw)
    kid = key_id_of(pub_raw)
    cs = CryptoSigner(priv, SSlibKey.from_crypto(priv.public_key(), keyid=kid))
    env = Envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, {})
    env.sign(cs)
    data = json.dumps(env.to_dict()).encode()
    trust = TrustStore(keys=(TrustedKey(kid, pub_raw, datetime.now(UTC), None),))
    assert verify_envelope(data, trust, None) == PAYLOAD


def test_flipping_any_byte_of_the_envelope_is_refused(keyring: SigningKeyring) -> None:
    env = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, keyring.signer())
    trust = keyring.trust()
    for i in range(len(env)):
        for mask in (0x01, 0x20):
            bad = env[:i] + bytes([env[i] ^ mask]) + env[i + 1 :]
            with pytest.raises(VerificationFailed, match="envelope"):
                verify_envelope(bad, trust, None)


def test_wrong_key_is_refused(keyring: SigningKeyring, tmp_path: Path) -> None:
    other = SigningKeyring(tmp_path / "o", tmp_path / "o.json")
    other.init()
    env = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, other.signer())
    with pytest.raises(VerificationFailed, match="does not verify under any trusted key"):
        verify_envelope(env, keyring.trust(), None)


def test_keyid_naming_another_key_is_ambiguous_and_refused(tmp_path: Path) -> None:
    kr = SigningKeyring(tmp_path / "s", tmp_path / "t.json")
    kr.init()
    kr.rotate()
    signer = kr.signer()
    others = [k for k in kr.trust().keys if k.key_id != signer.key_id]
    env = json.loads(sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, signer))
    env["signatures"][0]["keyid"] = others[0].key_id
    with pytest.raises(VerificationFailed, match="ambiguity"):
        verify_envelope(canonical_json(env), kr.trust(), None)


def test_revoked_key_verifies_only_what_it_signed_before_revocation(
    keyring: SigningKeyring,
) -> None:
    signer = keyring.signer()
    env = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, signer)
    revoked_at = datetime.now(UTC)
    keyring.revoke(signer.key_id, revoked_at)
    trust = keyring.trust()
    assert verify_envelope(env, trust, revoked_at - timedelta(seconds=1)) == PAYLOAD
    with pytest.raises(VerificationFailed, match="revoked"):
        verify_envelope(env, trust, revoked_at + timedelta(seconds=1))
    with pytest.raises(VerificationFailed, match="revoked"):
        verify_envelope(env, trust, None)


def test_duplicate_json_keys_and_extra_fields_are_refused(keyring: SigningKeyring) -> None:
    env = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, keyring.signer())
    doc = json.loads(env)
    dup = env[:-1] + b',"payload":"' + base64.b64encode(b"{}") + b'"}'
    with pytest.raises(VerificationFailed, match="repeats a key"):
        verify_envelope(dup, keyring.trust(), None)
    doc["extra"] = 1
    with pytest.raises(VerificationFailed, match="exactly"):
        verify_envelope(canonical_json(doc), keyring.trust(), None)


def test_unexpected_payload_type_is_refused(keyring: SigningKeyring) -> None:
    env = sign_envelope(PAYLOAD, "text/plain", keyring.signer())
    with pytest.raises(VerificationFailed, match="payloadType"):
        verify_envelope(env, keyring.trust(), None)


def test_a_signer_object_only_needs_key_id_public_raw_and_sign() -> None:
    key = Ed25519PrivateKey.generate()
    s = Ed25519Signer(key_id="x", _key=key)
    assert len(s.sign(b"m")) == 64 and len(s.public_raw) == 32
