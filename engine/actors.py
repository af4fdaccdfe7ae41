"""Actor credentials: `--actor X` is a claim, a signature by X's private key is a proof.

Each actor declared in pgov.toml is enrolled with an Ed25519 public key: the key is recorded
in `keys/actors.json` and, as the record, in an `actor_enrolled` audit entry (signed at
once by a checkpoint). The private half lives OUTSIDE the workspace, in the actor's own
keystore (env PGOV_ACTOR_KEYS, default ~/.config/pgov/actors, one `<actor>.pem`, mode 0600):
whoever can write the workspace cannot act as someone else without that file.

Every governed action (refresh, version approval, KYC override and its approval,
re-identification, key rotation and revocation) starts with `authenticate`: the request
(action, actor, workspace, parameters, time, nonce) is signed with the actor's key, checked
against the enrolled key before the policy decides, and kept in the log as an
`actor_request` entry; the entries the action then writes carry the request's id. So
four-eyes is two different actors' signatures that anyone can check later, and `pgov
lineage verify --all` re-verifies every request signature against the enrolment.

An enrolment is itself signed by the workspace's signing key (a key in the trust file), so
a line appended to the audit log by someone with write access grants nothing: `authenticate`
and `pgov lineage verify --all` accept an actor's key only from an enrolment whose signature
verifies under the trust store (the verifier's pinned copy with `--trust`), by a key not
revoked when it signed; any other enrolment is a FAIL line.

A bank maps this onto its identity provider by enrolling the public keys its PKI or HSM
holds (`pgov keys enrol-actor --public-key`), or by verifying an OIDC/JWT token in place of
the local signature (the extension point is `authenticate`; see docs/keys.md).
"""

from __future__ import annotations

import base64
import contextvars
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.enrolment import (  # noqa: F401  (re-exported: the actors API is one module)
    ENROLLED,
    _enrolled_path,
    _workspace_trust,
    check_enrolment,
    enrol,
    enrol_all,
    enrolled,
    logged_enrolments,
)
from engine.errors import KeyMaterialError
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

ENV = "PGOV_ACTOR_KEYS"
REQUEST = "actor_request"
REQUEST_FORMAT = "personagov-actor-request/v1"
# The request an action runs under; engine.audit.record stamps its id on every entry.
current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pgov_actor_request", default=None
)


def keystore() -> Path:
    env = os.environ.get(ENV)
    return Path(env) if env else Path.home() / ".config" / "pgov" / "actors"


def _key_path(actor: str) -> Path:
    from engine.locks import check_name

    return keystore() / f"{check_name('actor', actor)}.pem"


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ensure_credential(actor: str) -> bytes:
    """The actor's public key, creating the private key in the keystore if it has none."""
    path = _key_path(actor)
    if path.is_file():
        return _raw(_load_private(actor).public_key())
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    return _raw(key.public_key())


def _load_private(actor: str) -> Ed25519PrivateKey:
    path = _key_path(actor)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyMaterialError(
            f"no credential for actor '{actor}' in {keystore()} (set {ENV}); an actor proves "
            "who they are with their own key: 'pgov keys init' or 'pgov keys enrol-actor'"
        ) from None
    except (OSError, ValueError):
        raise KeyMaterialError(f"{path}: not a readable private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{path}: not an Ed25519 key")
    return key


