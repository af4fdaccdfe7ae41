"""A full disk at any stage of a refresh: a clean error (exit 9), nothing half-written, and
the next run succeeds once space returns (issue 14). On a real, small tmpfs filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.versions import check_chain, list_versions
from engine.workspace import Workspace

J, P, ACTOR, AS_OF = "EU-DE", "kyc_aml", "compliance-lead", "2026-11-01"
# Free space left for each attempt: from "not even the first audit entry" to "almost all".
FREE_KIB = [4, 12, 32, 64, 128, 192, 256, 384, 512, 768]


def _pgov(*args: str) -> subprocess.CompletedProcess[str]:
    pgov = str(Path(sys.executable).with_name("pgov"))
    return subprocess.run([pgov, *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture()
def small_fs(tmp_path: Path) -> object:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave_kib: int) -> None:
    filler = mnt / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(mnt)
    avail = st.f_bavail * st.f_frsize
    size = max(0, avail - leave_kib * 1024)
    with filler.open("wb") as fh:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            n = fh.write(chunk[: min(size, len(chunk))])
            size -= n


def _refresh(root: Path) -> subprocess.CompletedProcess[str]:
    return _pgov("refresh", "-j", J, "-p", P, "-a", ACTOR, "--as-of", AS_OF, "-w", str(root))


def _whole(ws: Workspace) -> None:
    chain = ws.versions_dir(J, P)
    for d in chain.iterdir() if chain.is_dir() else []:
        if not d.name.startswith("."):
            assert (d / "manifest.json").is_file() and (d / "statement.dsse.json").is_file(), d
    assert check_chain(ws, J, P) == []


@pytest.mark.slow
def test_full_disk_at_every_stage_is_exit_9_then_recovers(small_fs: Path) -> None:
    root = small_fs / "ws"
    assert _pgov("init", str(root), "--sample", "1200").returncode == 0
    assert _pgov("keys", "init", "-w", str(root)).returncode == 0
    ws = Workspace.open(root)
    outcomes = []
    for leave in FREE_KIB:
        _fill(small_fs, leave)
        done = _refresh(root)
        outcomes.append(done.returncode)
        assert done.returncode in (0, 7, 9), (leave, done.returncode, done.stderr[-1500:])
        if done.returncode == 9:
            assert "storage full" in done.stderr and "Traceback" not in done.stderr, leave
        (small_fs / "filler").unlink()
        _whole(ws)
        # A full disk never tears the audit log: it reads whole at every point.
        log = _pgov("audit", "verify", "-w", str(root))
        assert "torn" not in log.stdout + log.stderr, (leave, log.stdout[-800:])
    assert 9 in outcomes, outcomes  # the sweep did hit a full disk
    # Space is back: the next run succeeds and repairs what the full disk interrupted.
    again = _refresh(root)
    assert again.returncode in (0, 7), again.stderr[-2000:]
    assert list_versions(ws, J, P)
    verified = _pgov("lineage", "verify", "--all", "-w", str(root))
    assert verified.returncode == 0, verified.stdout[-3000:]
    shutil.rmtree(root)
