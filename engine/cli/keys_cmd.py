"""`pgov keys init|rotate|list` and `pgov reidentify`: key operations and controlled reversal.

Outputs show ids, versions and dates; never key material. Re-identified values go to stdout
only (never a log, never the audit log), for the authorised operator who asked.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from engine.cli._common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    emit_json,
    handle_errors,
    open_workspace,
)
from engine.errors import UsageError
from engine.logs import ensure_logging
from engine.workspace import Workspace

keys_app = typer.Typer(help="Pseudonymisation master keys and lineage signing keys.")
ActorOpt = typer.Option(None, "--actor", help="Who performs this (audited); default: OS user.")
# Changing keys is a policy decision (`rotate_keys`), so the actor must be a configured one.
ChangerOpt = typer.Option(
    ..., "--actor", help="Configured actor allowed to change keys by policy (audited)."
)


def _open(workspace: Path) -> Workspace:
    ws = open_workspace(workspace)
    ensure_logging(ws)
    return ws


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@keys_app.command("init")
@handle_errors
def init_cmd(
    workspace: Path = WorkspaceOpt, actor: str | None = ActorOpt, as_json: bool = JsonOpt
) -> None:
    """Create keys/master.key (mode 0600) and the first Ed25519 signing key."""
    from engine.pseudonym.lifecycle import init_keys

    result = init_keys(_open(workspace), actor or _operator())
    if as_json:
        emit_json(result)
        return
    master = result["master"] or {}
    if "path" in master:
        console.print(f"master key created: {master['path']} (version {master['version']})")
    else:
        console.print(f"master key from {master.get('source')}: versions {master.get('versions')}")
    if result["signing_key_id"]:
        console.print(f"signing key created: {result['signing_key_id']}")
    if result["actors_enrolled"]:
        console.print(
            f"actors enrolled: {', '.join(result['actors_enrolled'])} "
            f"(private keys in {result['actor_keystore']})",
            highlight=False,
        )


@keys_app.command("rotate")
@handle_errors
def rotate_cmd(
    workspace: Path = WorkspaceOpt,
    signing: bool = typer.Option(False, "--signing", help="Rotate the lineage signing key."),
    actor: str = ChangerOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add a new key version; old versions stay for verification and re-identification."""

    from engine.actors import acting

    ws = _open(workspace)
    who = actor
    with acting(ws, who, "rotate_keys", signing=signing):
        _rotate(ws, who, signing, as_json)


def _rotate(ws: Workspace, who: str, signing: bool, as_json: bool) -> None:
    from engine.pseudonym.lifecycle import rotate_master, rotate_signing

    if signing:
        kid = rotate_signing(ws, who)
        emit_json({"signing_key_id": kid}) if as_json else console.print(
            f"signing key rotated: {kid} (older keys keep verifying)"
        )
        return
    version = rotate_master(ws, who)
    if as_json:
        emit_json({"master_version": version})
    else:
        console.print(
            f"master key rotated to version {version}; new tokens carry v{version}. Tokens "
            "of older versions do not link to new ones: rerun refreshes to re-pseudonymise."
        )


@keys_app.command("revoke")
@handle_errors
def revoke_cmd(
    key_id: str = typer.Argument(..., help="Signing key id (see 'pgov keys list')."),
    at: str | None = typer.Option(
        None,
        "--at",
        "--since",
        help="Revoked from (ISO time): the earliest moment the key may have been in other "
        "hands; default now.",
    ),
    workspace: Path = WorkspaceOpt,
    actor: str = ChangerOpt,
) -> None:
    """Revoke a lineage signing key (e.g. compromised). Master key versions are never
    revoked this way: dropping one makes its kyc tokens irreversible (see docs/keys.md)."""
    from datetime import UTC, datetime

    from engine.pseudonym.lifecycle import revoke_signing

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(f"--at must be an ISO date-time, not '{at}'") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    from engine.actors import acting

    ws = _open(workspace)
    with acting(ws, actor, "revoke_signing", key_id=key_id):
        revoke_signing(ws, actor, key_id, when)
    console.print(f"signing key {key_id} revoked", highlight=False)


