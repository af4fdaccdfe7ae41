"""Signed result documents (experiment designs, analyses, promotions, activation receipts).

Each is an in-toto Statement v1 in a DSSE envelope signed with the workspace's lineage key,
like a persona version: subjects are the files it covers (sha256 of their stored bytes), the
predicate is the document. Verification reads the stored bytes and refuses any mismatch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import KeyMaterialError, VerificationFailed
from engine.store import file_sha256
from engine.workspace import Workspace
from lineage.canonical import canonical_json
from lineage.dsse import peek_payload, sign_envelope, verify_envelope
from lineage.signing import SigningKeyring, TrustStore, atomic_write, parse_time

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def _signer(ws: Workspace) -> Any:
    keys = ws.config.keys
    trust_file = ws.path(keys.trust_file)
    if not trust_file.is_file():
        raise KeyMaterialError(
            f"{trust_file}: no signing key for this workspace; run 'pgov keys init' first"
        )
    return SigningKeyring(ws.path(keys.signing_dir), trust_file).signer()


def sign_document(
    ws: Workspace, out: Path, predicate_type: str, doc: dict[str, Any], files: list[Path]
) -> Path:
    """Write `out` (a DSSE envelope) over `doc` and the digests of `files`."""
    signer = _signer(ws)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": f.name, "digest": {"sha256": file_sha256(f)}}
            for f in sorted(files, key=lambda p: p.name)
        ],
        "predicateType": predicate_type,
        "predicate": {**doc, "signed_at": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    atomic_write(out, sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signer))
    return out


def verify_document(ws: Workspace, envelope_path: Path, predicate_type: str) -> dict[str, Any]:
    """The verified predicate; VerificationFailed if the signature, type or a file differs."""
    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    try:
        raw = envelope_path.read_bytes()
    except OSError:
        raise VerificationFailed(f"{envelope_path}: missing signed record") from None
    try:
        claimed = json.loads(peek_payload(raw))
        at = parse_time(claimed["predicate"]["signed_at"])
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed(f"{envelope_path}: not a signed personagov record") from None
    payload = verify_envelope(raw, trust, at, payload_type=PAYLOAD_TYPE)
    statement = json.loads(payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != predicate_type:
        raise VerificationFailed(f"{envelope_path}: not a {predicate_type} statement")
    for subject in statement.get("subject", []):
        path = envelope_path.parent / str(subject.get("name", ""))
        if path.parent != envelope_path.parent or not path.is_file():
            raise VerificationFailed(f"{envelope_path}: covered file {path.name} is missing")
        if file_sha256(path) != subject.get("digest", {}).get("sha256"):
            raise VerificationFailed(
                f"{path}: its bytes differ from the signed digest (altered after signing)"
            )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationFailed(f"{envelope_path}: predicate is not an object")
    return predicate
