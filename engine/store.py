"""The store: atomic publication of a persona version directory.

A version is written into a staging directory beside its final place and renamed into
place in one step, so a reader sees either no version or a whole one. A crashed refresh
leaves only a staging directory, which the next refresh of the chain removes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from lineage.canonical import canonical_json, sha256_hex

log = structlog.get_logger(__name__)

STAGING = ".staging"
MANIFEST = "manifest.json"
STATEMENT = "statement.dsse.json"


@dataclass(frozen=True)
class PersonaVersion:
    jurisdiction: str
    purpose: str
    version_id: str
    path: Path
    manifest: dict[str, Any]
    statement_sha256: str


def predecessor_ref(predecessor: PersonaVersion | None) -> dict[str, str] | None:
    """How a version names the one before it: its id and its statement's digest."""
    if predecessor is None:
        return None
    return {"version": predecessor.version_id, "statement_sha256": predecessor.statement_sha256}


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def staging_dir(chain_dir: Path, run_id: str) -> Path:
    path = chain_dir / STAGING / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path


def clear_stale_staging(chain_dir: Path) -> int:
    """Remove staging dirs left by crashed refreshes; called under the chain's lock."""
    root = chain_dir / STAGING
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        log.warning("removed_stale_staging", count=len(stale), chain=str(chain_dir))
    return len(stale)


def write_json(path: Path, obj: Any) -> Path:
    path.write_bytes(canonical_json(obj) + b"\n")
    return path


def output_digests(directory: Path, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file under directory, by relative POSIX path, sorted."""
    return {
        p.relative_to(directory).as_posix(): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() not in exclude
    }


def _fsync_tree(directory: Path) -> None:
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(staging: Path, final: Path) -> None:
    """Make the staged version visible in one rename (same filesystem, so atomic)."""
    if final.exists():
        raise FileExistsError(f"version directory already exists: {final}")
    _fsync_tree(staging)
    os.rename(staging, final)
    _fsync_dir(final.parent)


def load_version(path: Path) -> PersonaVersion:
    manifest_bytes = (path / MANIFEST).read_bytes()
    import json

    manifest = json.loads(manifest_bytes)
    statement = path / STATEMENT
    return PersonaVersion(
        jurisdiction=manifest["jurisdiction"],
        purpose=manifest["purpose"],
        version_id=manifest["version_id"],
        path=path,
        manifest=manifest,
        statement_sha256=sha256_hex(statement.read_bytes()) if statement.is_file() else "",
    )