@keys_app.command("list")
@handle_errors
def list_cmd(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt) -> None:
    """Key ids, versions and dates (never material)."""
    from engine.pseudonym.lifecycle import list_keys

    info = list_keys(_open(workspace))
    if as_json:
        emit_json(info)
        return
    master = info["master"]
    console.print(f"master ({master['source']}):", highlight=False)
    if "error" in master:
        console.print(f"  unavailable: {master['error']}", highlight=False)
    for v in master.get("versions", []):
        mark = " (current)" if v["current"] else ""
        console.print(f"  v{v['version']}  created {v['created'] or '-'}{mark}", highlight=False)
    console.print("signing:")
    for k in info["signing"]:
        state = (
            "revoked " + str(k["revoked_at"])
            if k.get("revoked_at")
            else ("active" if k.get("active") else "retired")
        )
        console.print(f"  {k['key_id']}  created {k['created_at']}  {state}", highlight=False)


@handle_errors
def reidentify_cmd(
    token: list[str] = typer.Option(None, "--token", help="A kyc token (repeatable)."),
    queue: str | None = typer.Option(
        None, "--queue", help="Queue name (with --version-dir) or a parquet/JSON token file."
    ),
    version_dir: Path | None = typer.Option(None, "--version-dir", help="A persona version."),
    actor: str = typer.Option(..., "--actor", help="Who asks (authorised by policy, audited)."),
    column: str = typer.Option("customer_id", "--column", help="Column the tokens came from."),
    reason: str = typer.Option(
        ..., "--reason", help="Why (mandatory; audited as a digest: keep personal data out)."
    ),
    case: str | None = typer.Option(
        None, "--case", help="Case reference, e.g. AML-2026-0042 (audited as is)."
    ),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reveal kyc-domain tokens, if the policy allows this actor. Every call is audited,
    with each token's digest, the case reference and the reason's digest."""
    import re

    from engine.pseudonym.reidentify import queue_tokens, reidentify

    if bool(token) == bool(queue):
        raise UsageError("give either --token (one or more) or --queue")
    if len(reason.strip()) < 5:
        raise UsageError("--reason is mandatory: say why (at least a few words)")
    if case is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", case):
        raise UsageError("--case: a reference of letters, digits and . _ : / - (max 64)")
    from engine.actors import acting

    ws = _open(workspace)
    tokens = list(token) if token else queue_tokens(queue or "", version_dir, column)
    with acting(ws, actor, "reidentify", column=column, count=len(tokens)):
        values = reidentify(ws, actor, tokens, column, reason=reason, case=case)
    if as_json:
        emit_json([{"token": t, column: v} for t, v in zip(tokens, values, strict=True)])
        return
    for t, v in zip(tokens, values, strict=True):
        console.print(f"{t}\t{v}", highlight=False, markup=False)


@keys_app.command("enrol-actor")
@handle_errors
def enrol_actor_cmd(
    name: str = typer.Argument(..., help="Actor declared in pgov.toml."),
    public_key: str | None = typer.Option(
        None,
        "--public-key",
        help="Base64 raw Ed25519 public key held elsewhere (HSM, PKI); default: create a key "
        "in the local keystore (PGOV_ACTOR_KEYS).",
    ),
    actor: str = ChangerOpt,
    workspace: Path = WorkspaceOpt,
) -> None:
    """Enrol (or re-key) one actor: its public key goes to keys/actors.json and the log."""
    import base64
    import binascii

    from engine.actors import acting, enrol
    from engine.audit import authorize

    ws = _open(workspace)
    raw = None
    if public_key is not None:
        try:
            raw = base64.b64decode(public_key, validate=True)
        except binascii.Error:
            raise UsageError("--public-key must be base64") from None
    with acting(ws, actor, "enrol_actor", enrolled_actor=name):
        authorize(ws, actor, "rotate_keys", {"operation": "enrol_actor"})
        changed = enrol(ws, name, actor, raw)
    console.print(
        f"actor {name} enrolled" if changed else f"actor {name} already enrolled with that key",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("reidentify")(reidentify_cmd)
