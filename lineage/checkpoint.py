"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note format.

    <origin>\\n
    <tree size, decimal>\\n
    <base64 root hash>\\n
    time <RFC 3339 UTC>\\n          <- extension line: the signed time revocation compares
    \\n
    — <key name> <base64(key hash[4] || Ed25519 signature)>\\n

The signature covers the note text (the first four lines, newline included). The key name is
the log's origin (C2SP tlog-checkpoint: "the log's key name in its signature line SHOULD
match the origin line"); the 4-byte key hash is SHA-256(name || 0x0A || 0x01 || raw public
key)[:4] as the signed-note spec defines for Ed25519. A key is its name AND its hash: a
signature line is matched to a trusted key only when both agree, and lines from unknown keys
are ignored, even when they share the name or the hash but not both (that is how witnesses
co-sign and keys rotate). A known key whose signature fails is an error, and at least one
trusted, unrevoked-at-that-time signature is required.

Checkpoints written before 2026-11-30 named the key by its key id (hex SHA-256 of the public
key); those lines still verify, matched by key id and the hash computed over that name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.errors import VerificationFailed
from lineage.signing import Signer, TrustedKey, TrustStore, parse_time
from lineage.signing import _iso as iso_time

_SIG_PREFIX = "\u2014 "  # em dash + space, per the signed-note spec
_SIG_LINE = re.compile(r"^\u2014 (?P<name>[^\s+]+) (?P<sig>[A-Za-z0-9+/]+={0,2})$")
_ORIGIN = re.compile(r"^[^\s\u2014][^\n]*$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_TIME = re.compile(r"^time (?P<t>[0-9T:\.\-]+Z)$")


def log_origin(workspace_name: str) -> str:
    """A workspace log's origin, also its key name: no spaces or '+' (signed-note names)."""
    return "personagov/" + re.sub(r"[\s+]", "-", workspace_name)


def note_key_hash(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + b"\x01" + public_raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: datetime

    def body(self) -> bytes:
        if not _ORIGIN.match(self.origin):
            raise ValueError(f"checkpoint origin {self.origin!r} is not a single printable line")
        root64 = base64.b64encode(self.root).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root64}\ntime {iso_time(self.time)}\n".encode()


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    key_ids: tuple[str, ...]
    text: bytes


def sign_note(text: bytes, signer: Signer, name: str) -> bytes:
    """A signed note: text (ending in a newline), a blank line, one signature line by the
    key called ``name``."""
    if not text.endswith(b"\n") or b"\n\n" in text:
        raise ValueError("note text must end in a newline and hold no blank line")
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"note key name {name!r} must be non-empty without spaces or '+'")
    sig = signer.sign(text)
    blob = base64.b64encode(note_key_hash(name, signer.public_raw) + sig).decode("ascii")
    return text + b"\n" + f"{_SIG_PREFIX}{name} {blob}\n".encode()


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """The log signs under its origin as key name (C2SP tlog-checkpoint)."""
    return sign_note(cp.body(), signer, cp.origin)


def parse_checkpoint(text: bytes, where: str) -> tuple[Checkpoint, bytes, list[tuple[str, bytes]]]:
    """Split into (checkpoint, signed body, [(name, keyhash+sig)]) refusing any other shape."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationFailed(f"{where}: checkpoint is not UTF-8") from None
    body, sep, sigs = s.partition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise VerificationFailed(f"{where}: checkpoint lacks the blank line and signature block")
    lines = body.split("\n")
    if len(lines) != 4:
        raise VerificationFailed(
            f"{where}: checkpoint body has {len(lines)} lines, expected 4 "
            "(origin, size, root, time)"
        )
    origin, size_s, root_s, time_s = lines
    if not _ORIGIN.match(origin):
        raise VerificationFailed(f"{where}: checkpoint origin line is malformed")
    if not _SIZE.match(size_s):
        raise VerificationFailed(f"{where}: checkpoint tree size {size_s!r} is not a number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise VerificationFailed(f"{where}: checkpoint root is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode() != root_s:
        raise VerificationFailed(f"{where}: checkpoint root is not a canonical 32-byte hash")
    m = _TIME.match(time_s)
    if not m:
        raise VerificationFailed(f"{where}: checkpoint time line is malformed")
    try:
        t = parse_time(m.group("t"))
    except Exception:
        raise VerificationFailed(f"{where}: checkpoint time is not a valid time") from None
    cp = Checkpoint(origin=origin, size=int(size_s), root=root, time=t)
    if cp.body() != (body + "\n").encode():
        raise VerificationFailed(f"{where}: checkpoint is not in canonical form")
    sig_list: list[tuple[str, bytes]] = []
    for line in sigs[:-1].split("\n"):
        sm = _SIG_LINE.match(line)
        if not sm:
            raise VerificationFailed(f"{where}: malformed signature line")
        try:
            blob = base64.b64decode(sm.group("sig"), validate=True)
        except binascii.Error:
            raise VerificationFailed(f"{where}: signature is not base64") from None
        if len(blob) < 5:
            raise VerificationFailed(f"{where}: signature too short")
        sig_list.append((sm.group("name"), blob))
    if not sig_list:
        raise VerificationFailed(f"{where}: checkpoint carries no signature")
    return cp, (body + "\n").encode(), sig_list


class RevokedSignature(VerificationFailed):
    """Every trusted signature on a checkpoint is by a key revoked before the checkpoint's
    time: the checkpoint vouches for nothing, but is not a forgery either (a later
    checkpoint by a valid key may cover the same entries)."""


def _candidates(name: str, keyhash: bytes, cp: Checkpoint, trust: TrustStore) -> list[TrustedKey]:
    """Trusted keys this signature line names: by the origin (current) or, for checkpoints
    written before the origin became the key name, by the key id. Name and hash must both
    match; a line sharing only one of them is from an unknown key."""
    if name == cp.origin:
        return [k for k in trust.keys if note_key_hash(name, k.public_raw) == keyhash]
    legacy = trust.get(name)
    if legacy is not None and note_key_hash(name, legacy.public_raw) == keyhash:
        return [legacy]
    return []


def verify_checkpoint(text: bytes, trust: TrustStore, where: str) -> VerifiedCheckpoint:
    cp, body, sigs = parse_checkpoint(text, where)
    good: list[str] = []
    revoked: list[TrustedKey] = []
    for name, blob in sigs:
        keys = _candidates(name, blob[:4], cp, trust)
        if not keys:
            continue  # unknown key (a witness, a rotated-out key): ignored, per signed-note
        key = next((k for k in keys if k.verify(blob[4:], body)), None)
        if key is None:
            raise VerificationFailed(
                f"{where}: signature by key {keys[0].key_id[:16]} does not verify (checkpoint "
                "altered or signed by a different key)"
            )
        if not key.valid_at(cp.time):
            revoked.append(key)
            continue
        good.append(key.key_id)
    if not good and revoked:
        k = revoked[0]
        raise RevokedSignature(
            f"{where}: signed by key {k.key_id[:16]} at {iso_time(cp.time)}, after its "
            f"revocation at {iso_time(k.revoked_at) if k.revoked_at else '?'}"
        )
    if not good:
        raise VerificationFailed(f"{where}: no signature by a trusted key")
    return VerifiedCheckpoint(checkpoint=cp, key_ids=tuple(good), text=text)


def now_utc() -> datetime:
    return datetime.now(UTC)
