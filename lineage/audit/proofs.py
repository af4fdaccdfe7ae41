"""Proofs from the audit log: inclusion of one entry in a signed checkpoint, consistency
between two tree sizes, and the offline check of an inclusion proof file."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import UsageError, VerificationFailed
from lineage.audit.records import PROOF_FORMAT
from lineage.checkpoint import parse_checkpoint, verify_checkpoint
from lineage.merkle import MerkleTree, leaf_hash, verify_inclusion
from lineage.signing import TrustStore

if TYPE_CHECKING:
    from lineage.audit.append import AuditLog


def prove_inclusion(audit: AuditLog, index: int) -> dict[str, Any]:
    """A self-contained proof that entry ``index`` is in the latest signed checkpoint."""
    text = audit.latest_checkpoint_text()
    if text is None:
        raise UsageError("no checkpoint yet: run 'pgov audit checkpoint' first")
    cp = parse_checkpoint(text, "checkpoints/latest")[0]
    if not 0 <= index < cp.size:
        raise UsageError(
            f"entry {index} is not covered by the latest checkpoint (size {cp.size}): "
            "run 'pgov audit checkpoint' first"
        )
    audit._acquire()
    try:
        count, _, _ = audit._sync()
        hashes = audit._leaf_hashes(count)
    finally:
        audit._lock.release()
    tree = MerkleTree(hashes[: cp.size])
    if tree.root() != cp.root:
        raise VerificationFailed(
            f"the log's first {cp.size} entries do not match the latest checkpoint root"
        )
    entry = audit.entry(index)
    return {
        "format": PROOF_FORMAT,
        "index": index,
        "tree_size": cp.size,
        "entry": base64.b64encode(entry).decode("ascii"),
        "leaf_hash": leaf_hash(entry).hex(),
        "proof": [base64.b64encode(h).decode("ascii") for h in tree.inclusion_proof(index)],
        "checkpoint": text.decode("utf-8"),
    }


def consistency_proof(audit: AuditLog, old_size: int, new_size: int) -> list[bytes]:
    audit._acquire()
    try:
        count, _, _ = audit._sync()
        hashes = audit._leaf_hashes(count)
    finally:
        audit._lock.release()
    if not 0 <= old_size <= new_size <= count:
        raise UsageError(f"no consistency proof from {old_size} to {new_size} ({count} held)")
    return MerkleTree(hashes[:new_size]).consistency_proof(old_size)


class InclusionProof(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: str
    index: int
    tree_size: int
    entry: str
    leaf_hash: str
    proof: list[str]
    checkpoint: str


def _b64(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error:
        raise VerificationFailed(f"inclusion proof: {what} is not base64") from None


def verify_inclusion_proof(proof: dict[str, Any], trust: TrustStore) -> dict[str, Any]:
    """Check a proof file offline; returns the proven entry (parsed) on success."""
    try:
        p = InclusionProof.model_validate(proof)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise VerificationFailed(f"inclusion proof: field {loc}: {first['msg']}") from None
    if p.format != PROOF_FORMAT:
        raise VerificationFailed(f"inclusion proof: unknown format {p.format!r}")
    vc = verify_checkpoint(p.checkpoint.encode("utf-8"), trust, "inclusion proof checkpoint")
    cp = vc.checkpoint
    if cp.size != p.tree_size:
        raise VerificationFailed(
            f"inclusion proof: claims tree size {p.tree_size}, its checkpoint says {cp.size}"
        )
    entry = _b64(p.entry, "entry")
    h = leaf_hash(entry)
    if h.hex() != p.leaf_hash:
        raise VerificationFailed("inclusion proof: entry bytes do not match the stated leaf hash")
    verify_inclusion(p.index, p.tree_size, h, [_b64(x, "proof hash") for x in p.proof], cp.root)
    try:
        obj: dict[str, Any] = json.loads(entry)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed("inclusion proof: entry is not JSON") from None
    return obj
