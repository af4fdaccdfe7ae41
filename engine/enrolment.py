"""Actor enrolment: which public key speaks for which declared actor, and who says so.

An enrolment is an `actor_enrolled` audit entry carrying the actor's public key and a
signature by the workspace's signing key (a key of the trust file) over it; `keys/actors.json`
is a convenience copy. A line appended to the log by someone with write access, without a
signing key, grants nothing: `authenticate` and `pgov lineage verify --all` accept an actor's
key only from an enrolment whose signature verifies under the trust store (the verifier's
pinned copy with `--trust`) by a key not revoked when it signed.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import KeyMaterialError
from engine.workspace import Workspace
from lineage.canonical import canonical_json, sha256_hex

ENROLLED_FILE = "actors.json"
ENROLLED = "actor_enrolled"
ENROLMENT_FORMAT = "personagov-actor-enrolment/v1"


def _enrolled_path(ws: Workspace) -> Path:
    return ws.path(ws.config.keys.signing_dir).parent / ENROLLED_FILE


def enrolled(ws: Workspace) -> dict[str, str]:
    """actor -> base64 public key, as enrolled in this workspace."""
    path = _enrolled_path(ws)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_bytes())
        return {str(k): str(v["public_key"]) for k, v in doc["actors"].items()}
    except (ValueError, KeyError, TypeError):
        raise KeyMaterialError(f"{path}: unreadable actor enrolment file") from None


def _workspace_signer(ws: Workspace) -> Any:
    from lineage.signing import SigningKeyring

    keys = ws.config.keys
    try:
        return SigningKeyring(ws.path(keys.signing_dir), ws.path(keys.trust_file)).signer()
    except KeyMaterialError as exc:
        raise KeyMaterialError(
            "enrolling an actor needs the workspace's signing key (the enrolment is signed "
            f"so that a line added to the log grants nothing): {exc.message}"
        ) from None


def _workspace_trust(ws: Workspace) -> Any:
    from lineage.signing import TrustStore

    trust_file = ws.path(ws.config.keys.trust_file)
    return TrustStore.load(trust_file) if trust_file.is_file() else TrustStore(keys=())


def enrol(ws: Workspace, actor: str, by: str, public_key: bytes | None = None) -> bool:
    """Enrol one declared actor (its keystore key, or a given public key), signed by the
    workspace's signing key; False if already enrolled with that key. Re-enrolling with
    another key is a key change: audited."""
    from engine import audit
    from lineage.signing import atomic_write

    if actor not in ws.config.actors:
        raise KeyMaterialError(f"actor '{actor}' is not declared in pgov.toml")
    from engine.actors import ensure_credential

    pub = public_key if public_key is not None else ensure_credential(actor)
    if len(pub) != 32:
        raise KeyMaterialError("an actor's public key is 32 raw Ed25519 bytes")
    b64 = base64.b64encode(pub).decode("ascii")
    have = enrolled(ws)
    if have.get(actor) == b64 and logged_enrolments(ws).get(actor) == b64:
        return False
    signer = _workspace_signer(ws)
    body = canonical_json(
        {
            "format": ENROLMENT_FORMAT,
            "workspace": ws.config.name,
            "actor": actor,
            "public_key": b64,
            "by": by,
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
    )
    have[actor] = b64
    doc = {
        "format": "personagov-actors/v1",
        "actors": {a: {"public_key": k} for a, k in sorted(have.items())},
    }
    atomic_write(_enrolled_path(ws), canonical_json(doc) + b"\n")
    audit.record(
        ws,
        ENROLLED,
        by,
        enrolled_actor=actor,
        public_key=b64,
        key_id=sha256_hex(pub),
        enrolment=base64.b64encode(body).decode("ascii"),
        signature=base64.b64encode(signer.sign(body)).decode("ascii"),
        signing_key=signer.key_id,
    )
    return True


def check_enrolment(details: dict[str, Any], trust: Any) -> tuple[str, str]:
    """(actor, base64 public key) of an enrolment signed by a key of ``trust`` that was not
    revoked when it signed; KeyMaterialError saying why not otherwise."""
    from lineage.signing import parse_time

    actor = str(details.get("enrolled_actor"))
    if "enrolment" not in details or "signature" not in details:
        raise KeyMaterialError(
            f"enrolment of '{actor}' carries no signature by a workspace signing key "
            "(appended by hand, or written before enrolments were signed)"
        )
    kid = str(details.get("signing_key"))
    key = trust.get(kid)
    if key is None:
        raise KeyMaterialError(
            f"enrolment of '{actor}' is signed by key {kid[:16]}, which the trust store "
            f"({trust.source}) does not hold"
        )
    try:
        body = base64.b64decode(str(details["enrolment"]), validate=True)
        sig = base64.b64decode(str(details["signature"]), validate=True)
        doc = json.loads(body)
        when = parse_time(str(doc["time"]))
    except (KeyError, ValueError, TypeError, KeyMaterialError):
        raise KeyMaterialError(f"enrolment of '{actor}' is malformed") from None
    if not key.verify(sig, body):
        raise KeyMaterialError(f"enrolment of '{actor}': signature by key {kid[:16]} fails")
    if doc.get("format") != ENROLMENT_FORMAT or doc.get("actor") != actor:
        raise KeyMaterialError(f"enrolment of '{actor}' does not match its signed content")
    if doc.get("public_key") != details.get("public_key"):
        raise KeyMaterialError(f"enrolment of '{actor}' names another key than the one it signed")
    if not key.valid_at(when):
        raise KeyMaterialError(
            f"enrolment of '{actor}' is signed by key {kid[:16]} after its revocation"
        )
    return actor, str(doc["public_key"])


def logged_enrolments(ws: Workspace, trust: Any = None) -> dict[str, str]:
    """actor -> base64 public key, from the latest enrolment per actor that a trusted key
    signed (default: the workspace's trust file). Unsigned or forged ones grant nothing."""
    from lineage.auditlog import AuditLog

    if not ws.audit_dir.is_dir():
        return {}
    trust = trust if trust is not None else _workspace_trust(ws)
    keys: dict[str, str] = {}
    for e in AuditLog(ws.audit_dir).query(type=ENROLLED):
        try:
            actor, pub = check_enrolment(e.get("details") or {}, trust)
        except KeyMaterialError:
            continue
        keys[actor] = pub
    return keys


def enrol_all(ws: Workspace, by: str) -> list[str]:
    return [a for a in sorted(ws.config.actors) if enrol(ws, a, by)]
