"""Key lifecycle: create, rotate and list the workspace's keys (master pseudonym + signing).

Only a `file:` master key is managed here; env and KMS keys are created and rotated in their
own system (pgov refuses rather than pretending). Rotation and revocation are `rotate_keys`
decisions of the policy (data engineers, by default), refused and audited otherwise. Every
rotation is an audit event with the key ids and versions, never material. Nothing is
written until every check has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from engine import audit
from engine.errors import KeyMaterialError, PolicyDenied
from engine.pseudonym.keyring import (
    FileProvider,
    Keyring,
    MasterSpec,
    parse_keyset,
    write_private,
)
from engine.workspace import Workspace

log = structlog.get_logger(__name__)


def _master_file(ws: Workspace) -> Path | None:
    spec = MasterSpec.parse(ws.config.keys.master)
    return FileProvider(ws.root).resolve(spec.ref) if spec.provider == "file" else None


def _authorize(ws: Workspace, actor: str, operation: str) -> None:
    """Fail closed: no key changes unless the policy allows this actor `rotate_keys`."""
    from engine.policy import authorize

    try:
        authorize(ws, actor, "rotate_keys", {"operation": operation})
    except PolicyDenied as exc:
        audit.record(ws, "key_change_refused", actor, operation=operation, reasons=exc.reasons)
        raise


def _signing(ws: Workspace) -> Any:
    """lineage.signing.SigningKeyring for this workspace, or None if that module is absent."""
    try:
        from lineage.signing import SigningKeyring
    except ImportError:
        return None
    return SigningKeyring(ws.path(ws.config.keys.signing_dir), ws.path(ws.config.keys.trust_file))


def init_keys(ws: Workspace, actor: str = "pgov") -> dict[str, Any]:
    """Create the master key file (if file-based) and the first Ed25519 signing key."""
    master = _master_file(ws)
    if master is not None and (master.exists() or master.is_symlink()):
        raise KeyMaterialError(f"{master} already exists; use 'pgov keys rotate' to add a version")
    signing = _signing(ws)
    if signing is not None and signing.list():
        raise KeyMaterialError(
            f"{signing.trust_file}: signing keys already initialised; "
            "use 'pgov keys rotate --signing'"
        )
    result: dict[str, Any] = {"master": None, "signing_key_id": None}
    if master is not None:
        ring = Keyring.generate()
        write_private(master, ring.document(), exclusive=True)
        result["master"] = {"path": str(master), "version": ring.current_version}
    else:
        # Still prove the configured key is usable: init must not leave a broken setup.
        result["master"] = {"source": ws.config.keys.master, "versions": Keyring.load(ws).versions}
    if signing is not None:
        result["signing_key_id"] = signing.init()
    audit.record(
        ws,
        "key_initialised",
        actor,
        master_source=ws.config.keys.master.split(":", 1)[0],
        master_version=1 if master is not None else None,
        signing_key_id=result["signing_key_id"],
    )
    log.info("keys_initialised", master_version=1 if master is not None else None)
    from engine.actors import enrol_all, keystore

    # Each declared actor's credential (private half in the keystore outside the workspace).
    result["actors_enrolled"] = enrol_all(ws, actor)
    result["actor_keystore"] = str(keystore())
    return result


def rotate_master(ws: Workspace, actor: str) -> int:
    """Add a master key version; old versions stay for verification and re-identification."""
    _authorize(ws, actor, "rotate_master")
    master = _master_file(ws)
    if master is None:
        raise KeyMaterialError(
            f"[keys].master is '{ws.config.keys.master}': rotate it in that key store; "
            "pgov only rotates file: keys"
        )
    ring = Keyring.load(ws)  # validates permissions and every stored version first
    rotated = ring.with_new_version()
    # Re-parse what we are about to write: a rotation must never leave an unreadable file.
    parse_keyset(rotated.document(), str(master))
    write_private(master, rotated.document(), exclusive=False)
    audit.record(
        ws,
        "key_rotation",
        actor,
        kind="master",
        previous_version=ring.current_version,
        new_version=rotated.current_version,
    )
    log.info("master_key_rotated", new_version=rotated.current_version)
    return rotated.current_version


def rotate_signing(ws: Workspace, actor: str) -> str:
    _authorize(ws, actor, "rotate_signing")
    signing = _signing(ws)
    if signing is None:
        raise KeyMaterialError("signing keys are not available in this installation")
    kid: str = signing.rotate()
    audit.record(ws, "key_rotation", actor, kind="signing", new_key_id=kid)
    return kid


def revoke_signing(ws: Workspace, actor: str, key_id: str, at: datetime | None = None) -> None:
    """Mark a signing key revoked from `at` (default now): signatures made after that
    instant stop verifying; earlier ones still do."""
    _authorize(ws, actor, "revoke_signing")
    signing = _signing(ws)
    if signing is None:
        raise KeyMaterialError("signing keys are not available in this installation")
    when = at or datetime.now(UTC)
    signing.revoke(key_id, when)
    audit.record(ws, "key_revocation", actor, kind="signing", key_id=key_id, at=when.isoformat())


def list_keys(ws: Workspace) -> dict[str, Any]:
    """Ids, versions and dates of every key; never material."""
    master: dict[str, Any] = {"source": ws.config.keys.master}
    try:
        ring = Keyring.load(ws)
        master.update(current_version=ring.current_version, versions=ring.info())
    except KeyMaterialError as exc:
        master.update(error=exc.message)
    signing = _signing(ws)
    keys: list[dict[str, Any]] = list(signing.list()) if signing is not None else []
    return {"master": master, "signing": keys}
