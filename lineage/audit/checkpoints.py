"""Signing the audit log's head: a C2SP checkpoint over the current tree, recorded in the log.

Each checkpoint is itself recorded as a ``checkpoint_signed`` entry: a later verifier can
tell that a newer checkpoint existed even if someone deletes it and replays an older one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from engine.errors import VerificationFailed
from lineage.audit.records import _now
from lineage.canonical import canonical_json
from lineage.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from lineage.merkle import CompactRange
from lineage.signing import Signer, atomic_write

if TYPE_CHECKING:
    from lineage.audit.append import AuditLog

log = structlog.get_logger(__name__)


def sign_head(audit: AuditLog, signer: Signer, origin: str, actor: str = "pgov") -> Path:
    """Sign the current tree head; write checkpoints/<size>.txt and latest; log it."""
    audit._acquire()
    try:
        count, _, _ = audit._sync()
        prev = audit.latest_checkpoint_text()
        pcp = parse_checkpoint(prev, "checkpoints/latest")[0] if prev is not None else None
        if pcp is not None and pcp.size > count:
            raise VerificationFailed(
                f"checkpoints/latest covers {pcp.size} entries but the log holds "
                f"{count}: entries were deleted"
            )
        frontier = CompactRange()
        prev_root = None
        for h in audit._leaf_hashes(count):
            if pcp is not None and frontier.size == pcp.size:
                prev_root = frontier.root()
            frontier.append(h)
        if pcp is not None and frontier.size == pcp.size:
            prev_root = frontier.root()
        root = frontier.root()
        when = datetime.now(UTC)
        if pcp is not None:
            # Never sign a head that does not extend the last signed one: that would
            # launder a rewritten history under a fresh signature.
            if prev_root != pcp.root:
                raise VerificationFailed(
                    f"the log's first {pcp.size} entries no longer match checkpoints/latest:"
                    " refusing to sign a new checkpoint (run 'pgov audit verify')"
                )
            # Sizes and times only move forward; a clock behind the last checkpoint
            # would make a new head look older than an old one.
            when = max(when, pcp.time)
        cp = Checkpoint(origin=origin, size=count, root=root, time=when)
        text = sign_checkpoint(cp, signer)
        audit.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = audit.checkpoint_dir / f"{count}.txt"
        atomic_write(path, text)
        atomic_write(audit.checkpoint_dir / "latest", text)
    finally:
        audit._lock.release()
    audit.append(
        canonical_json(
            {
                "type": "checkpoint_signed",
                "actor": actor,
                "time": _now(),
                "details": {
                    "size": count,
                    "root_sha256": root.hex(),
                    "key_id": signer.key_id,
                    "origin": origin,
                },
            }
        )
    )
    log.info("audit_checkpoint", size=count, key_id=signer.key_id)
    return path
