"""Checkpoints follow the C2SP signed-note / tlog-checkpoint format and parse strictly.

The signed-note layout (key hash, signature line, em dash) is checked byte for byte against
the reference example of golang.org/x/mod/sumdb/note (the PeterNeumann key and note).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import VerificationFailed
from lineage.checkpoint import (
    Checkpoint,
    note_key_hash,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from lineage.signing import SigningKeyring

SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
SIGNED = (
    TEXT
    + (
        "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngo"
        "tpRZb6KE6RyyBwJnAM=\n"
    ).encode()
)


@dataclass(frozen=True)
class _SeedSigner:
    key_id: str
    _key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_raw(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def test_key_hash_and_signature_line_match_the_go_reference_example() -> None:
    seed = base64.b64decode(SKEY.split("+", 4)[-1])[1:]
    signer = _SeedSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    vkey_raw = base64.b64decode(VKEY.split("+", 2)[-1])
    assert vkey_raw[0] == 1 and vkey_raw[1:] == signer.public_raw
    assert note_key_hash("PeterNeumann", signer.public_raw).hex() == "c74f20a3"
    assert sign_note(TEXT, signer, "PeterNeumann") == SIGNED


@pytest.fixture()
def kr(tmp_path: Path) -> SigningKeyring:
    k = SigningKeyring(tmp_path / "s", tmp_path / "trust.json")
    k.init()
    return k


def _cp(size: int = 3) -> Checkpoint:
    return Checkpoint("personagov/test", size, b"\x07" * 32, datetime(2026, 11, 1, tzinfo=UTC))


def test_checkpoint_text_has_origin_size_root_time_then_signature(kr: SigningKeyring) -> None:
    text = sign_checkpoint(_cp(), kr.signer()).decode()
    lines = text.split("\n")
    assert lines[0] == "personagov/test"
    assert lines[1] == "3"
    assert base64.b64decode(lines[2]) == b"\x07" * 32
    assert lines[3] == "time 2026-11-01T00:00:00.000000Z"
    assert lines[4] == ""
    assert lines[5].startswith("— personagov/test ")  # key name = origin (C2SP)
    assert text.endswith("\n")
    vc = verify_checkpoint(text.encode(), kr.trust(), "cp")
    assert vc.checkpoint == _cp() and vc.key_ids == (kr.signer().key_id,)


def test_unknown_cosigners_are_ignored_but_a_known_bad_signature_is_not(
    kr: SigningKeyring,
) -> None:
    text = sign_checkpoint(_cp(), kr.signer())
    witness = "— witness.example/w1 " + base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode()
    verify_checkpoint(text + witness.encode() + b"\n", kr.trust(), "cp")
    sig_line = text.split(b"\n\n")[1]
    forged = sig_line.replace(sig_line[-20:-3], b"A" * 17)
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_checkpoint(text + forged, kr.trust(), "cp")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(b"\n3\n", b"\n03\n"),
        lambda t: t.replace(b"\n3\n", b"\n-3\n"),
        lambda t: t.replace(b"time ", b"time  "),
        lambda t: t.replace(b"\n\n", b"\n"),
        lambda t: t.replace(b"\xe2\x80\x94 ", b"- "),
        lambda t: t[:-1],
        lambda t: t + b"trailing",
        lambda t: t.replace(b"personagov/test\n", b"personagov/test\nextra\n"),
    ],
)
def test_non_canonical_checkpoints_are_refused(kr: SigningKeyring, mangle: object) -> None:
    text = sign_checkpoint(_cp(), kr.signer())
    bad = mangle(text)  # type: ignore[operator]
    assert bad != text
    with pytest.raises(VerificationFailed):
        parse_checkpoint(bad, "cp")
        verify_checkpoint(bad, kr.trust(), "cp")


def test_note_text_with_a_blank_line_cannot_be_signed(kr: SigningKeyring) -> None:
    with pytest.raises(ValueError, match="blank line"):
        sign_note(b"a\n\nb\n", kr.signer(), "personagov/test")


def _line(name: str, keyhash: bytes, sig: bytes) -> bytes:
    return f"— {name} {base64.b64encode(keyhash + sig).decode()}\n".encode()


def test_checkpoints_written_before_the_origin_became_the_key_name_still_verify(
    kr: SigningKeyring,
) -> None:
    signer = kr.signer()
    legacy = sign_note(_cp().body(), signer, signer.key_id)  # how checkpoints were named before
    assert verify_checkpoint(legacy, kr.trust(), "cp").key_ids == (signer.key_id,)


def test_a_line_sharing_only_the_name_or_only_the_key_hash_is_an_unknown_key_and_ignored(
    kr: SigningKeyring, tmp_path: Path
) -> None:
    signer = kr.signer()
    text = sign_checkpoint(_cp(), signer)
    body = _cp().body()
    other = Ed25519PrivateKey.generate()
    other_pub = _SeedSigner("x", other).public_raw
    junk = b"j" * 64
    lines = [
        # same name (the origin), a key we do not trust: ignored, not "does not verify"
        _line("personagov/test", note_key_hash("personagov/test", other_pub), other.sign(body)),
        # the trusted key's hash under the origin, but another name: another key
        _line("witness.example", note_key_hash("personagov/test", signer.public_raw), junk),
        # the trusted key's legacy id as name with a hash that is not ours
        _line(signer.key_id, b"\x00\x00\x00\x00", junk),
    ]
    for extra in lines:
        vc = verify_checkpoint(text + extra, kr.trust(), "cp")
        assert vc.key_ids == (signer.key_id,)
    # Only unknown keys: nothing vouches for it.
    only_unknown = body + b"\n" + lines[0]
    with pytest.raises(VerificationFailed, match="no signature by a trusted key"):
        verify_checkpoint(only_unknown, kr.trust(), "cp")
    # Name AND hash of the trusted key with a bad signature: that is a forgery, not noise.
    forged = _line("personagov/test", note_key_hash("personagov/test", signer.public_raw), junk)
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_checkpoint(text + forged, kr.trust(), "cp")


def test_a_checkpoint_under_another_origin_is_not_signed_by_our_key(kr: SigningKeyring) -> None:
    signer = kr.signer()
    text = sign_checkpoint(_cp(), signer)
    moved = text.replace(b"personagov/test\n", b"personagov/other\n", 1)
    with pytest.raises(VerificationFailed, match="no signature by a trusted key"):
        verify_checkpoint(moved, kr.trust(), "cp")
