"""Version chains: the published persona versions of one jurisdiction and purpose, read from disk.

A chain lives in ``versions/<jurisdiction>/<purpose>/`` as directories ``v0001``,
``v0002``, ... each holding a ``manifest.json`` and a signed ``statement.dsse.json``. Each
manifest (and the signed statement inside its envelope) names its predecessor and the sha256
of the predecessor's statement bytes, so deleting, replacing or reordering a version breaks
the chain visibly. This module only reads; the store publishes, under the refresh lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import BadInputError, UsageError
from engine.locks import check_name
from engine.workspace import Workspace

MANIFEST = "manifest.json"
STATEMENT = "statement.dsse.json"
LATEST = "latest"
CURRENT_REF = "current"  # the version a compliance officer approved (engine/approval.py)
_VERSION_DIR = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class VersionInfo:
    jurisdiction: str
    purpose: str
    version_id: str
    path: Path
    # When the version became visible (the manifest's own field if it has one, else the
    # directory's mtime: the publishing rename sets it).
    created: str
    validity: str | None
    predecessor: str | None
    predecessor_statement_sha256: str | None
    statement_sha256: str | None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def version_number(version_id: str) -> int | None:
    m = _VERSION_DIR.fullmatch(version_id)
    return int(m.group(1)) if m else None


def format_version_id(number: int) -> str:
    return f"v{number:04d}"


def _version_dirs(chain: Path) -> list[tuple[int, Path]]:
    """Published version dirs of a chain, in order; staging and stray files are not versions."""
    if not chain.is_dir():
        return []
    found = []
    for p in chain.iterdir():
        n = version_number(p.name)
        if n is not None and p.is_dir():
            found.append((n, p))
    return sorted(found)


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_manifest(version_dir: Path) -> dict[str, Any]:
    path = version_dir / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BadInputError(f"{path}: missing; not a published version") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: manifest is not a JSON object")
    return data


def _info(jurisdiction: str, purpose: str, version_dir: Path) -> VersionInfo:
    manifest = _read_manifest(version_dir)
    pred = manifest.get("predecessor")
    pred_id = pred_sha = None
    if isinstance(pred, dict):
        # "version" is what the store writes; "version_id" is tolerated for older manifests.
        raw_id = pred.get("version", pred.get("version_id"))
        pred_id = str(raw_id) if raw_id is not None else None
        raw_sha = pred.get("statement_sha256")
        pred_sha = str(raw_sha) if raw_sha is not None else None
    created = manifest.get("created") or manifest.get("created_at")
    if not created:
        mtime = version_dir.stat().st_mtime
        created = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
    validity = manifest.get("validity")
    return VersionInfo(
        jurisdiction=jurisdiction,
        purpose=purpose,
        version_id=str(manifest.get("version_id", version_dir.name)),
        path=version_dir,
        created=str(created),
        validity=str(validity) if validity is not None else None,
        predecessor=pred_id,
        predecessor_statement_sha256=pred_sha,
        statement_sha256=_sha256_file(version_dir / STATEMENT),
    )


def purposes(ws: Workspace, jurisdiction: str) -> list[str]:
    root = ws.versions_root / check_name("jurisdiction", jurisdiction)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_versions(
    ws: Workspace, jurisdiction: str, purpose: str | None = None
) -> list[VersionInfo]:
    """Published versions of a jurisdiction (one purpose, or all), oldest first per purpose."""
    check_name("jurisdiction", jurisdiction)
    chosen = [check_name("purpose", purpose)] if purpose else purposes(ws, jurisdiction)
    out: list[VersionInfo] = []
    for p in chosen:
        for _, d in _version_dirs(ws.versions_dir(jurisdiction, p)):
            out.append(_info(jurisdiction, p, d))
    return out


def latest_version(ws: Workspace, jurisdiction: str, purpose: str) -> VersionInfo | None:
    dirs = _version_dirs(ws.versions_dir(check_name("jurisdiction", jurisdiction), purpose))
    return _info(jurisdiction, purpose, dirs[-1][1]) if dirs else None


def next_version_id(ws: Workspace, jurisdiction: str, purpose: str) -> str:
    """The id the next publish of this chain takes; call it under the chain's refresh lock.

    One past the highest existing number, never filling a gap: an id once used (even by a
    version later removed) is never reused, so a reference always means one version.
    """
    check_name("jurisdiction", jurisdiction)
    check_name("purpose", purpose)
    dirs = _version_dirs(ws.versions_dir(jurisdiction, purpose))
    return format_version_id(dirs[-1][0] + 1 if dirs else 1)


def resolve_version(ws: Workspace, ref: str | Path) -> Path:
    """A version directory from a path, `J/P/VERSION_ID`, `J/P/latest` or `J/P/current`."""
    as_path = ws.path(str(ref)) if not isinstance(ref, Path) else ref
    if as_path.is_dir() and (as_path / MANIFEST).is_file():
        return as_path
    if isinstance(ref, Path) or str(ref).startswith(("/", ".")):
        raise BadInputError(f"{ref}: not a version directory (no {MANIFEST})")
    parts = str(ref).strip("/").split("/")
    if len(parts) != 3:
        raise UsageError(
            f"'{ref}' is neither a version directory nor a reference "
            "JURISDICTION/PURPOSE/VERSION (e.g. EU-DE/kyc_aml/v0003, EU-DE/kyc_aml/latest "
            "or EU-DE/kyc_aml/current)"
        )
    j, p, v = parts
    check_name("jurisdiction", j)
    check_name("purpose", p)
    if v == CURRENT_REF:
        from engine.approval import current_version

        approved = current_version(ws, j, p)
        if approved is None:
            raise BadInputError(f"{j}/{p}: no version has been approved as current yet")
        return ws.versions_dir(j, p) / approved.version_id
    if v == LATEST:
        latest = latest_version(ws, j, p)
        if latest is None:
            raise BadInputError(f"{j}/{p}: no published versions yet")
        return latest.path
    if version_number(v) is None:
        raise UsageError(f"'{v}' is not a version id (v0001, v0002, ..., 'latest' or 'current')")
    d = ws.versions_dir(j, p) / v
    if not (d / MANIFEST).is_file():
        have = [x.version_id for x in list_versions(ws, j, p)]
        listing = ", ".join(have[-5:]) if have else "none"
        raise BadInputError(f"{j}/{p}/{v}: no such version (latest published: {listing})")
    return d


def _statement_predecessors(statement: Path) -> list[Any]:
    """Every `predecessor` value inside the signed statement's payload (not verified here:
    signatures are lineage's job; this only checks the statement agrees with the manifest)."""
    try:
        envelope = json.loads(statement.read_bytes())
        payload = json.loads(base64.b64decode(envelope["payload"], validate=True))
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "predecessor":
                    found.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(payload)
    return found


