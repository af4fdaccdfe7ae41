"""Audit-log proofs in text formats other verifiers read, checked offline against a trust file.

Inclusion: C2SP tlog-proof (https://c2sp.org/tlog-proof):

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry bytes>      (so the proof carries what it proves)
    index <N>
    <base64 sibling hash>                  (RFC 6962 inclusion path, leaf to root)
    ...
    <blank line>
    <the signed checkpoint, verbatim>

Consistency: C2SP defines no consistency-proof file, so ours follows the same shape:

    personagov/tlog-consistency-proof@v1
    old <OLD size>
    new <NEW size>
    <base64 hash>                          (RFC 9162 2.1.4 consistency path)
    ...
    <blank line>
    <the signed checkpoint of size OLD, verbatim>
    <blank line>
    <the signed checkpoint of size NEW, verbatim>

Both checkpoints must verify against the trust file, and the path must reproduce both roots.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from engine.errors import BadInputError, VerificationFailed
from lineage.checkpoint import parse_checkpoint, verify_checkpoint
from lineage.merkle import leaf_hash, verify_consistency, verify_inclusion
from lineage.signing import TrustStore

TLOG_PROOF = "c2sp.org/tlog-proof@v1"
CONSISTENCY_PROOF = "personagov/tlog-consistency-proof@v1"


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise VerificationFailed(f"{what} is not base64") from None


def tlog_proof_text(json_proof: dict[str, Any]) -> str:
    """Re-express an inclusion proof (as `AuditLog.prove_inclusion` returns it) as tlog-proof."""
    lines = [TLOG_PROOF, f"extra {json_proof['entry']}", f"index {json_proof['index']}"]
    lines += list(json_proof["proof"])
    return "\n".join(lines) + "\n\n" + str(json_proof["checkpoint"])


@dataclass(frozen=True)
class ProvenEntry:
    index: int
    tree_size: int
    entry: dict[str, Any]


def verify_tlog_proof(text: str, trust: TrustStore) -> ProvenEntry:
    head, sep, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != TLOG_PROOF:
        raise VerificationFailed(f"not a {TLOG_PROOF} proof")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _b64(rest.pop(0)[6:], "tlog-proof extra")
    if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit():
        raise VerificationFailed("tlog-proof: the index line is missing or malformed")
    index = int(rest.pop(0)[6:])
    if extra is None:
        raise VerificationFailed("tlog-proof: no extra line, so no entry to prove")
    path = [_b64(x, "tlog-proof hash") for x in rest]
    vc = verify_checkpoint(checkpoint.encode("utf-8"), trust, "tlog-proof checkpoint")
    cp = vc.checkpoint
    verify_inclusion(index, cp.size, leaf_hash(extra), path, cp.root)
    try:
        entry = json.loads(extra)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed("tlog-proof: the entry is not JSON") from None
    return ProvenEntry(index=index, tree_size=cp.size, entry=entry)


def consistency_proof_text(
    old_size: int, new_size: int, path: list[bytes], old_cp: bytes, new_cp: bytes
) -> str:
    lines = [CONSISTENCY_PROOF, f"old {old_size}", f"new {new_size}"]
    lines += [base64.b64encode(h).decode("ascii") for h in path]
    return "\n".join(lines) + "\n\n" + old_cp.decode("utf-8") + "\n" + new_cp.decode("utf-8")


def verify_consistency_text(text: str, trust: TrustStore) -> tuple[int, int]:
    """Check a consistency proof offline; returns (old size, new size)."""
    parts = text.split("\n\n")
    # head, old body, old signatures + blank, new body, new signatures
    if len(parts) != 5 or parts[0].split("\n")[0] != CONSISTENCY_PROOF:
        raise VerificationFailed(f"not a {CONSISTENCY_PROOF} file")
    head = parts[0].split("\n")
    try:
        old_size = int(head[1].removeprefix("old "))
        new_size = int(head[2].removeprefix("new "))
    except (IndexError, ValueError):
        raise VerificationFailed("consistency proof: old/new size lines are malformed") from None
    path = [_b64(x, "consistency proof hash") for x in head[3:]]
    old_text = (parts[1] + "\n\n" + parts[2] + "\n").encode("utf-8")
    new_text = (parts[3] + "\n\n" + parts[4]).encode("utf-8")
    old_cp = verify_checkpoint(old_text, trust, "old checkpoint").checkpoint
    new_cp = verify_checkpoint(new_text, trust, "new checkpoint").checkpoint
    if (old_cp.size, new_cp.size) != (old_size, new_size):
        raise VerificationFailed(
            f"consistency proof: claims {old_size} -> {new_size}, its checkpoints say "
            f"{old_cp.size} -> {new_cp.size}"
        )
    if old_cp.origin != new_cp.origin:
        raise VerificationFailed("consistency proof: the two checkpoints are of different logs")
    verify_consistency(old_size, new_size, old_cp.root, new_cp.root, path)
    return old_size, new_size


def signed_sizes(checkpoints: dict[int, bytes]) -> str:
    sizes = sorted(checkpoints)
    shown = ", ".join(str(s) for s in sizes[-8:])
    return f"{shown}{' ...' if len(sizes) > 8 else ''}" if sizes else "none"


def checkpoint_size(text: bytes, where: str) -> int:
    return parse_checkpoint(text, where)[0].size


def need_size(checkpoints: dict[int, bytes], size: int, label: str) -> bytes:
    if size not in checkpoints:
        raise BadInputError(
            f"{label} {size}: no signed checkpoint of that size; signed sizes: "
            f"{signed_sizes(checkpoints)} (run 'pgov audit checkpoint' to sign the current size)"
        )
    return checkpoints[size]
