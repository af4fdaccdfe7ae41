"""Keyring: the versioned master pseudonymisation key and everything derived from it.

The master key lives outside the data (EDPB 01/2025: the secret that links a token back to a
person must not sit in the domain that uses the tokens). It comes from `[keys].master`:

    env:VAR            hex of >= 32 bytes (one version, 1) or a key-set JSON document
    file:PATH          a key-set JSON document, workspace-relative, mode 0600 or stricter,
                       owned by the current user; anything looser is refused
    kms:PROVIDER:REF   a registered `KeyProvider` (env and file are built in; AWS KMS or
                       Vault plug in through `register_provider`, see docs/keys.md)

A key set keeps every version so rotation never orphans old tokens:

    {"format": "pgov-master-keys/1", "current": 2,
     "versions": {"1": {"created": "...", "key": "<hex>"}, "2": {...}}}

Per-domain, per-column keys are HKDF-SHA256 with info = "domain|column|version". Key bytes
never appear in a repr, a log line, an exception or anything serialised.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import KeyMaterialError
from engine.workspace import Workspace

KEYSET_FORMAT = "pgov-master-keys/1"
MIN_KEY_BYTES = 32
_SEAL_MAGIC = b"pgs1"
_NONCE_BYTES = 12


@runtime_checkable
class KeyProvider(Protocol):
    """Where master key material comes from.

    `get_master_key(ref)` returns either a key-set JSON document (UTF-8 bytes, see the module
    docstring) or raw key bytes (>= 32), which count as version 1. A KMS provider typically
    stores the key-set document encrypted under a KMS key and returns it decrypted.
    """

    def get_master_key(self, ref: str) -> bytes: ...


class EnvProvider:
    """ref = the name of an environment variable holding hex or a key-set JSON document."""

    def get_master_key(self, ref: str) -> bytes:
        value = os.environ.get(ref)
        if value is None or not value.strip():
            raise KeyMaterialError(f"master key: environment variable {ref} is not set")
        text = value.strip()
        if text.startswith("{"):
            return text.encode("utf-8")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise KeyMaterialError(
                f"master key: environment variable {ref} is not hex (nor a key-set document)"
            ) from None


class FileProvider:
    """ref = a path (relative to `base`) to a key-set document readable only by its owner."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def resolve(self, ref: str) -> Path:
        p = Path(ref)
        return p if p.is_absolute() else self.base / p

    def get_master_key(self, ref: str) -> bytes:
        path = self.resolve(ref)
        try:
            # O_NOFOLLOW: a symlink could point the check at one file and the read at another.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise KeyMaterialError(
                f"master key: {path} does not exist (run 'pgov keys init')"
            ) from None
        except OSError as exc:
            raise KeyMaterialError(
                f"master key: cannot open {path} ({exc.strerror or 'error'})"
            ) from None
        try:
            st = os.fstat(fd)
            _check_private(path, st)
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        finally:
            os.close(fd)


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyMaterialError(f"master key: {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyMaterialError(
            f"master key: {path} has mode {stat.S_IMODE(st.st_mode):04o}; refusing a key "
            "file readable by group or others (chmod 600)"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeyMaterialError(f"master key: {path} is not owned by the current user")


_PROVIDERS: dict[str, Callable[[Workspace], KeyProvider]] = {
    "env": lambda ws: EnvProvider(),
    "file": lambda ws: FileProvider(ws.root),
}


def register_provider(name: str, factory: Callable[[Workspace], KeyProvider]) -> None:
    """Plug in a KMS: `kms:NAME:REF` in pgov.toml then calls factory(ws).get_master_key(REF)."""
    if not name or ":" in name:
        raise KeyMaterialError(f"key provider name '{name}' is invalid")
    _PROVIDERS[name] = factory


@dataclass(frozen=True)
class KeyVersion:
    version: int
    created: str
    # repr=False: a dataclass repr would otherwise print the key into any log or traceback.
    key: bytes = field(repr=False, compare=False)


@dataclass(frozen=True)
class MasterSpec:
    provider: str
    ref: str

    @classmethod
    def parse(cls, text: str) -> MasterSpec:
        kind, sep, rest = text.partition(":")
        if not sep or not rest:
            raise KeyMaterialError(
                f"[keys].master '{text}': expected env:VAR, file:PATH or kms:PROVIDER:REF"
            )
        if kind in ("env", "file"):
            return cls(kind, rest)
        if kind == "kms":
            provider, sep2, ref = rest.partition(":")
            if not sep2 or not provider or not ref:
                raise KeyMaterialError(f"[keys].master '{text}': expected kms:PROVIDER:REF")
            return cls(provider, ref)
        raise KeyMaterialError(
            f"[keys].master '{text}': unknown source '{kind}' (env, file or kms)"
        )


def parse_keyset(raw: bytes, origin: str) -> dict[int, KeyVersion]:
    """Key-set JSON or raw bytes -> versions. Every problem is a refusal naming `origin`."""
    doc: Any = None
    if raw[:1] == b"{":
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyMaterialError(
                f"master key: {origin} is not a valid key-set document"
            ) from None
    if doc is None:
        _check_length(raw, origin, 1)
        return {1: KeyVersion(1, "", raw)}
    if not isinstance(doc, dict) or not isinstance(doc.get("versions"), dict):
        raise KeyMaterialError(f"master key: {origin} has no 'versions' table")
    versions: dict[int, KeyVersion] = {}
    for name, entry in doc["versions"].items():
        try:
            v = int(name)
        except ValueError:
            raise KeyMaterialError(
                f"master key: {origin}: version '{name}' is not an integer"
            ) from None
        if v < 1 or not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise KeyMaterialError(f"master key: {origin}: version {v} is malformed")
        try:
            key = bytes.fromhex(entry["key"])
        except ValueError:
            raise KeyMaterialError(f"master key: {origin}: version {v} is not hex") from None
        _check_length(key, origin, v)
        versions[v] = KeyVersion(v, str(entry.get("created", "")), key)
    if not versions:
        raise KeyMaterialError(f"master key: {origin} holds no key versions")
    current = doc.get("current", max(versions))
    if not isinstance(current, int) or current not in versions:
        raise KeyMaterialError(f"master key: {origin}: current version is not in the key set")
    if current != max(versions):
        # Rolling back to an older key would silently re-issue old-version tokens.
        raise KeyMaterialError(f"master key: {origin}: current version is not the newest")
    return versions


def _check_length(key: bytes, origin: str, version: int) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise KeyMaterialError(
            f"master key: {origin}: version {version} is {len(key)} bytes; "
            f"at least {MIN_KEY_BYTES} are required"
        )


def keyset_document(versions: Mapping[int, KeyVersion]) -> bytes:
    """The on-disk form of a key set (the only place key hex is ever written)."""
    doc = {
        "format": KEYSET_FORMAT,
        "current": max(versions),
        "versions": {
            str(v.version): {"created": v.created, "key": v.key.hex()}
            for v in sorted(versions.values(), key=lambda k: k.version)
        },
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def new_version(version: int) -> KeyVersion:
    return KeyVersion(
        version, datetime.now(UTC).isoformat(timespec="seconds"), secrets.token_bytes(32)
    )


def write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write a secret atomically with mode 0600 from the first byte (no chmod window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():
        raise KeyMaterialError(f"{path} already exists; refusing to overwrite a key")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            # link() fails if the target appeared meanwhile: never clobber a key.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyMaterialError(
                    f"{path} already exists; refusing to overwrite a key"
                ) from None
            tmp.unlink()
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Keyring:
    """Versioned master keys and the keys derived from them. Never prints key material."""

    def __init__(self, versions: Mapping[int, KeyVersion], *, origin: str = "memory") -> None:
        if not versions:
            raise KeyMaterialError("master key: empty key set")
        self._versions: dict[int, KeyVersion] = dict(versions)
        self.origin = origin

    @classmethod
    def load(cls, ws: Workspace) -> Keyring:
        spec = MasterSpec.parse(ws.config.keys.master)
        factory = _PROVIDERS.get(spec.provider)
        if factory is None:
            raise KeyMaterialError(
                f"[keys].master: no key provider '{spec.provider}' is registered "
                f"(registered: {', '.join(sorted(_PROVIDERS))})"
            )
        raw = factory(ws).get_master_key(spec.ref)
        origin = f"{spec.provider}:{spec.ref}"
        return cls(parse_keyset(raw, origin), origin=origin)

    @classmethod
    def generate(cls) -> Keyring:
        return cls({1: new_version(1)}, origin="generated")

    def __repr__(self) -> str:
        return f"Keyring(origin={self.origin!r}, versions={sorted(self._versions)})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickling would serialise the key material (e.g. shipping a keyring to a Dask
        # worker): refuse; workers load the key from their own provider.
        raise TypeError("Keyring holds key material and cannot be serialised")

    @property
    def current_version(self) -> int:
        return max(self._versions)

    @property
    def versions(self) -> list[int]:
        return sorted(self._versions)

    def info(self) -> list[dict[str, Any]]:
        """Ids, versions and dates only: what `pgov keys list` shows."""
        return [
            {
                "version": v.version,
                "created": v.created,
                "current": v.version == self.current_version,
            }
            for v in sorted(self._versions.values(), key=lambda k: k.version)
        ]

    def _master(self, version: int | None) -> tuple[int, bytes]:
        v = self.current_version if version is None else version
        entry = self._versions.get(v)
        if entry is None:
            raise KeyMaterialError(
                f"key version {v} is unknown to this keyring (known: {self.versions})"
            )
        return v, entry.key

    def derive(
        self, domain: str, column: str, version: int | None = None, *, length: int = 32
    ) -> bytes:
        """HKDF-SHA256(master[version], info="domain|column|version")."""
        v, master = self._master(version)
        if "|" in domain or "|" in column:
            # The separator must be unambiguous or two (domain, column) pairs could collide.
            raise KeyMaterialError("domain and column names must not contain '|'")
        info = f"{domain}|{column}|{v}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)

    def with_new_version(self) -> Keyring:
        nxt = self.current_version + 1
        return Keyring({**self._versions, nxt: new_version(nxt)}, origin=self.origin)

    def document(self) -> bytes:
        return keyset_document(self._versions)

    def sealer(self, purpose: str) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
        """(seal, open) with AES-256-GCM under a key derived for `purpose`.

        Blob: b"pgs1" | version (u32 BE) | nonce (12) | ciphertext+tag. Sealing uses the
        current version; opening uses the version in the blob, so rotation keeps old blobs
        readable. The purpose and version are bound as associated data: a blob sealed for
        one purpose never opens under another.
        """
        current = self.current_version

        def _aad(v: int) -> bytes:
            return f"seal|{purpose}|{v}".encode()

        def seal(plaintext: bytes) -> bytes:
            key = self.derive("seal", purpose, current)
            nonce = secrets.token_bytes(_NONCE_BYTES)
            ct = AESGCM(key).encrypt(nonce, plaintext, _aad(current))
            return _SEAL_MAGIC + struct.pack(">I", current) + nonce + ct

        def open_(blob: bytes) -> bytes:
            head = len(_SEAL_MAGIC) + 4 + _NONCE_BYTES
            if len(blob) < head + 16 or not blob.startswith(_SEAL_MAGIC):
                raise KeyMaterialError(f"sealed blob for '{purpose}' is malformed")
            (v,) = struct.unpack(">I", blob[4:8])
            key = self.derive("seal", purpose, v)
            try:
                return AESGCM(key).decrypt(blob[8:head], blob[head:], _aad(v))
            except InvalidTag:
                raise KeyMaterialError(
                    f"sealed blob for '{purpose}' failed authentication (wrong key or altered)"
                ) from None

        return seal, open_
