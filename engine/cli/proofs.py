"""Audit proofs for other verifiers: the glue between the log and lineage/tlogproof.py."""

from __future__ import annotations

from typing import Any

from engine.errors import UsageError


def _signed_checkpoints(log: Any) -> dict[int, bytes]:
    from lineage.tlogproof import checkpoint_size

    out: dict[int, bytes] = {}
    directory = log.checkpoint_dir
    if directory.is_dir():
        for p in sorted(directory.glob("*.txt")):
            text = p.read_bytes()
            out[checkpoint_size(text, str(p))] = text
    return out


def consistency_proof_text(log: Any, old_size: int, new_size: int) -> str:
    """A consistency proof between two signed checkpoints of the log (see tlogproof)."""
    from lineage.tlogproof import consistency_proof_text as render
    from lineage.tlogproof import need_size

    if not 0 < old_size <= new_size:
        raise UsageError("--consistency OLD NEW needs 0 < OLD <= NEW")
    checkpoints = _signed_checkpoints(log)
    old_cp = need_size(checkpoints, old_size, "OLD")
    new_cp = need_size(checkpoints, new_size, "NEW")
    return render(old_size, new_size, log.consistency_proof(old_size, new_size), old_cp, new_cp)