def check_chain(ws: Workspace, jurisdiction: str, purpose: str) -> list[str]:
    """Problems with a chain, as readable lines; an empty list means the chain holds.

    Checks: ids are contiguous from v0001 and match their directories; every manifest is
    for this jurisdiction and purpose; the first has no predecessor; every other names the
    version before it and the sha256 of that version's statement bytes as stored; the signed
    statement names the same predecessor as the manifest.
    """
    check_name("jurisdiction", jurisdiction)
    check_name("purpose", purpose)
    problems: list[str] = []
    prev: VersionInfo | None = None
    expected = 1
    for n, d in _version_dirs(ws.versions_dir(jurisdiction, purpose)):
        name = f"{jurisdiction}/{purpose}/{d.name}"
        if n != expected:
            problems.append(
                f"{name}: expected {format_version_id(expected)} next; versions are missing"
            )
        expected = n + 1
        try:
            info = _info(jurisdiction, purpose, d)
            manifest = _read_manifest(d)
        except BadInputError as exc:
            problems.append(f"{name}: {exc.message}")
            prev = None
            continue
        if info.version_id != d.name:
            problems.append(f"{name}: manifest says version_id {info.version_id}")
        for key, want in (("jurisdiction", jurisdiction), ("purpose", purpose)):
            if manifest.get(key) != want:
                problems.append(f"{name}: manifest {key} is {manifest.get(key)!r}, not {want!r}")
        if info.statement_sha256 is None:
            problems.append(f"{name}: {STATEMENT} missing")
        signed = _statement_predecessors(d / STATEMENT)
        if n == 1 and prev is None:
            if info.predecessor is not None or manifest.get("predecessor") is not None:
                problems.append(f"{name}: first version names a predecessor")
        elif prev is None:
            if info.predecessor is None:
                problems.append(f"{name}: names no predecessor")
        else:
            if info.predecessor != prev.version_id:
                problems.append(
                    f"{name}: predecessor is {info.predecessor}, expected {prev.version_id}"
                )
            signed_shas = {s.get("statement_sha256") for s in signed if isinstance(s, dict)}
            if prev.statement_sha256 is None:
                pass  # already reported on prev
            elif info.predecessor_statement_sha256 != prev.statement_sha256:
                # Whose bytes changed: if the signed statement still holds the right digest,
                # the manifest was edited; otherwise the predecessor itself changed.
                blame = (
                    f"{d.name}'s manifest was edited"
                    if prev.statement_sha256 in signed_shas
                    else f"{prev.version_id} was altered or replaced"
                )
                problems.append(
                    f"{name}: predecessor statement digest "
                    f"{(info.predecessor_statement_sha256 or 'absent')[:16]} does not match "
                    f"{prev.version_id}'s statement ({prev.statement_sha256[:16]}); {blame}"
                )

        if signed and any(s != manifest.get("predecessor") for s in signed):
            problems.append(f"{name}: signed statement names a different predecessor")
        prev = info
    return problems
