"""Audit appends from several real processes at once never interleave or corrupt the log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from test_locks_support import fake_workspace, support_env

from lineage.auditlog import AuditLog
from lineage.signing import SigningKeyring, TrustStore

WRITERS = 3
EACH = 30

_WRITER = """
import pathlib, sys, time
from engine.audit import record
from test_locks_support import fake_workspace
root, name, n, gate = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
ws = fake_workspace(pathlib.Path(root))
while not gate.exists():
    time.sleep(0.005)
for i in range(n):
    # a large-ish entry makes a torn or interleaved write far more likely to show
    record(ws, "refresh_requested", name, seq=i, padding="x" * 4000)
"""


def test_concurrent_appends_all_land_whole_and_the_log_verifies(tmp_path: Path) -> None:
    ws = fake_workspace(tmp_path / "ws")
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(ws.root), f"w{i}", str(EACH), str(gate)],
            env=support_env(),
            stdout=subprocess.DEVNULL,
        )
        for i in range(WRITERS)
    ]
    gate.touch()  # release every writer at once
    assert [p.wait(timeout=120) for p in procs] == [0] * WRITERS

    log = AuditLog(ws.audit_dir)
    entries = [json.loads(e) for e in log.entries()]
    assert len(entries) == WRITERS * EACH
    assert Counter(e["actor"] for e in entries) == {f"w{i}": EACH for i in range(WRITERS)}
    # each writer's own entries stay in its order
    for i in range(WRITERS):
        seqs = [e["details"]["seq"] for e in entries if e["actor"] == f"w{i}"]
        assert seqs == list(range(EACH))

    keys = SigningKeyring(ws.root / "keys" / "signing", ws.root / "keys" / "trust.json")
    keys.init()
    log.checkpoint(keys.signer(), origin="personagov/test")
    report = log.verify(TrustStore.load(ws.root / "keys" / "trust.json"))
    assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]
