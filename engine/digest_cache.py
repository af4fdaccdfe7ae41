"""The file-digest cache: SHA-256 digests of source files kept across processes, sealed.

A refresh records the SHA-256 of every input file in its signed lineage. Hashing the 10M
sample's files costs about 3.6 CPU-seconds per refresh, and the local pool starts a fresh
process per job, so the same unchanged multi-GB files were hashed again and again. An entry
here lets a later process reuse a digest, and only when all of this holds:

  * the file's identity and state are exactly those the digest was taken from: device,
    inode, size, mtime_ns and ctime_ns (`StatKey`). ctime cannot be set by an unprivileged
    process and the kernel moves it on every write, truncate, rename, chmod or utime, so
    content changed with its size and mtime restored still misses;
  * the entry verifies under HMAC-SHA256 with a key derived from the workspace's master
    key (HKDF, domain "digest-cache", column "sha256"), bound to the stat fields, the digest
    and the time of hashing: an entry written or edited by anyone without the master key is
    ignored (the file is hashed again) and a warning is logged (no path, no value);
  * the entry is not racy: a file whose mtime or ctime lies within RACY_NS of the moment
    its reading began could be changed again within the same filesystem timestamp tick
    without any stat field moving (git's "racy clean" problem), so such a digest is never
    stored, nor trusted if found.

The key never leaves memory: entries hold a MAC, never the key. Entries are named by a MAC
of (device, inode), so neither file names nor paths appear in the cache. Writes are a temp
file plus os.replace: two pool workers writing one entry at once leave one whole entry (the
last writer's); a torn, truncated or otherwise unreadable entry is ignored and rewritten.

PGOV_DIGEST_CACHE=off disables it for a process (every file is hashed, nothing stored);
`pgov digests clear` removes every entry. See docs/keys.md ("The file-digest cache").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import structlog

if TYPE_CHECKING:  # the keyring's package imports the tokeniser: not needed to read a file
    from engine.pseudonym.keyring import Keyring
    from engine.workspace import Workspace

log = structlog.get_logger("pgov.digest_cache")
T = TypeVar("T")

FORMAT = "pgov-digest-cache/1"
ENV_SWITCH = "PGOV_DIGEST_CACHE"
CACHE_DIR = Path(".cache") / "digests"
# Wider than the coarsest timestamp granularity of the filesystems a workspace lives on
# (FAT: 2 s; ext4, xfs, NFSv4: nanoseconds, advanced on each kernel tick).
RACY_NS = 2_000_000_000
_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "hashed_at_ns", "sha256", "key_version")


@dataclass(frozen=True)
class StatKey:
    """What identifies a file's state: any write, rename or chmod moves ctime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def racy(self, hashed_at_ns: int) -> bool:
        """True when the file was touched too close to the start of its reading for a later
        change in the same timestamp tick to show in its stat."""
        return max(self.mtime_ns, self.ctime_ns) >= hashed_at_ns - RACY_NS


def now_ns() -> int:
    """The clock hashing is timed by (a seam: tests move it to make fresh files non-racy)."""
    return time.time_ns()


def switched_on(variable: str) -> bool:
    """A cache's environment switch: on unless set to off/0/false/no (engine/prepass_cache.py
    has its own variable)."""
    return os.environ.get(variable, "on").strip().lower() not in ("off", "0", "false", "no")


def enabled() -> bool:
    return switched_on(ENV_SWITCH)


def seal(key: bytes, label: bytes, payload: bytes) -> str:
    """HMAC-SHA256 of `label|payload`: every sealed cache entry and entry name (the label
    keeps an entry's MAC from ever standing for a name, or another cache's entry)."""
    return hmac.new(key, label + b"|" + payload, hashlib.sha256).hexdigest()


def cache_dir(ws: Workspace) -> Path:
    return ws.root / CACHE_DIR


@dataclass(frozen=True)
class SealedCache:
    """Entries under one directory, sealed with a MAC key derived from the master key (held
    in memory, never written). This cache, and engine/prepass_cache.py's in a subfolder."""

    SWITCH: ClassVar[str] = ENV_SWITCH  # the environment variable that turns it off
    DERIVED: ClassVar[tuple[str, str]] = ("digest-cache", "sha256")  # derive(domain, column)
    SUBDIR: ClassVar[str] = ""  # below `cache_dir`

    root: Path
    key_version: int
    _key: bytes = field(repr=False, compare=False)

    @classmethod
    def for_workspace(cls, ws: Workspace, keyring: Keyring) -> Self | None:
        """The workspace's cache, or None when its switch (e.g. PGOV_DIGEST_CACHE) is off."""
        domain, column = cls.DERIVED
        if not switched_on(cls.SWITCH):
            log.info(f"{domain.replace('-', '_')}.disabled", switch=cls.SWITCH)
            return None
        version = keyring.current_version
        return cls(cache_dir(ws) / cls.SUBDIR, version, keyring.derive(domain, column, version))

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError(f"{type(self).__name__} holds key material and cannot be serialised")

    def _mac(self, label: bytes, payload: bytes) -> str:
        return seal(self._key, label, payload)


