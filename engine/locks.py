"""The refresh lock: one refresh per jurisdiction and purpose at a time, across processes.

Mutual exclusion comes from an OS file lock (``flock`` through filelock) on
``<workspace>/.locks/<jurisdiction>__<purpose>.lock``. The kernel drops that lock when its
holder dies, however it dies, so a crashed refresh can never wedge its jurisdiction. Beside
it a sidecar ``.holder.json`` says who holds the lock (pid, host, actor, start time) so a
refused refresh can name the holder, and so a takeover from a holder that died without
releasing is visible in the log. Different jurisdictions and purposes use different files and
never block each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from filelock import FileLock, Timeout

from engine.errors import LockedError, UsageError
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

# Jurisdictions and purposes become file names: refuse anything that could walk the tree.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a refresh lock, as written in its sidecar."""

    jurisdiction: str
    purpose: str
    pid: int
    host: str
    actor: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, actor '{self.actor}', since {self.started}"

    def is_dead(self) -> bool:
        """True only when we can prove it: same host and no such process."""
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    # A killed process nobody has reaped yet still answers kill(pid, 0), but it has exited:
    # its files, and so its lock, are closed.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def check_name(kind: str, value: str) -> str:
    if not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise UsageError(f"{kind} '{value}' is not a valid name (letters, digits, '_', '-', '.')")
    return value


def lock_path(ws: Workspace, jurisdiction: str, purpose: str) -> Path:
    check_name("jurisdiction", jurisdiction)
    check_name("purpose", purpose)
    return ws.locks_dir / f"{jurisdiction}__{purpose}.lock"


def holder_path(ws: Workspace, jurisdiction: str, purpose: str) -> Path:
    return lock_path(ws, jurisdiction, purpose).with_suffix(".holder.json")


def read_holder(ws: Workspace, jurisdiction: str, purpose: str) -> LockHolder | None:
    """The sidecar's holder, or None if there is none or it is unreadable."""
    try:
        data = json.loads(holder_path(ws, jurisdiction, purpose).read_text(encoding="utf-8"))
        return LockHolder(
            jurisdiction=str(data["jurisdiction"]),
            purpose=str(data["purpose"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            actor=str(data["actor"]),
            started=str(data["started"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_holder(path: Path, holder: LockHolder) -> None:
    # Readers must never see half a sidecar: write aside, then rename over.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(holder), sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def refresh_lock(
    ws: Workspace,
    jurisdiction: str,
    purpose: str,
    wait_seconds: float = 0,
    *,
    actor: str = "unknown",
) -> Iterator[LockHolder]:
    """Hold the refresh lock of one jurisdiction and purpose for the body of a `with`.

    Waits up to ``wait_seconds`` (0 = one attempt) for a concurrent refresh to finish, then
    raises LockedError naming the holder. Yields this process's LockHolder record.
    """
    path = lock_path(ws, jurisdiction, purpose)
    sidecar = holder_path(ws, jurisdiction, purpose)
    ws.locks_dir.mkdir(parents=True, exist_ok=True)
    # preserve_lock_file: unlinking a flock file on release lets a waiter lock a dead inode.
    lock = FileLock(path, preserve_lock_file=True, poll_interval=_POLL_SECONDS)
    start = time.monotonic()
    try:
        lock.acquire(timeout=max(0.0, float(wait_seconds)))
    except Timeout:
        raise LockedError(_refusal(ws, jurisdiction, purpose, wait_seconds)) from None
    try:
        previous = read_holder(ws, jurisdiction, purpose)
        if previous is not None:
            # A sidecar left behind means its holder never reached release: it crashed or was
            # killed. The kernel already freed the OS lock, so taking over is safe; say so.
            log.warning(
                "stale_lock_taken_over",
                jurisdiction=jurisdiction,
                purpose=purpose,
                previous_pid=previous.pid,
                previous_host=previous.host,
                previous_actor=previous.actor,
                previous_started=previous.started,
                previous_dead=previous.is_dead(),
            )
        me = LockHolder(
            jurisdiction=jurisdiction,
            purpose=purpose,
            pid=os.getpid(),
            host=socket.gethostname(),
            actor=actor,
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _write_holder(sidecar, me)
        log.info(
            "refresh_lock_acquired",
            jurisdiction=jurisdiction,
            purpose=purpose,
            waited_seconds=round(time.monotonic() - start, 3),
        )
        try:
            yield me
        finally:
            # Sidecar first, while we still hold the lock: nobody may see our record as theirs.
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
    finally:
        lock.release()


def _refusal(ws: Workspace, jurisdiction: str, purpose: str, wait_seconds: float) -> str:
    holder = read_holder(ws, jurisdiction, purpose)
    waited = f" after waiting {wait_seconds:g}s" if wait_seconds > 0 else ""
    if holder is None:
        who = "another refresh that is just starting"
    elif holder.is_dead():
        # flock is held but the recorded pid is gone: a child process inherited the lock.
        who = (
            f"{holder.describe()} (that process is gone; a child it started still holds "
            "the lock file open)"
        )
    else:
        who = holder.describe()
    return (
        f"refresh of {jurisdiction}/{purpose} is locked{waited}: held by {who}. "
        "Retry when it has finished."
    )
