"""The audit log's record format: what one stored entry is, and how a file of them is read.

``log.bin`` is ``MAGIC`` then records ``u32 big-endian length || entry bytes ||
SHA256(0x00 || entry)``. A record cut short by a crash (torn tail) is detectable: the length
runs past the end of the file or the trailing leaf hash does not match.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import UsageError, VerificationFailed
from lineage.canonical import canonical_json
from lineage.merkle import leaf_hash

MAGIC = b"pgov-audit-log/v1\n"
_LEN = struct.Struct(">I")
_ROW = struct.Struct(">Q32s")
HASH = 32
MAX_ENTRY = 16 * 1024 * 1024
LOCK_TIMEOUT_S = 60.0
PROOF_FORMAT = "personagov-inclusion-proof/v1"
REQUIRED_KEYS = frozenset({"type", "actor", "time", "details"})
# Writers stamp an entry's time before taking the lock (engine/audit.py), so neighbours may be
# out of order by at most the lock wait, which LOCK_TIMEOUT_S bounds; anything further back
# cannot come from contention and is reported as reordering (or a clock stepped back).
TIME_SLACK_S = LOCK_TIMEOUT_S + 30.0


class TornTail(VerificationFailed):
    """The final record is incomplete: a crash during an append. ``pgov audit repair`` fixes it."""


def validate_entry(entry: bytes, where: str) -> dict[str, Any]:
    """An entry is a canonical-JSON object with type, actor, time and details."""
    if not entry:
        raise UsageError(f"{where}: empty audit entry")
    if len(entry) > MAX_ENTRY:
        raise UsageError(f"{where}: audit entry larger than {MAX_ENTRY} bytes")
    try:
        obj = json.loads(entry)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{where}: audit entry is not JSON") from None
    if not isinstance(obj, dict) or not obj.keys() >= REQUIRED_KEYS:
        raise UsageError(f"{where}: audit entry must be an object with {sorted(REQUIRED_KEYS)}")
    if canonical_json(obj) != entry:
        raise UsageError(f"{where}: audit entry is not canonical JSON")
    return obj


_DECODER = json.JSONDecoder()


def _read_entry(entry: bytes) -> tuple[dict[str, Any], datetime]:
    """Verification's reading of an entry: an object with the four keys and a zoned time.

    Canonical form is enforced at append; here the bytes are already bound by their leaf
    hash (and by the checkpoints), so re-serialising a million entries would prove nothing.
    """
    text = entry.decode("utf-8")
    # raw_decode at 0 (no white-space skipping): canonical entries start with "{".
    obj, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("trailing bytes after the JSON object")
    if not isinstance(obj, dict) or not obj.keys() >= REQUIRED_KEYS:
        raise ValueError(f"not an object with {sorted(REQUIRED_KEYS)}")
    t = datetime.fromisoformat(str(obj["time"]).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("entry time has no zone")
    return obj, t


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _record(entry: bytes) -> tuple[bytes, bytes]:
    h = leaf_hash(entry)
    return _LEN.pack(len(entry)) + entry + h, h


@dataclass(frozen=True)
class _Scan:
    """Result of reading records from an offset: complete records and where reading stopped."""

    rows: list[tuple[int, bytes]]  # (end offset, leaf hash)
    stop: int
    torn: str | None


def _scan(data: bytes | memoryview, start: int, first_index: int) -> _Scan:
    rows: list[tuple[int, bytes]] = []
    off = start
    n = len(data)
    while off < n:
        idx = first_index + len(rows)
        if n - off < _LEN.size:
            return _Scan(rows, off, f"record {idx} at byte {off}: length prefix cut short")
        (length,) = _LEN.unpack_from(data, off)
        end = off + _LEN.size + length + HASH
        if end > n:
            return _Scan(
                rows,
                off,
                f"record {idx} at byte {off}: declares {length} bytes, "
                f"file ends {n - off - _LEN.size} bytes later",
            )
        entry = bytes(data[off + _LEN.size : off + _LEN.size + length])
        stored = bytes(data[end - HASH : end])
        h = leaf_hash(entry)
        if h != stored:
            if end == n:
                return _Scan(
                    rows, off, f"record {idx} at byte {off}: leaf hash mismatch in the final record"
                )
            raise VerificationFailed(
                f"audit log entry {idx} (byte {off}): stored leaf hash does not match the "
                "entry bytes: the entry was altered"
            )
        rows.append((end, h))
        off = end
    return _Scan(rows, off, None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class _Snapshot:
    """The log and checkpoint files as read in one go (verification's input)."""

    log: bytes | None
    checkpoints: dict[str, bytes]
    latest: bytes | None