@dataclass(frozen=True)
class DigestCache(SealedCache):
    """Sealed file digests, one entry per file (device, inode)."""

    def entry_path(self, key: StatKey) -> Path:
        name = self._mac(b"name", f"{key.dev}|{key.ino}".encode())[:40]
        return self.root / f"{name}.json"

    def _seal(self, fields: dict[str, Any]) -> str:
        payload = json.dumps([FORMAT, *(fields[f] for f in _FIELDS)], separators=(",", ":"))
        return self._mac(b"entry", payload.encode())

    def verifies(self, fields: dict[str, Any] | None) -> bool:
        return (
            fields is not None
            and fields["key_version"] == self.key_version
            and hmac.compare_digest(self._seal(fields), str(fields["mac"]))
        )

    def lookup(self, key: StatKey) -> str | None:
        """The sealed digest for exactly this file state, or None (then: hash the file)."""
        path = self.entry_path(key)
        fields = fetch(path, _parse, "digest_cache")
        if fields is None:
            return None
        if fields["key_version"] != self.key_version:
            log.info("digest_cache.entry_ignored", reason="key_version", entry=path.stem[:12])
            return None
        if not self.verifies(fields):
            # Written by someone without the master key, or edited since: never trusted.
            log.warning("digest_cache.entry_ignored", reason="mac", entry=path.stem[:12])
            return None
        stored = StatKey(*(int(fields[f]) for f in _FIELDS[:5]))
        if stored != key:
            return None  # the file changed since (or the inode was reused): stale
        if stored.racy(int(fields["hashed_at_ns"])):
            return None  # never written by `store`; refused all the same
        return str(fields["sha256"])

    def store(self, key: StatKey, hashed_at_ns: int, sha256: str) -> bool:
        """Seal and write an entry (atomic replace); False when the file is racy."""
        if key.racy(hashed_at_ns):
            return False
        fields: dict[str, Any] = {
            "dev": key.dev,
            "ino": key.ino,
            "size": key.size,
            "mtime_ns": key.mtime_ns,
            "ctime_ns": key.ctime_ns,
            "hashed_at_ns": hashed_at_ns,
            "sha256": sha256,
            "key_version": self.key_version,
        }
        doc = {"format": FORMAT, **fields, "mac": self._seal(fields)}
        path = self.entry_path(key)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            replace_file(path, json.dumps(doc, sort_keys=True).encode() + b"\n")
        except OSError as exc:  # a cache that cannot be written only costs a re-hash
            log.warning("digest_cache.write_failed", error=type(exc).__name__)
            return False
        return True


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (temp file, then os.replace): two writers
    at once leave one whole entry, never a torn one."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(path: Path, parse: Callable[[bytes], T | None], event: str) -> T | None:
    """An entry's fields as `parse` reads them, or None: a missing entry quietly, an
    unreadable or malformed one with a warning (`<event>.unreadable`,
    `<event>.entry_ignored`) naming the entry's MAC prefix, never a path or a value."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning(f"{event}.unreadable", error=type(exc).__name__)
        return None
    fields = parse(raw)
    if fields is None:
        log.warning(f"{event}.entry_ignored", reason="corrupt", entry=path.stem[:12])
    return fields


def entry_doc(raw: bytes, fmt: str) -> dict[str, Any] | None:
    """A sealed entry's JSON object when it is one of format `fmt` with an integer key
    version and a MAC, else None (torn, truncated, edited, another cache's)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        return None
    if type(doc.get("key_version")) is not int or not isinstance(doc.get("mac"), str):
        return None
    return doc


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The entry's fields when it is well-formed, else None (torn, truncated, edited)."""
    doc = entry_doc(raw, FORMAT)
    if doc is None or any(type(doc.get(f)) is not int for f in _FIELDS[:6]):
        return None
    digest = doc.get("sha256")
    return doc if isinstance(digest, str) and len(digest) == 64 else None


def read_entry(path: Path, parse: Callable[[bytes], T | None]) -> T | None:
    """An entry as `parse` reads it; None when it is gone or unreadable."""
    try:
        return parse(path.read_bytes())
    except OSError:  # removed meanwhile (a concurrent clear): not an entry any more
        return None


def entries(ws: Workspace) -> list[Path]:
    root = cache_dir(ws)
    return sorted(root.glob("*.json")) if root.is_dir() else []


def clear(ws: Workspace) -> int:
    """Remove every entry (and stray temp files); the next refresh hashes every file."""
    n = remove_entries(cache_dir(ws))
    log.info("digest_cache.cleared", entries=n)
    return n


def remove_entries(root: Path) -> int:
    """Remove a cache directory's entries and stray temp files (not its subfolders: the
    pre-pass cache's lives in this one); the number of entries removed."""
    if not root.is_dir():
        return 0
    n = 0
    for p in root.iterdir():
        if p.suffix in (".json", ".tmp") and p.is_file():
            p.unlink(missing_ok=True)
            n += p.suffix == ".json"
    return n


def status(ws: Workspace, keyring: Keyring | None) -> dict[str, Any]:
    """Entry counts; with the keyring, how many verify under the current key."""
    found = entries(ws)
    out: dict[str, Any] = {
        "enabled": enabled(),
        "entries": len(found),
        "bytes": sum(p.stat().st_size for p in found if p.exists()),
    }
    if keyring is not None:
        v = keyring.current_version
        cache = DigestCache(cache_dir(ws), v, keyring.derive("digest-cache", "sha256", v))
        good = sum(cache.verifies(read_entry(p, _parse)) for p in found)
        out["verified"] = good
        out["ignored"] = len(found) - good
    return out
