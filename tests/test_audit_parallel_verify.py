"""Large logs are verified by several processes; the verdicts are exactly the serial ones."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_lineage_support import entry

import lineage.audit.verify as auditlog
from lineage.auditlog import AuditLog, verify_log
from lineage.signing import SigningKeyring, TrustStore


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AuditLog, TrustStore]:
    monkeypatch.setattr(auditlog, "PARALLEL_MIN_ENTRIES", 10)
    # The parallel path only runs in a single-threaded process; make sure these tests take it.
    assert threading.active_count() == 1
    kr = SigningKeyring(tmp_path / "k", tmp_path / "trust.json")
    kr.init()
    log = AuditLog(tmp_path / "audit")
    now = datetime.now(UTC)
    log.append_many([entry(i, at=now + timedelta(microseconds=i)) for i in range(60)])
    log.checkpoint(kr.signer(), "test/log")
    return log, kr.trust()


def _verdicts(log: AuditLog, trust: TrustStore, workers: int) -> list[tuple[str, bool, str]]:
    return [(c.name, c.ok, c.detail) for c in verify_log(log, trust, workers=workers).checks]


def test_parallel_and_serial_agree_on_a_clean_log(setup: tuple[AuditLog, TrustStore]) -> None:
    log, trust = setup
    serial = _verdicts(log, trust, 1)
    assert all(ok for _, ok, _ in serial)
    assert _verdicts(log, trust, 2) == serial == _verdicts(log, trust, 3)


def test_parallel_reports_the_earliest_altered_entry(setup: tuple[AuditLog, TrustStore]) -> None:
    log, trust = setup
    data = bytearray(log.log_path.read_bytes())
    for needle in (b'"i":50', b'"i":17'):
        pos = bytes(data).index(needle)
        data[pos + 4] ^= 1
    log.log_path.write_bytes(bytes(data))
    par, ser = _verdicts(log, trust, 2), _verdicts(log, trust, 1)
    assert par == ser
    assert par[0][0] == "log-format" and "entry 17 " in par[0][2]


def test_parallel_finds_duplicates_and_time_jumps_across_chunks(
    setup: tuple[AuditLog, TrustStore],
) -> None:
    log, trust = setup
    first = next(iter(log.entries()))
    log.append(first)  # entry 0's bytes again
    log.append(entry(99, at=datetime.now(UTC) - timedelta(hours=1)))  # a jump back in time
    par, ser = _verdicts(log, trust, 2), _verdicts(log, trust, 1)
    assert par == ser
    failed = {name: detail for name, ok, detail in par if not ok}
    assert "duplicates entry 0" in failed["no-duplicates"]
    assert "before entry" in failed["time-order"]
