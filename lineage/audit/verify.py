"""Verifying the audit log from its stored bytes: every leaf hash, no duplicates, time order,
every checkpoint's signature and consistency, and that ``latest`` is the newest signed head.
Never from the leaf cache, never from re-serialised objects."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from engine.errors import VerificationFailed
from lineage.audit.records import _LEN, HASH, MAGIC, TIME_SLACK_S, _read_entry, _Snapshot
from lineage.checkpoint import (
    RevokedSignature,
    VerifiedCheckpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from lineage.merkle import MerkleTree, verify_consistency
from lineage.report import VerificationReport
from lineage.signing import TrustStore

if TYPE_CHECKING:
    from lineage.audit.append import AuditLog


def snapshot(audit: AuditLog) -> _Snapshot:
    """The log and checkpoint files as one consistent read (under the lock if we can:
    a concurrent append or checkpoint must not look like a torn or forged log)."""

    def read() -> _Snapshot:
        cps: dict[str, bytes] = {}
        if audit.checkpoint_dir.is_dir():
            for p in sorted(audit.checkpoint_dir.glob("*.txt")):
                cps[p.name] = p.read_bytes()
        return _Snapshot(
            log=audit.log_path.read_bytes() if audit.log_path.exists() else None,
            checkpoints=cps,
            latest=audit.latest_checkpoint_text(),
        )

    try:
        audit._acquire()
    except OSError:
        return read()  # a read-only copy: nobody appends to it
    try:
        return read()
    finally:
        audit._lock.release()


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
    snap = snapshot(audit)
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
    revoked: dict[str, tuple[int, str]] = {}  # file -> (size, why it vouches for nothing)
    all_ok = True
    for name in files:
        where = f"checkpoints/{name}"
        try:
            vc = verify_checkpoint(snap.checkpoints[name], trust, where)
        except RevokedSignature as exc:
            revoked[name] = (parse_checkpoint(snap.checkpoints[name], where)[0].size, str(exc))
            continue
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
    all_ok = _superseded(revoked, verified, rep) and all_ok
    if files and all_ok:
        n = len(files) - len(revoked)
        rep.passed("checkpoint-signature", f"{n} checkpoints signed by trusted keys")
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
    _verify_latest(snap, trust, verified, set(revoked), cp_entries, rep)
    if verified and tree.size >= max(verified):
        tail = tree.size - max(verified)
        rep.passed("tail", f"{tail} entries after the latest checkpoint (not yet signed)")


def _superseded(
    revoked: dict[str, tuple[int, str]],
    verified: dict[int, VerifiedCheckpoint],
    rep: VerificationReport,
) -> bool:
    """Checkpoints signed only by a key revoked before their time vouch for nothing. After a
    compromise (back-dated revocation, new key, re-checkpoint) a checkpoint by a valid key
    covering the same entries takes their place; without one they are failures."""
    ok = True
    newest = max(verified, default=-1)
    covered: list[str] = []
    for name, (size, why) in sorted(revoked.items()):
        if newest >= size:
            covered.append(name)
        else:
            rep.failed(
                "checkpoint-signature",
                f"{why}; no later checkpoint by a valid key covers its {size} entries "
                "(sign one: 'pgov audit checkpoint')",
            )
            ok = False
    if covered:
        rep.passed(
            "revoked-checkpoints",
            f"{len(covered)} checkpoint(s) signed after their key's revocation not counted "
            f"({', '.join(covered[:3])}{', ...' if len(covered) > 3 else ''}); checkpoint "
            f"{newest} by a valid key covers their entries",
        )
    return ok


def _verify_latest(
    snap: _Snapshot,
    trust: TrustStore,
    verified: dict[int, VerifiedCheckpoint],
    superseded: set[str],
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
        if vc is None and f"{size}.txt" in superseded:
            continue  # signed by a key revoked by then; a later valid checkpoint covers it
        if vc is None:
            name = f"{size}.txt"
            why = (
                f"checkpoints/{name} exists but does not verify (see checkpoint-signature)"
                if name in snap.checkpoints
                else f"checkpoints/{name} is missing"
            )
            rep.failed("latest-checkpoint", f"entry {idx} records checkpoint {size}; {why}")
            return
        if vc.checkpoint.root.hex() != root_hex:
            rep.failed(
                "latest-checkpoint",
                f"entry {idx} records checkpoint {size} with a different root than its file",
            )
            return
    rep.passed("latest-checkpoint", f"latest is checkpoint {lsize}, the newest signed head")
