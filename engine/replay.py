"""The replay store: the exact pgov.toml and policy bundle each version ran with, kept by
content digest inside the workspace, so its decision can be replayed years later.

    store/sha256/<hex>      one blob per distinct content, written once, never changed

A version's manifest (a signed subject) names the pgov.toml blob and a bundle index blob
(revision, bundle digest, every bundle file by relative path and blob digest). Identical
configurations across versions share blobs. `restore` writes them back out as a workspace
configuration and a bundle directory, checking every digest on the way, and the bundle digest
recomputed from the restored files must equal the one the version signed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from engine.errors import VerificationFailed
from engine.workspace import CONFIG_NAME, Workspace
from lineage.canonical import canonical_json

STORE = "store/sha256"
INDEX_FORMAT = "personagov-bundle-index/v1"


def _blob_dir(ws: Workspace) -> Path:
    return ws.root / STORE


def put(ws: Workspace, data: bytes) -> str:
    """Store bytes under their sha256 (idempotent, atomic); returns the hex digest."""
    import secrets

    digest = hashlib.sha256(data).hexdigest()
    path = _blob_dir(ws) / digest
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    # Refreshes of several jurisdictions run at once (threads of one process, or processes):
    # each writes its own temp file; the same content renamed twice is the same blob.
    tmp = path.with_name(f".{digest}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def get(ws: Workspace, digest: str, what: str) -> bytes:
    path = _blob_dir(ws) / digest
    try:
        data = path.read_bytes()
    except OSError:
        raise VerificationFailed(f"{what}: blob {digest[:16]} missing from {STORE}") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise VerificationFailed(f"{what}: blob {digest[:16]} in {STORE} was altered")
    return data


def snapshot(ws: Workspace, bundle_root: Path, bundle_digest: str) -> dict[str, str]:
    """Keep this run's configuration and bundle; returns the references for the manifest."""
    from engine.policy.bundle import _is_bundle_file, bundle_from_files
    from engine.policy.signing import read_files

    # The bytes read once serve both the digest check and the store (a directory or .tar.gz).
    all_files, _signatures = read_files(bundle_root)
    bundle_files = {rel: raw for rel, raw in all_files.items() if _is_bundle_file(rel)}
    bundle = bundle_from_files(bundle_root, bundle_files)
    if bundle.digest != bundle_digest:
        raise VerificationFailed(
            f"the policy bundle at {bundle_root} changed during the refresh (digest "
            f"{bundle.digest[:16]}, decided with {bundle_digest[:16]}); refusing to publish"
        )
    files = {rel: put(ws, raw) for rel, raw in bundle_files.items()}
    index = {
        "format": INDEX_FORMAT,
        "revision": bundle.revision,
        "digest": bundle.digest,
        "files": dict(sorted(files.items())),
    }
    return {
        "config_sha256": put(ws, (ws.root / CONFIG_NAME).read_bytes()),
        "bundle_index_sha256": put(ws, canonical_json(index)),
    }


def restore(ws: Workspace, manifest: dict[str, Any], dest: Path) -> dict[str, str]:
    """Write a version's pgov.toml and bundle under dest; every digest checked."""
    from engine.policy.bundle import load_bundle

    refs = manifest.get("replay")
    if not isinstance(refs, dict):
        raise VerificationFailed(
            "this version predates the replay store: it records only the digests of its "
            "configuration and bundle, not their content"
        )
    index = json.loads(get(ws, str(refs["bundle_index_sha256"]), "bundle index"))
    if index.get("format") != INDEX_FORMAT:
        raise VerificationFailed(f"bundle index: unknown format {index.get('format')!r}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / CONFIG_NAME).write_bytes(get(ws, str(refs["config_sha256"]), CONFIG_NAME))
    bundle_dir = dest / "bundle"
    for rel, digest in index["files"].items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise VerificationFailed(f"bundle index: unsafe path {rel!r}")
        out = bundle_dir / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(get(ws, str(digest), f"bundle file {rel}"))
    restored = load_bundle(bundle_dir)
    if restored.digest != manifest.get("bundle_digest") or restored.digest != index["digest"]:
        raise VerificationFailed(
            "restored bundle does not hash to the bundle digest the version signed"
        )
    os.chmod(dest / CONFIG_NAME, 0o644)
    return {"config": str(dest / CONFIG_NAME), "bundle": str(bundle_dir)}
