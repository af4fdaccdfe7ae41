"""The pre-pass cache: a source's pre-pass answers kept across processes, sealed.

Before its contract pass a source runs pre-pass queries (engine/source_prepass.py): the rows
whose key is duplicated (engine/source_keys.py) and, per referencing column, the rows whose
value the referenced source's valid rows do not hold (engine/source_refs.py). On a steady
refresh of unchanged files they give the same answer every time, and the local pool starts
a fresh process per job, so the answer is kept here and reused, only when all of this holds:

  * the entry records and seals the digest of exactly the inputs the answer depends on: the
    content digest (sha256) of the source's file and of every file it references
    (transitively), the declarations of those sources, the jurisdiction, the as-of date, the
    Polars version and the engine code that computes it (`source_prepass.inputs_key`). A
    file changed in any byte has another digest, so that entry no longer answers; there is
    one entry per source and jurisdiction (its name a MAC of the two), replaced by the next
    answer computed, so the cache never grows with the files' history;
  * the entry verifies under HMAC-SHA256 with a key derived from the workspace's master key
    (HKDF, domain "prepass-cache", column "rows"), sealed, written and read as the
    file-digest cache's entries are (engine/digest_cache.py: `SealedCache`, `replace_file`,
    `fetch`, `entry_doc`):
    an entry written or edited without the master key, torn, or sealed under another key
    version is ignored and the pre-pass runs again (a warning names the entry's MAC prefix).

What an entry holds is row numbers only (1-based data rows of the source's file) and the
inputs digest (a hash of hashes), never a key, value or identifier from the data, and its
file name is a MAC: no path, source or column name appears in the cache either.

Entries live in a subfolder of the file-digest cache (`.cache/digests/prepass/`).
PGOV_PREPASS_CACHE=off disables it for a process (every pre-pass runs, nothing is stored);
`pgov digests clear` removes its entries with the digests. See docs/keys.md ("The pre-pass
cache").
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engine import digest_cache
from engine.digest_cache import SealedCache, entry_doc, fetch, replace_file, switched_on

if TYPE_CHECKING:
    from engine.workspace import Workspace

log = structlog.get_logger("pgov.prepass_cache")

FORMAT = "pgov-prepass-cache/1"
ENV_SWITCH = "PGOV_PREPASS_CACHE"


@dataclass(frozen=True)
class Prepass:
    """A source's pre-pass answer, as row numbers: the rows of its duplicated keys, and per
    column it joins against a referenced source (in declaration order), the orphan rows."""

    duplicates: tuple[int, ...]
    orphans: tuple[tuple[int, ...], ...]


def enabled() -> bool:
    return switched_on(ENV_SWITCH)


def cache_dir(ws: Workspace) -> Path:
    return digest_cache.cache_dir(ws) / PrepassCache.SUBDIR


@dataclass(frozen=True)
class PrepassCache(SealedCache):
    """Sealed pre-pass answers, one entry per source and jurisdiction (`for_workspace`: None
    when PGOV_PREPASS_CACHE=off)."""

    SWITCH = ENV_SWITCH
    DERIVED = ("prepass-cache", "rows")
    SUBDIR = "prepass"

    def entry_path(self, slot: str) -> Path:
        """One entry per slot (a source in a jurisdiction), replaced when its inputs change,
        so the cache holds at most sources x jurisdictions entries however often files do."""
        return self.root / f"{self._mac(b'name', slot.encode())[:40]}.json"

    def _seal(self, slot: str, fields: dict[str, Any]) -> str:
        # The slot is sealed in (not stored): an entry copied under another name fails.
        body = [FORMAT, slot, fields["inputs"], fields["key_version"]]
        body += [fields["duplicates"], fields["orphans"]]
        return self._mac(b"entry", json.dumps(body, separators=(",", ":")).encode())

    def lookup(self, slot: str, inputs: str) -> Prepass | None:
        """The sealed answer for exactly these inputs, or None (then: run the pre-pass)."""
        path = self.entry_path(slot)
        fields = fetch(path, _parse, "prepass_cache")
        if fields is None or fields["inputs"] != inputs:
            return None  # none yet, or the answer for other bytes, specs or date: replaced
        if fields["key_version"] != self.key_version:
            log.info("prepass_cache.entry_ignored", reason="key_version", entry=path.stem[:12])
            return None
        if not hmac.compare_digest(self._seal(slot, fields), fields["mac"]):
            # Written by someone without the master key, or edited since: never trusted.
            log.warning("prepass_cache.entry_ignored", reason="mac", entry=path.stem[:12])
            return None
        return Prepass(tuple(fields["duplicates"]), tuple(map(tuple, fields["orphans"])))

    def store(self, slot: str, inputs: str, found: Prepass) -> bool:
        """Seal and write the slot's entry (atomic replace); False when it cannot be written."""
        fields: dict[str, Any] = {
            "inputs": inputs,
            "key_version": self.key_version,
            "duplicates": list(found.duplicates),
            "orphans": [list(rows) for rows in found.orphans],
        }
        doc = {"format": FORMAT, **fields, "mac": self._seal(slot, fields)}
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            replace_file(self.entry_path(slot), json.dumps(doc, sort_keys=True).encode())
        except OSError as exc:  # a cache that cannot be written only costs a pre-pass
            log.warning("prepass_cache.write_failed", error=type(exc).__name__)
            return False
        return True


def _rows(value: object) -> bool:
    return isinstance(value, list) and all(type(r) is int and r > 0 for r in value)


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The entry's fields when it is well-formed, else None (torn, truncated, edited)."""
    doc = entry_doc(raw, FORMAT)
    inputs = None if doc is None else doc.get("inputs")
    if doc is None or not isinstance(inputs, str) or len(inputs) != 64:
        return None
    orphans = doc.get("orphans")
    if not _rows(doc.get("duplicates")) or not isinstance(orphans, list):
        return None
    return doc if all(_rows(rows) for rows in orphans) else None


def entries(ws: Workspace) -> list[Path]:
    root = cache_dir(ws)
    return sorted(root.glob("*.json")) if root.is_dir() else []


def clear(ws: Workspace) -> int:
    """Remove every entry (and stray temp files); the next refresh runs every pre-pass."""
    n = digest_cache.remove_entries(cache_dir(ws))
    log.info("prepass_cache.cleared", entries=n)
    return n
