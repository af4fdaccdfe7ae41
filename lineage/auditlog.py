"""The append-only audit log: an RFC 6962 Merkle tree over canonical-JSON entries.

Files in the log directory:

``log.bin``
    ``MAGIC`` then records ``u32 big-endian length || entry bytes || SHA256(0x00 || entry)``.
    The only authoritative file. A record cut short by a crash (torn tail) is detectable: the
    length runs past the end of the file or the trailing leaf hash does not match.
``leaves.bin``
    A cache, one 40-byte row per entry: ``u64 end offset || leaf hash``. It makes appends
    O(1) (the entry count and the last record's position without scanning) and checkpoints
    cheap. It is derived data: rebuilt from ``log.bin`` when it lags, never trusted by verify.
``checkpoints/<size>.txt``, ``checkpoints/latest``
    Signed checkpoints (see lineage/checkpoint.py). ``latest`` is a copy of the newest.
``.lock``
    Cross-process lock (filelock): appends from concurrent processes never interleave.

Every append fsyncs ``log.bin`` before returning, so a returned index is durable.
Each checkpoint is itself recorded as a ``checkpoint_signed`` entry: a later verifier can
tell that a newer checkpoint existed even if someone deletes it and replays an older one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import multiprocessing
import os
import struct
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import LockedError, UsageError, VerificationFailed
from lineage.canonical import canonical_json
from lineage.checkpoint import (
    Checkpoint,
    VerifiedCheckpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from lineage.merkle import (
    CompactRange,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from lineage.report import VerificationReport
from lineage.signing import Signer, TrustStore, atomic_write, parse_time

log = structlog.get_logger(__name__)

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


class AuditLog:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log_path = self.directory / "log.bin"
        self.cache_path = self.directory / "leaves.bin"
        self.checkpoint_dir = self.directory / "checkpoints"
        # The lock file stays: unlinking it on release would let two processes lock two inodes.
        self._lock = FileLock(
            str(self.directory / ".lock"), timeout=LOCK_TIMEOUT_S, preserve_lock_file=True
        )

    # ------------------------------------------------------------------ locking and state

    def _locked(self) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self._lock

    def _acquire(self) -> None:
        try:
            self._locked().acquire()
        except Timeout:
            raise LockedError(
                f"{self.directory}: audit log lock held for over {LOCK_TIMEOUT_S:.0f}s"
            ) from None

    def _sync(self, allow_torn: bool = False) -> tuple[int, int, str | None]:
        """Under the lock: bring the leaf cache up to the log; return (count, log end, torn).

        Raises on a torn tail unless ``allow_torn`` (repair wants to see it).
        """
        if not self.log_path.exists() or self.log_path.stat().st_size == 0:
            # Absent, or created by a process that crashed before writing the header: an
            # empty file holds no entries, so writing the header loses nothing.
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, MAGIC)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._fsync_dir()
        with open(self.log_path, "rb") as f:
            head = f.read(len(MAGIC))
            if head != MAGIC:
                raise VerificationFailed(f"{self.log_path}: not an audit log (header damaged)")
            log_size = os.fstat(f.fileno()).st_size
            cache_size = self.cache_path.stat().st_size if self.cache_path.exists() else 0
            count = cache_size // _ROW.size
            if cache_size % _ROW.size:
                # A torn cache row: the cache is derived, so drop the partial row and rescan.
                os.truncate(self.cache_path, count * _ROW.size)
            last_end = len(MAGIC)
            if count:
                with open(self.cache_path, "rb") as c:
                    c.seek((count - 1) * _ROW.size)
                    last_end, last_hash = _ROW.unpack(c.read(_ROW.size))
                    prev_end = len(MAGIC)
                    if count > 1:
                        c.seek((count - 2) * _ROW.size)
                        prev_end = _ROW.unpack(c.read(_ROW.size))[0]
                if last_end > log_size:
                    raise VerificationFailed(
                        f"{self.log_path}: log holds {log_size} bytes but its {count} recorded "
                        f"entries end at byte {last_end}: entries were deleted or truncated"
                    )
                f.seek(prev_end)
                rec = f.read(last_end - prev_end)
                ok = len(rec) >= _LEN.size + HASH and _LEN.unpack_from(rec)[0] == len(rec) - 36
                if not ok or rec[-HASH:] != last_hash or leaf_hash(rec[4:-HASH]) != last_hash:
                    raise VerificationFailed(
                        f"{self.log_path}: entry {count - 1} does not match the leaf cache: "
                        "the log was altered (run 'pgov audit verify')"
                    )
            if last_end == log_size:
                return count, log_size, None
            f.seek(last_end)
            scan = _scan(f.read(), 0, count)
        if scan.rows:
            with open(self.cache_path, "ab") as c:
                c.write(b"".join(_ROW.pack(last_end + e, h) for e, h in scan.rows))
        count += len(scan.rows)
        if scan.torn is not None:
            msg = (
                f"{self.log_path}: torn final record ({scan.torn}); "
                f"{log_size - last_end - scan.stop} bytes of an interrupted append. "
                "Run 'pgov audit repair' to truncate it (the repair is itself audited)."
            )
            if not allow_torn:
                raise TornTail(msg)
            return count, last_end + scan.stop, msg
        return count, log_size, None

    def _fsync_dir(self) -> None:
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------ writing

    def append(self, entry: bytes) -> int:
        """Append one canonical-JSON entry durably; returns its leaf index."""
        return self.append_many([entry])

    def append_many(self, entries: Sequence[bytes]) -> int:
        """Append entries as one durable group (one fsync); returns the first index."""
        if not entries:
            raise UsageError("append_many: no entries")
        for i, e in enumerate(entries):
            validate_entry(e, f"entry {i}")
        records = [_record(e) for e in entries]
        self._acquire()
        try:
            count, end, _ = self._sync()
            blob = b"".join(r for r, _ in records)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
            try:
                _write_all(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            rows = []
            off = end
            for r, h in records:
                off += len(r)
                rows.append(_ROW.pack(off, h))
            with open(self.cache_path, "ab") as c:
                c.write(b"".join(rows))
            return count
        finally:
            self._lock.release()

    def repair(self, actor: str = "pgov") -> dict[str, Any] | None:
        """Truncate a torn final record (and nothing else); audit the repair. None if intact."""
        self._acquire()
        try:
            count, good_end, torn = self._sync(allow_torn=True)
            if torn is None:
                return None
            with open(self.log_path, "rb") as f:
                f.seek(good_end)
                cut = f.read()
            os.truncate(self.log_path, good_end)
            fd = os.open(self.log_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            self._lock.release()
        details = {
            "offset": good_end,
            "truncated_bytes": len(cut),
            "truncated_sha256": hashlib.sha256(cut).hexdigest(),
            "entries_kept": count,
        }
        log.warning("audit_log_repaired", **details)
        self.append(
            canonical_json(
                {"type": "audit_log_repaired", "actor": actor, "time": _now(), "details": details}
            )
        )
        return details

    # ------------------------------------------------------------------ reading

    def size(self) -> int:
        self._acquire()
        try:
            return self._sync()[0]
        finally:
            self._lock.release()

    def _leaf_hashes(self, count: int) -> list[bytes]:
        with open(self.cache_path, "rb") as c:
            data = c.read(count * _ROW.size)
        return [data[i + 8 : i + _ROW.size] for i in range(0, len(data), _ROW.size)]

    def _ends(self, count: int) -> list[int]:
        with open(self.cache_path, "rb") as c:
            data = c.read(count * _ROW.size)
        return [_ROW.unpack_from(data, i)[0] for i in range(0, len(data), _ROW.size)]

    def entry(self, index: int) -> bytes:
        self._acquire()
        try:
            count, _, _ = self._sync()
            if not 0 <= index < count:
                raise UsageError(f"no audit entry {index} (the log holds {count})")
            with open(self.cache_path, "rb") as c:
                c.seek(index * _ROW.size)
                end, h = _ROW.unpack(c.read(_ROW.size))
                start = len(MAGIC)
                if index:
                    c.seek((index - 1) * _ROW.size)
                    start = _ROW.unpack(c.read(_ROW.size))[0]
            with open(self.log_path, "rb") as f:
                f.seek(start)
                rec = f.read(end - start)
        finally:
            self._lock.release()
        entry = rec[_LEN.size : -HASH]
        if leaf_hash(entry) != h:
            raise VerificationFailed(f"audit log entry {index} does not match its leaf hash")
        return entry

    def _read_entries(self) -> list[bytes]:
        """Every entry from log.bin (never the cache), each checked against its stored hash."""
        if not self.log_path.exists():
            return []
        data = self.log_path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            raise VerificationFailed(f"{self.log_path}: not an audit log (header damaged)")
        scan = _scan(data, len(MAGIC), 0)
        if scan.torn is not None:
            raise TornTail(
                f"{self.log_path}: torn final record ({scan.torn}); run 'pgov audit repair'"
            )
        out: list[bytes] = []
        start = len(MAGIC)
        for end, _ in scan.rows:
            out.append(data[start + _LEN.size : end - HASH])
            start = end
        return out

    def _read_consistent(self) -> list[bytes]:
        """Read under the lock when we can (a concurrent append is never half seen); on a
        read-only copy, where no lock can be taken, nobody is appending anyway."""
        try:
            self._acquire()
        except OSError:
            return self._read_entries()
        try:
            return self._read_entries()
        finally:
            self._lock.release()

    def entries(self) -> Iterator[bytes]:
        """Every entry, read straight from log.bin (not from the cache)."""
        yield from self._read_consistent()

    def query(
        self,
        actor: str | None = None,
        since: datetime | None = None,
        type: str | None = None,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, raw in enumerate(self._read_consistent()):
            obj = json.loads(raw)
            if actor is not None and obj.get("actor") != actor:
                continue
            if type is not None and obj.get("type") != type:
                continue
            if since is not None and parse_time(str(obj.get("time"))) < since.astimezone(UTC):
                continue
            out.append({"index": i, **obj})
        return out

    # ------------------------------------------------------------------ checkpoints

    def latest_checkpoint_text(self) -> bytes | None:
        p = self.checkpoint_dir / "latest"
        return p.read_bytes() if p.exists() else None

    def checkpoint(self, signer: Signer, origin: str, actor: str = "pgov") -> Path:
        """Sign the current tree head; write checkpoints/<size>.txt and latest; log it."""
        self._acquire()
        try:
            count, _, _ = self._sync()
            prev = self.latest_checkpoint_text()
            pcp = parse_checkpoint(prev, "checkpoints/latest")[0] if prev is not None else None
            if pcp is not None and pcp.size > count:
                raise VerificationFailed(
                    f"checkpoints/latest covers {pcp.size} entries but the log holds "
                    f"{count}: entries were deleted"
                )
            frontier = CompactRange()
            prev_root = None
            for h in self._leaf_hashes(count):
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
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            path = self.checkpoint_dir / f"{count}.txt"
            atomic_write(path, text)
            atomic_write(self.checkpoint_dir / "latest", text)
        finally:
            self._lock.release()
        self.append(
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

    # ------------------------------------------------------------------ proofs

    def prove_inclusion(self, index: int) -> dict[str, Any]:
        """A self-contained proof that entry ``index`` is in the latest signed checkpoint."""
        text = self.latest_checkpoint_text()
        if text is None:
            raise UsageError("no checkpoint yet: run 'pgov audit checkpoint' first")
        cp = parse_checkpoint(text, "checkpoints/latest")[0]
        if not 0 <= index < cp.size:
            raise UsageError(
                f"entry {index} is not covered by the latest checkpoint (size {cp.size}): "
                "run 'pgov audit checkpoint' first"
            )
        self._acquire()
        try:
            count, _, _ = self._sync()
            hashes = self._leaf_hashes(count)
        finally:
            self._lock.release()
        tree = MerkleTree(hashes[: cp.size])
        if tree.root() != cp.root:
            raise VerificationFailed(
                f"the log's first {cp.size} entries do not match the latest checkpoint root"
            )
        entry = self.entry(index)
        return {
            "format": PROOF_FORMAT,
            "index": index,
            "tree_size": cp.size,
            "entry": base64.b64encode(entry).decode("ascii"),
            "leaf_hash": leaf_hash(entry).hex(),
            "proof": [base64.b64encode(h).decode("ascii") for h in tree.inclusion_proof(index)],
            "checkpoint": text.decode("utf-8"),
        }

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._acquire()
        try:
            count, _, _ = self._sync()
            hashes = self._leaf_hashes(count)
        finally:
            self._lock.release()
        if not 0 <= old_size <= new_size <= count:
            raise UsageError(f"no consistency proof from {old_size} to {new_size} ({count} held)")
        return MerkleTree(hashes[:new_size]).consistency_proof(old_size)

    # ------------------------------------------------------------------ verification

    def _snapshot(self) -> _Snapshot:
        """The log and checkpoint files as one consistent read (under the lock if we can:
        a concurrent append or checkpoint must not look like a torn or forged log)."""

        def read() -> _Snapshot:
            cps: dict[str, bytes] = {}
            if self.checkpoint_dir.is_dir():
                for p in sorted(self.checkpoint_dir.glob("*.txt")):
                    cps[p.name] = p.read_bytes()
            return _Snapshot(
                log=self.log_path.read_bytes() if self.log_path.exists() else None,
                checkpoints=cps,
                latest=self.latest_checkpoint_text(),
            )

        try:
            self._acquire()
        except OSError:
            return read()  # a read-only copy: nobody appends to it
        try:
            return read()
        finally:
            self._lock.release()

    def verify(self, trust: TrustStore) -> VerificationReport:
        """Recompute everything from the stored bytes; never from the cache."""
        return verify_log(self, trust)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class _Snapshot:
    log: bytes | None
    checkpoints: dict[str, bytes]
    latest: bytes | None


# Below this many entries one process verifies faster than starting workers.
PARALLEL_MIN_ENTRIES = 200_000


@dataclass(frozen=True)
class _Chunk:
    """What one worker learns from a run of records (entries lo..hi-1)."""

    leaves: bytes  # concatenated 32-byte leaf hashes
    first_time: datetime | None
    last_time: datetime | None
    time_detail: str | None
    checkpoints: list[tuple[int, int, str]]
    error: tuple[int, str] | None  # (entry index, message) of the first bad entry


_SHARED: tuple[bytes, array[int]] | None = None  # inherited by forked workers, never pickled


def _boundaries(data: bytes) -> tuple[array[int], tuple[int, str] | None]:
    """Record offsets from the length prefixes, and the first structural error if any."""
    offsets: array[int] = array("Q")
    off, n = len(MAGIC), len(data)
    unpack = _LEN.unpack_from
    while off < n:
        idx = len(offsets)
        if n - off < 4 + HASH:
            return offsets, (idx, f"torn final record {idx} at byte {off}: file cut short")
        end = off + 4 + unpack(data, off)[0] + HASH
        if end > n:
            msg = f"record {idx} at byte {off} runs past the end of the file: torn or truncated"
            return offsets, (idx, msg)
        offsets.append(off)
        off = end
    return offsets, None


def _check_records(data: bytes, offsets: array[int], lo: int, hi: int) -> _Chunk:
    sha256 = hashlib.sha256
    slack = timedelta(seconds=TIME_SLACK_S)
    leaves: list[bytes] = []
    cps: list[tuple[int, int, str]] = []
    first_t: datetime | None = None
    prev_t: datetime | None = None
    time_detail: str | None = None
    for idx in range(lo, hi):
        off = offsets[idx]
        (length,) = _LEN.unpack_from(data, off)
        end = off + 4 + length + HASH
        entry = data[off + 4 : off + 4 + length]
        h = sha256(b"\x00" + entry).digest()  # leaf_hash, inlined: this loop runs 1M times
        if h != data[end - HASH : end]:
            msg = (
                f"entry {idx} at byte {off}: stored leaf hash does not match the entry bytes "
                "(entry altered)"
            )
            return _Chunk(b"", first_t, prev_t, time_detail, cps, (idx, msg))
        try:
            obj, t = _read_entry(entry)
        except Exception as exc:  # any malformed entry is a verification failure here
            return _Chunk(b"", first_t, prev_t, time_detail, cps, (idx, f"entry {idx}: {exc}"))
        if prev_t is not None and t < prev_t - slack and time_detail is None:
            time_detail = f"entry {idx} is timed {t.isoformat()}, before entry {idx - 1}"
        if first_t is None:
            first_t = t
        prev_t = t
        if obj["type"] == "checkpoint_signed":
            d = obj["details"]
            if isinstance(d, dict) and isinstance(d.get("size"), int):
                cps.append((idx, d["size"], str(d.get("root_sha256"))))
        leaves.append(h)
    return _Chunk(b"".join(leaves), first_t, prev_t, time_detail, cps, None)


def _check_shared(bounds: tuple[int, int]) -> _Chunk:
    assert _SHARED is not None
    return _check_records(_SHARED[0], _SHARED[1], *bounds)


def _check_all(data: bytes, offsets: array[int], workers: int) -> list[_Chunk]:
    n = len(offsets)
    # Forking a process that runs other threads can copy a held lock into the child and hang
    # it; only the single-threaded case (the CLI) forks.
    if workers <= 1 or n < PARALLEL_MIN_ENTRIES or threading.active_count() > 1:
        return [_check_records(data, offsets, 0, n)]
    global _SHARED
    step = -(-n // (workers * 4))  # a few chunks per worker evens out uneven entries
    bounds = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    _SHARED = (data, offsets)
    try:
        # fork: workers see the log bytes without copying or pickling them.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_check_shared, bounds)
    finally:
        _SHARED = None


def verify_log(
    audit: AuditLog, trust: TrustStore, workers: int | None = None
) -> VerificationReport:
    rep = VerificationReport(subject=f"audit log {audit.directory}")
    snap = audit._snapshot()
    if snap.log is None:
        rep.failed("log-present", f"{audit.log_path} does not exist")
        return rep
    data = snap.log
    if data[: len(MAGIC)] != MAGIC:
        rep.failed("log-format", "header damaged: not an audit log")
        return rep
    offsets, structural = _boundaries(data)
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    chunks = _check_all(data, offsets, n_workers)
    errors = [c.error for c in chunks if c.error is not None]
    # Report the earliest problem, as reading the log front to back would meet it.
    first_error = min(errors) if errors else structural
    if first_error is not None:
        rep.failed("log-format", first_error[1])
        return rep
    leaves: list[bytes] = []
    cp_entries: list[tuple[int, int, str]] = []
    time_detail: str | None = None
    slack = timedelta(seconds=TIME_SLACK_S)
    prev_last: datetime | None = None
    for c in chunks:
        blob = c.leaves
        leaves.extend(blob[i : i + HASH] for i in range(0, len(blob), HASH))
        cp_entries.extend(c.checkpoints)
        if (
            time_detail is None
            and prev_last is not None
            and c.first_time is not None
            and c.first_time < prev_last - slack
        ):
            idx = len(leaves) - len(blob) // HASH
            when = c.first_time.isoformat()
            time_detail = f"entry {idx} is timed {when}, before entry {idx - 1}"
        time_detail = time_detail or c.time_detail
        prev_last = c.last_time or prev_last
    first_of: dict[bytes, int] = {}
    dup_detail: str | None = None
    for idx, h in enumerate(leaves):
        first = first_of.setdefault(h, idx)
        if first != idx:
            dup_detail = f"entry {idx} duplicates entry {first} byte for byte"
            break
    rep.passed("log-format", f"{len(leaves)} entries, every stored leaf hash matches its bytes")
    rep.add("no-duplicates", dup_detail is None, dup_detail or "no entry appears twice")
    rep.add(
        "time-order",
        time_detail is None,
        time_detail or f"entry times never go back by more than {TIME_SLACK_S:.0f}s",
    )
    tree = MerkleTree(leaves)
    _verify_checkpoints(snap, trust, tree, cp_entries, rep)
    return rep


def _verify_checkpoints(
    snap: _Snapshot,
    trust: TrustStore,
    tree: MerkleTree,
    cp_entries: list[tuple[int, int, str]],
    rep: VerificationReport,
) -> None:
    files = sorted(snap.checkpoints)
    verified: dict[int, VerifiedCheckpoint] = {}
    all_ok = True
    for name in files:
        where = f"checkpoints/{name}"
        try:
            vc = verify_checkpoint(snap.checkpoints[name], trust, where)
        except VerificationFailed as exc:
            rep.failed("checkpoint-signature", str(exc))
            all_ok = False
            continue
        cp = vc.checkpoint
        if name != f"{cp.size}.txt":
            rep.failed("checkpoint-signature", f"{where} holds a checkpoint of size {cp.size}")
            all_ok = False
            continue
        verified[cp.size] = vc
    if files and all_ok:
        rep.passed("checkpoint-signature", f"{len(files)} checkpoints signed by trusted keys")
    elif not files:
        rep.failed("checkpoint-signature", "no checkpoints: nothing signed vouches for this log")
    sizes = sorted(verified)
    consistent = True
    for size in sizes:
        cp = verified[size].checkpoint
        if size > tree.size:
            rep.failed(
                "checkpoint-consistency",
                f"checkpoint {size} covers more entries than the log holds ({tree.size}): "
                "entries were deleted or the log truncated",
            )
            consistent = False
            continue
        if tree.root(size) != cp.root:
            rep.failed(
                "checkpoint-consistency",
                f"checkpoint {size}: the log's first {size} entries hash to a different root "
                "(entries altered, deleted, inserted or reordered)",
            )
            consistent = False
            continue
        try:
            # The proof a remote auditor holding only this checkpoint would check.
            proof = tree.consistency_proof(size)
            verify_consistency(size, tree.size, cp.root, tree.root(), proof)
        except VerificationFailed as exc:
            rep.failed("checkpoint-consistency", f"checkpoint {size}: {exc}")
            consistent = False
    if sizes and consistent:
        rep.passed(
            "checkpoint-consistency",
            f"log of {tree.size} entries is consistent with checkpoints {sizes[0]}..{sizes[-1]}",
        )
    order_ok = True
    for a, b in itertools.pairwise(sizes):
        ta, tb = verified[a].checkpoint.time, verified[b].checkpoint.time
        if tb < ta:
            rep.failed(
                "checkpoint-order",
                f"checkpoint {b} is timed before the smaller checkpoint {a}",
            )
            order_ok = False
        else:
            old, new = verified[a].checkpoint, verified[b].checkpoint
            if b <= tree.size:
                try:
                    verify_consistency(a, b, old.root, new.root, tree.consistency_proof(a, b))
                except VerificationFailed as exc:
                    rep.failed("checkpoint-order", f"checkpoints {a} -> {b}: {exc}")
                    order_ok = False
    if sizes and order_ok:
        rep.passed("checkpoint-order", "checkpoint sizes and times only move forward")
    _verify_latest(snap, trust, verified, cp_entries, rep)
    if verified and tree.size >= max(verified):
        tail = tree.size - max(verified)
        rep.passed("tail", f"{tail} entries after the latest checkpoint (not yet signed)")


def _verify_latest(
    snap: _Snapshot,
    trust: TrustStore,
    verified: dict[int, VerifiedCheckpoint],
    cp_entries: list[tuple[int, int, str]],
    rep: VerificationReport,
) -> None:
    text = snap.latest
    if text is None:
        if verified:
            rep.failed("latest-checkpoint", "checkpoints/latest is missing")
        return
    try:
        latest = verify_checkpoint(text, trust, "checkpoints/latest")
    except VerificationFailed as exc:
        rep.failed("latest-checkpoint", str(exc))
        return
    newest = max(verified) if verified else None
    recorded = max((s for _, s, _ in cp_entries), default=None)
    lsize = latest.checkpoint.size
    if newest is not None and lsize < newest:
        rep.failed(
            "latest-checkpoint",
            f"checkpoints/latest presents size {lsize} but checkpoint {newest} exists: "
            "an old checkpoint was replayed as latest",
        )
        return
    if recorded is not None and lsize < recorded:
        rep.failed(
            "latest-checkpoint",
            f"checkpoints/latest presents size {lsize} but the log records a signed checkpoint "
            f"of size {recorded}: an old checkpoint was replayed (newer ones deleted)",
        )
        return
    if newest is not None and verified[newest].text != text:
        rep.failed("latest-checkpoint", f"checkpoints/latest differs from checkpoints/{newest}.txt")
        return
    for idx, size, root_hex in cp_entries:
        vc = verified.get(size)
        if vc is None:
            rep.failed(
                "latest-checkpoint",
                f"entry {idx} records a checkpoint of size {size} whose file is missing",
            )
            return
        if vc.checkpoint.root.hex() != root_hex:
            rep.failed(
                "latest-checkpoint",
                f"entry {idx} records checkpoint {size} with a different root than its file",
            )
            return
    rep.passed("latest-checkpoint", f"latest is checkpoint {lsize}, the newest signed head")


# ---------------------------------------------------------------------- offline proofs


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