def sign_request(ws: Workspace, actor: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request signed by the actor's own key (from the keystore)."""
    key = _load_private(actor)
    body = canonical_json(
        {
            "format": REQUEST_FORMAT,
            "workspace": ws.config.name,
            "actor": actor,
            "action": action,
            "params": {k: v for k, v in sorted(params.items()) if v is not None},
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            "nonce": secrets.token_hex(12),
        }
    )
    return {
        "request": base64.b64encode(body).decode("ascii"),
        "signature": base64.b64encode(key.sign(body)).decode("ascii"),
    }


def check_request(signed: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """The request's content if its signature verifies under its actor's enrolled key."""
    try:
        body = base64.b64decode(str(signed["request"]), validate=True)
        sig = base64.b64decode(str(signed["signature"]), validate=True)
        req = json.loads(body)
        actor = str(req["actor"])
    except (KeyError, ValueError, TypeError):
        raise KeyMaterialError("actor request is malformed") from None
    if req.get("format") != REQUEST_FORMAT:
        raise KeyMaterialError("actor request has an unknown format")
    pub = keys.get(actor)
    if pub is None:
        raise KeyMaterialError(f"actor '{actor}' is not enrolled: no key to check its request")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(pub)).verify(sig, body)
    except (InvalidSignature, ValueError):
        raise KeyMaterialError(
            f"request by '{actor}' is not signed by the key enrolled for '{actor}'"
        ) from None
    return dict(req)


def request_id(signed: dict[str, Any]) -> str:
    return sha256_hex(base64.b64decode(str(signed["request"])))


def authenticate(
    ws: Workspace, actor: str, action: str, params: dict[str, Any] | None = None
) -> str:
    """Sign and check one governed request before the policy decides; log it; return its id.

    Refused (exit 6, audited) when the actor has no credential or it is not the enrolled one.
    """
    from engine import audit
    from engine.errors import PolicyDenied

    if actor not in ws.config.actors:
        # Nobody can hold a credential for an undeclared actor: the access rule's answer
        # (unknown actor), refused and recorded like every other denial.
        denied = PolicyDenied(
            f"actor '{actor}' is not declared in pgov.toml", reasons=["access.unknown_actor"]
        )
        audit.deny(ws, actor, action, dict(params or {}), denied)
        raise denied
    try:
        keys = logged_enrolments(ws)
        pointer = enrolled(ws).get(actor)
        if pointer is not None and keys.get(actor) != pointer:
            # keys/actors.json is a convenience copy; the log's enrolment is the record.
            raise KeyMaterialError(
                f"{_enrolled_path(ws).name} names a different key for '{actor}' than its "
                "enrolment in the audit log: refusing (a key was swapped in the workspace)"
            )
        if actor not in keys:
            raise KeyMaterialError(
                f"actor '{actor}' has no enrolled key in this workspace: run 'pgov keys init' "
                "or 'pgov keys enrol-actor'"
            )
        signed = sign_request(ws, actor, action, params or {})
        check_request(signed, keys)
    except KeyMaterialError as exc:
        audit.record(ws, "actor_unauthenticated", actor, action=action, reason=exc.message[:300])
        raise
    rid = request_id(signed)
    audit.record(ws, REQUEST, actor, action=action, request_id=rid, **signed)
    return rid


@contextmanager
def under_request(request_id: str | None) -> Iterator[None]:
    """Stamp entries written inside with a request authenticated elsewhere (a fan-out job
    runs under the parent's signed request; verify checks the id names a valid request by
    the same actor)."""
    if request_id is None:
        yield
        return
    token = current_request.set(request_id)
    try:
        yield
    finally:
        current_request.reset(token)


@contextmanager
def acting(ws: Workspace, actor: str, action: str, **params: Any) -> Iterator[str]:
    """`authenticate`, with the request id stamped on every entry written inside."""
    rid = authenticate(ws, actor, action, params)
    token = current_request.set(rid)
    try:
        yield rid
    finally:
        current_request.reset(token)


def verify_requests(entries: list[dict[str, Any]], trust: Any) -> list[str]:
    """Problems with the log's enrolments and signed requests: each enrolment is signed by a
    key of ``trust``; each request verifies under the key enrolled (in the log) before it,
    and every entry naming a request names a valid one by the same actor."""
    keys: dict[str, str] = {}
    valid: dict[str, str] = {}
    problems: list[str] = []
    for e in entries:
        d = e.get("details") or {}
        if e.get("type") == ENROLLED:
            try:
                actor, pub = check_enrolment(d, trust)
            except KeyMaterialError as exc:
                problems.append(f"audit entry {e['index']}: {exc.message}: its key is not accepted")
                continue
            keys[actor] = pub
        elif e.get("type") == REQUEST:
            try:
                req = check_request(d, keys)
            except KeyMaterialError as exc:
                problems.append(f"audit entry {e['index']}: {exc.message}")
                continue
            if req["actor"] != e.get("actor") or request_id(d) != d.get("request_id"):
                problems.append(f"audit entry {e['index']}: request does not match its entry")
                continue
            valid[str(d["request_id"])] = str(req["actor"])
        elif "request" in d:
            who = valid.get(str(d["request"]))
            if who is None:
                problems.append(
                    f"audit entry {e['index']} ({e.get('type')}) names request "
                    f"{str(d['request'])[:12]} that no valid signed request matches"
                )
            elif who != e.get("actor"):
                problems.append(
                    f"audit entry {e['index']} ({e.get('type')}) by '{e.get('actor')}' runs "
                    f"under a request signed by '{who}'"
                )
    return problems


# Entry types that only an authenticated request may produce (once actors are enrolled).
GOVERNED = (
    "refresh_requested",
    "version_approved",
    "kyc_override_requested",
    "kyc_override_approved",
    "key_rotation",
    "key_revocation",
    "vault_erased",
)


def unsigned_actions(entries: list[dict[str, Any]]) -> list[str]:
    """Governed entries written after enrolment without a signed request behind them."""
    out: list[str] = []
    enrolled_since = False
    for e in entries:
        t = str(e.get("type"))
        d = e.get("details") or {}
        if t == ENROLLED:
            enrolled_since = True
        revealed = t == "reidentification" and d.get("outcome") == "revealed"
        if enrolled_since and (t in GOVERNED or revealed) and "request" not in d:
            out.append(
                f"audit entry {e['index']} ({t}) by '{e.get('actor')}' carries no signed "
                "request: the actor was never authenticated"
            )
    return out
