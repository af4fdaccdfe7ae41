"""ENOSPC injected at the writes pgov makes itself: the audit log never keeps half a record,
signed files never leave a temp file, the CLI says exit 9 with no traceback."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import lineage.audit.append as append_mod
import lineage.signing as signing_mod
from engine.errors import ExitCode, StorageError, storage_error
from lineage.auditlog import AuditLog
from lineage.canonical import canonical_json


def _entry(n: int) -> bytes:
    return canonical_json(
        {"type": "t", "actor": "a", "time": datetime.now(UTC).isoformat(), "details": {"n": n}}
    )


def _full_after(limit: int) -> Any:
    """An os.write that writes `limit` bytes of the first call, then reports a full disk."""
    real = os.write
    state = {"left": limit}

    def write(fd: int, data: Any) -> int:
        if state["left"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(data)[: state["left"]])
        state["left"] -= n
        return n

    return write


@pytest.mark.parametrize("cut", [0, 1, 3, 10, 40])
def test_a_full_disk_mid_append_leaves_the_log_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append(_entry(0))
    before = (tmp_path / "audit" / "log.bin").read_bytes()
    monkeypatch.setattr(append_mod.os, "write", _full_after(cut))
    with pytest.raises(OSError) as exc:
        log.append(_entry(1))
    assert exc.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert (tmp_path / "audit" / "log.bin").read_bytes() == before  # no torn tail
    assert log.append(_entry(2)) == 1  # space is back: the next append just works
    assert log.size() == 2


def test_a_full_disk_in_atomic_write_leaves_neither_file_nor_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "checkpoints" / "latest"
    monkeypatch.setattr(signing_mod.os, "write", _full_after(5))
    with pytest.raises(OSError):
        signing_mod.atomic_write(target, b"x" * 100)
    assert list(target.parent.iterdir()) == []


def test_storage_errors_map_to_exit_9_others_do_not() -> None:
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "/ws/log.bin"))
    assert isinstance(full, StorageError) and full.exit_code == ExitCode.STORAGE == 9
    assert "log.bin" in full.message and "ENOSPC" in full.message
    other = OSError(errno.ENOENT, "gone")
    assert storage_error(other) is other
