"""Workspace signing keys (Ed25519) and the trust file verifiers read.

Private keys live one per file in ``signing_dir`` (``<key_id>.pem``, mode 0600; a looser mode
is refused, because a key others could read signs nothing we will vouch for). The trust file
is public JSON: every key ever used, with its creation time and, once revoked, its
revocation time. Rotation adds a key and keeps older ones, so old versions stay verifiable;
revocation makes a key stop verifying anything whose *signed* timestamp is at or after the
revocation time.

Key id = hex SHA-256 of the raw 32-byte public key: derived, so a trust file cannot bind a
key id to a different key without being refused on load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from engine.errors import KeyMaterialError

log = structlog.get_logger(__name__)

TRUST_FORMAT = "personagov-trust/v1"


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise KeyMaterialError("timestamps must carry a time zone (naive datetime refused)")
    return dt.astimezone(UTC)


def _iso(dt: datetime) -> str:
    return _utc(dt).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time that must carry a zone (``Z`` or an offset)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KeyMaterialError(f"not an ISO-8601 time: {text!r}") from None
    return _utc(dt)


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def public_raw(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Ed25519Signer:
    key_id: str
    _key: Ed25519PrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    @property
    def public_raw(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


class TrustedKeyRecord(BaseModel):
    """One key in the trust file (pydantic: this is an edge, read from disk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    algorithm: str = "ed25519"
    public_key: str  # base64 of the raw 32-byte key
    created_at: str
    revoked_at: str | None = None

    @field_validator("algorithm")
    @classmethod
    def _ed25519(cls, v: str) -> str:
        if v != "ed25519":
            raise ValueError(f"unsupported algorithm {v!r} (only ed25519)")
        return v


class TrustFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = TRUST_FORMAT
    keys: list[TrustedKeyRecord]


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_raw: bytes
    created_at: datetime
    revoked_at: datetime | None

    def valid_at(self, at: datetime | None) -> bool:
        """May this key vouch for something signed at ``at``?  ``None``: only if never revoked."""
        if self.revoked_at is None:
            return True
        if at is None:
            return False
        return _utc(at) < self.revoked_at

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def to_record(self) -> TrustedKeyRecord:
        return TrustedKeyRecord(
            key_id=self.key_id,
            public_key=base64.b64encode(self.public_raw).decode("ascii"),
            created_at=_iso(self.created_at),
            revoked_at=_iso(self.revoked_at) if self.revoked_at else None,
        )


@dataclass(frozen=True)
class TrustStore:
    keys: tuple[TrustedKey, ...]
    source: str = "(in memory)"

    @classmethod
    def load(cls, trust_file: Path) -> TrustStore:
        if not trust_file.is_file():
            raise KeyMaterialError(f"{trust_file}: no trust file (run 'pgov keys init')")
        try:
            raw = json.loads(trust_file.read_bytes())
            parsed = TrustFile.model_validate(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise KeyMaterialError(f"{trust_file}: not valid JSON") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise KeyMaterialError(
                f"{trust_file}: invalid trust file at {loc}: {first['msg']}"
            ) from None
        return cls.from_records(parsed, str(trust_file))

    @classmethod
    def from_records(cls, parsed: TrustFile, source: str) -> TrustStore:
        if parsed.format != TRUST_FORMAT:
            raise KeyMaterialError(f"{source}: unknown trust file format {parsed.format!r}")
        seen: set[str] = set()
        keys: list[TrustedKey] = []
        for rec in parsed.keys:
            try:
                pub = base64.b64decode(rec.public_key, validate=True)
            except ValueError:
                raise KeyMaterialError(
                    f"{source}: key {rec.key_id}: public_key not base64"
                ) from None
            if len(pub) != 32:
                raise KeyMaterialError(f"{source}: key {rec.key_id}: public key is not 32 bytes")
            if key_id_of(pub) != rec.key_id:
                raise KeyMaterialError(
                    f"{source}: key id {rec.key_id} does not match its public key"
                )
            if rec.key_id in seen:
                raise KeyMaterialError(f"{source}: key {rec.key_id} listed twice")
            seen.add(rec.key_id)
            keys.append(
                TrustedKey(
                    key_id=rec.key_id,
                    public_raw=pub,
                    created_at=parse_time(rec.created_at),
                    revoked_at=parse_time(rec.revoked_at) if rec.revoked_at else None,
                )
            )
        return cls(keys=tuple(keys), source=source)

    def get(self, key_id: str) -> TrustedKey | None:
        for k in self.keys:
            if k.key_id == key_id:
                return k
        return None

    def to_json(self) -> bytes:
        doc = TrustFile(keys=[k.to_record() for k in self.keys])
        return (json.dumps(doc.model_dump(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory, fsync, rename: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)  # a full disk leaves no temp file behind
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyMaterialError(f"{path}: private signing key missing") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyMaterialError(
            f"{path}: permissions {oct(stat.S_IMODE(st.st_mode))} are too open "
            "(group/other may read it); refusing to use it — chmod 600"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise KeyMaterialError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{path}: not an Ed25519 key")
    return key


class SigningKeyring:
    """The workspace's signing keys: private halves in ``signing_dir``, public in the trust file."""

    def __init__(self, signing_dir: Path, trust_file: Path) -> None:
        self.signing_dir = signing_dir
        self.trust_file = trust_file

    def _store(self) -> TrustStore:
        if not self.trust_file.exists():
            return TrustStore(keys=(), source=str(self.trust_file))
        return TrustStore.load(self.trust_file)

    def _new_key(self, store: TrustStore, now: datetime) -> str:
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kid = key_id_of(pub)
        self.signing_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.signing_dir, 0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(self.signing_dir / f"{kid}.pem", pem, mode=0o600)
        rec = TrustedKey(key_id=kid, public_raw=pub, created_at=_utc(now), revoked_at=None)
        updated = TrustStore(keys=(*store.keys, rec), source=store.source)
        atomic_write(self.trust_file, updated.to_json())
        return kid

    def init(self) -> str:
        """Create the first key; refuses if the trust file already lists keys."""
        store = self._store()
        if store.keys:
            raise KeyMaterialError(
                f"{self.trust_file}: signing keys already initialised (use rotate)"
            )
        kid = self._new_key(store, datetime.now(UTC))
        log.info("signing_key_created", key_id=kid)
        return kid

    def rotate(self) -> str:
        """Add a new signing key; older keys stay in the trust file and keep verifying."""
        store = self._store()
        if not store.keys:
            raise KeyMaterialError(f"{self.trust_file}: no keys yet (run 'pgov keys init')")
        kid = self._new_key(store, datetime.now(UTC))
        log.info("signing_key_rotated", key_id=kid)
        return kid

    def revoke(self, key_id: str, at: datetime) -> None:
        store = self._store()
        if store.get(key_id) is None:
            raise KeyMaterialError(f"{self.trust_file}: no key {key_id}")
        keys = tuple(
            TrustedKey(k.key_id, k.public_raw, k.created_at, _utc(at)) if k.key_id == key_id else k
            for k in store.keys
        )
        atomic_write(self.trust_file, TrustStore(keys=keys, source=store.source).to_json())
        log.info("signing_key_revoked", key_id=key_id, at=_iso(at))

    def list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        active = self._active_id()
        for k in self._store().keys:
            out.append(
                {
                    "key_id": k.key_id,
                    "algorithm": "ed25519",
                    "created_at": _iso(k.created_at),
                    "revoked_at": _iso(k.revoked_at) if k.revoked_at else None,
                    "active": k.key_id == active,
                    "has_private_key": (self.signing_dir / f"{k.key_id}.pem").exists(),
                }
            )
        return out

    def _active_id(self) -> str | None:
        candidates = [
            k
            for k in self._store().keys
            if k.revoked_at is None and (self.signing_dir / f"{k.key_id}.pem").exists()
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda k: k.created_at).key_id

    def signer(self) -> Ed25519Signer:
        """The newest unrevoked key with a private half here."""
        kid = self._active_id()
        if kid is None:
            raise KeyMaterialError(
                f"{self.signing_dir}: no usable signing key (none, or all revoked): "
                "run 'pgov keys init' or 'pgov keys rotate'"
            )
        key = load_private_key(self.signing_dir / f"{kid}.pem")
        signer = Ed25519Signer(key_id=kid, _key=key)
        if signer.public_raw != (self._store().get(kid) or _missing(kid)).public_raw:
            raise KeyMaterialError(f"{self.signing_dir}/{kid}.pem does not match its key id")
        return signer

    def trust(self) -> TrustStore:
        return TrustStore.load(self.trust_file)


def _missing(kid: str) -> TrustedKey:
    raise KeyMaterialError(f"key {kid} not in the trust file")
