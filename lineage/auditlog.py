"""The append-only audit log: an RFC 6962 Merkle tree over canonical-JSON entries.

This module is the stable import path (a facade); the log lives in lineage/audit/, one
module per noun: records (the file format), append (the locked, durable writer and reader),
checkpoints (signed tree heads), proofs (inclusion and consistency), verify (verification
from the stored bytes).
"""

from __future__ import annotations

from lineage.audit.append import AuditLog
from lineage.audit.proofs import InclusionProof, verify_inclusion_proof
from lineage.audit.records import (
    HASH,
    LOCK_TIMEOUT_S,
    MAGIC,
    MAX_ENTRY,
    PROOF_FORMAT,
    REQUIRED_KEYS,
    TIME_SLACK_S,
    TornTail,
    validate_entry,
)
from lineage.audit.verify import PARALLEL_MIN_ENTRIES, verify_log

__all__ = [
    "HASH",
    "LOCK_TIMEOUT_S",
    "MAGIC",
    "MAX_ENTRY",
    "PARALLEL_MIN_ENTRIES",
    "PROOF_FORMAT",
    "REQUIRED_KEYS",
    "TIME_SLACK_S",
    "AuditLog",
    "InclusionProof",
    "TornTail",
    "validate_entry",
    "verify_inclusion_proof",
    "verify_log",
]
