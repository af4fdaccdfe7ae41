"""The append side of the audit log: one durable, locked, append-only file.

Files in the log directory:

``log.bin``
    The only authoritative file (format in lineage/audit/records.py).
``leaves.bin``
    A cache, one 40-byte row per entry: ``u64 end offset || leaf hash``. It makes appends
    O(1) (the entry count and the last record's position without scanning) and checkpoints
    cheap. It is derived data: rebuilt from ``log.bin`` when it lags, never trusted by verify.
``checkpoints/<size>.txt``, ``checkpoints/latest``
    Signed checkpoints (lineage/audit/checkpoints.py). ``latest`` is a copy of the newest.
``.lock``
    Cross-process lock (filelock): appends from concurrent processes never interleave.

Every append fsyncs ``log.bin`` before returning, so a returned index is durable.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from filelock import FileLock, Timeout

from engine.errors import LockedError, UsageError, VerificationFailed
from lineage.audit.records import (
    _LEN,
    _ROW,
    HASH,
    LOCK_TIMEOUT_S,
    MAGIC,
    TornTail,
    _now,
    _record,
    _scan,
    _Snapshot,
    _write_all,
    validate_entry,
)
from lineage.canonical import canonical_json
from lineage.merkle import leaf_hash
from lineage.signing import parse_time

if TYPE_CHECKING:
    from lineage.report import VerificationReport
    from lineage.signing import Signer, TrustStore

log = structlog.get_logger(__name__)


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
            except OSError:
                # A full disk mid-record would leave a torn tail: cut back to the last whole
                # record so the log stays as it was (the caller sees the error).
                os.ftruncate(fd, end)
                os.fsync(fd)
                raise
            finally:
                os.close(fd)
            rows = []
            off = end
            for r, h in records:
                off += len(r)
                rows.append(_ROW.pack(off, h))
            try:
                with open(self.cache_path, "ab") as c:
                    c.write(b"".join(rows))
            except OSError:
                # The entries are durable in log.bin; the cache is derived and the next
                # _sync drops a partial row and rescans what it lacks.
                log.warning("audit_cache_write_failed", entries=len(rows))
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
        from lineage.audit.checkpoints import sign_head

        return sign_head(self, signer, origin, actor)

    # ------------------------------------------------------------------ proofs

    def prove_inclusion(self, index: int) -> dict[str, Any]:
        """A self-contained proof that entry ``index`` is in the latest signed checkpoint."""
        from lineage.audit.proofs import prove_inclusion

        return prove_inclusion(self, index)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        from lineage.audit.proofs import consistency_proof

        return consistency_proof(self, old_size, new_size)

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
        from lineage.audit.verify import verify_log

        return verify_log(self, trust)
