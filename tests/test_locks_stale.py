"""A refresh killed while holding its lock does not wedge its jurisdiction: the next takes over."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs
from test_locks_support import HolderProcess, fake_workspace

from engine.locks import read_holder, refresh_lock


def test_lock_of_a_killed_holder_is_taken_over_with_a_log_line(tmp_path: Path) -> None:
    ws = fake_workspace(tmp_path)
    holder = HolderProcess(tmp_path, "BR", "kyc_aml", actor="crashy")
    dead_pid = holder.pid
    holder.kill()  # SIGKILL: no release, no cleanup, sidecar left behind
    stale = read_holder(ws, "BR", "kyc_aml")
    assert stale is not None and stale.pid == dead_pid and stale.is_dead()

    with capture_logs() as logs, refresh_lock(ws, "BR", "kyc_aml", actor="next") as me:
        assert read_holder(ws, "BR", "kyc_aml") == me
    takeovers = [e for e in logs if e["event"] == "stale_lock_taken_over"]
    assert len(takeovers) == 1
    assert takeovers[0]["previous_pid"] == dead_pid
    assert takeovers[0]["previous_actor"] == "crashy"
    assert takeovers[0]["previous_dead"] is True
    assert read_holder(ws, "BR", "kyc_aml") is None


def test_clean_release_leaves_no_stale_record(tmp_path: Path) -> None:
    ws = fake_workspace(tmp_path)
    holder = HolderProcess(tmp_path, "SG", "kyc_aml")
    holder.release()
    assert holder.wait_exit() == 0
    with capture_logs() as logs, refresh_lock(ws, "SG", "kyc_aml"):
        pass
    assert not [e for e in logs if e["event"] == "stale_lock_taken_over"]


def test_names_that_could_escape_the_locks_dir_are_refused(tmp_path: Path) -> None:
    import pytest

    from engine.errors import UsageError

    ws = fake_workspace(tmp_path)
    for bad in ["../x", "a/b", "", ".."]:
        with pytest.raises(UsageError), refresh_lock(ws, bad, "kyc_aml"):
            pass


def test_an_unreaped_killed_holder_counts_as_dead(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from engine.locks import pid_alive

    proc = subprocess.Popen(["sleep", "60"])
    os.kill(proc.pid, signal.SIGKILL)
    # not reaped yet: a zombie still answers kill(pid, 0)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    assert not pid_alive(proc.pid)
    proc.wait()
    assert pid_alive(os.getpid())
