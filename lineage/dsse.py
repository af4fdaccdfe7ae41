"""DSSE envelopes (Dead Simple Signing Envelope, v1) signed with Ed25519.

The signature covers ``PAE(payloadType, payload)``; we verify over the payload bytes decoded
from the *stored* envelope and return exactly those bytes, so a caller never parses anything
the signature did not cover. ``keyid`` is an unauthenticated hint: a signature counts only if
a trusted key verifies it, and a keyid naming a different key than the one that verified is
refused as ambiguous. Every signature present must verify (we never sign with witnesses, so
an extra signature that verifies under nothing is tampering, not a co-signer).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from engine.errors import VerificationFailed
from lineage.canonical import canonical_json
from lineage.signing import Signer, TrustedKey, TrustStore
from lineage.signing import _iso as iso_time

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_ENVELOPE_KEYS = {"payload", "payloadType", "signatures"}
_SIGNATURE_KEYS = {"keyid", "sig"}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: lengths are ASCII decimal byte counts."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, signer: Signer) -> bytes:
    sig = signer.sign(pae(payload_type, payload))
    env = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode("ascii")}],
    }
    return canonical_json(env)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise VerificationFailed("envelope: a JSON object repeats a key (ambiguous)")
    return dict(pairs)


def _strict_b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationFailed(f"envelope: {what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise VerificationFailed(f"envelope: {what} is not valid base64") from None
    # Non-canonical padding bits would let two envelope texts carry one payload.
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationFailed(f"envelope: {what} is not canonical base64")
    return raw


def parse_envelope(envelope: bytes) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """(payloadType, payload bytes, [(keyid, sig)]) from the stored bytes, refusing any doubt."""
    try:
        doc = json.loads(envelope, object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed("envelope: not valid JSON (altered or truncated)") from None
    if not isinstance(doc, dict) or set(doc) != _ENVELOPE_KEYS:
        raise VerificationFailed(
            "envelope: must be an object with exactly payload, payloadType, signatures"
        )
    ptype = doc["payloadType"]
    if not isinstance(ptype, str) or not ptype:
        raise VerificationFailed("envelope: payloadType missing or not a string")
    payload = _strict_b64(doc["payload"], "payload")
    sigs_doc = doc["signatures"]
    if not isinstance(sigs_doc, list) or not sigs_doc:
        raise VerificationFailed("envelope: no signatures")
    sigs: list[tuple[str, bytes]] = []
    for i, s in enumerate(sigs_doc):
        if not isinstance(s, dict) or set(s) != _SIGNATURE_KEYS:
            raise VerificationFailed(f"envelope: signature {i} must have exactly keyid and sig")
        if not isinstance(s["keyid"], str):
            raise VerificationFailed(f"envelope: signature {i} keyid is not a string")
        sigs.append((s["keyid"], _strict_b64(s["sig"], f"signature {i}")))
    return ptype, payload, sigs


def verify_envelope(
    envelope: bytes,
    trust: TrustStore,
    at: datetime | None,
    *,
    payload_type: str | None = IN_TOTO_PAYLOAD_TYPE,
) -> bytes:
    """Verify the stored envelope; return the payload bytes the signature covers.

    ``at`` is the signed time of the payload (revoked keys verify only what they signed
    before revocation); ``None`` accepts only keys that were never revoked.
    """
    return verify_envelope_keys(envelope, trust, at, payload_type=payload_type)[0]


def verify_envelope_keys(
    envelope: bytes,
    trust: TrustStore,
    at: datetime | None,
    *,
    payload_type: str | None = IN_TOTO_PAYLOAD_TYPE,
) -> tuple[bytes, list[TrustedKey]]:
    """``verify_envelope`` that also says which trusted keys verified (for revocation checks)."""
    ptype, payload, sigs = parse_envelope(envelope)
    if payload_type is not None and ptype != payload_type:
        raise VerificationFailed(f"envelope: payloadType {ptype!r}, expected {payload_type!r}")
    message = pae(ptype, payload)
    verified_by: list[TrustedKey] = []
    for i, (keyid, sig) in enumerate(sigs):
        matches = [k for k in trust.keys if k.verify(sig, message)]
        if not matches:
            hint = keyid[:16] if trust.get(keyid) else f"{keyid[:16]} (not in the trust file)"
            raise VerificationFailed(
                f"envelope: signature {i} (keyid {hint}) does not verify under any trusted key: "
                "the envelope was altered or signed by an untrusted key"
            )
        key = matches[0]
        if keyid != key.key_id:
            raise VerificationFailed(
                f"envelope: signature {i} verifies under key {key.key_id[:16]} but names keyid "
                f"{keyid[:16]!r}: refusing the ambiguity"
            )
        if not key.valid_at(at):
            when = iso_time(at) if at is not None else "an unknown time"
            revoked = iso_time(key.revoked_at) if key.revoked_at else "?"
            raise VerificationFailed(
                f"envelope: signing key {key.key_id[:16]} was revoked at {revoked}; the "
                f"statement is signed at {when}"
            )
        verified_by.append(key)
    if not verified_by:
        raise VerificationFailed("envelope: no signature by a trusted key")
    return payload, verified_by


def peek_payload(envelope: bytes) -> bytes:
    """The payload bytes *without* verification: only to find the claimed signing time."""
    return parse_envelope(envelope)[1]
