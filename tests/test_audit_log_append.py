"""The audit log appends durably, detects a torn tail, repairs only that, and serialises
concurrent appends from real processes without interleaving."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_lineage_support import T0, entry

from engine.errors import UsageError, VerificationFailed
from lineage.auditlog import MAGIC, AuditLog, TornTail
from lineage.canonical import canonical_json
from lineage.merkle import leaf_hash
from lineage.signing import SigningKeyring


def test_append_returns_consecutive_indices_and_reads_back(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    assert [log.append(entry(i)) for i in range(5)] == [0, 1, 2, 3, 4]
    assert log.append_many([entry(5), entry(6)]) == 5
    assert log.size() == 7
    assert log.entry(3) == entry(3)
    assert list(log.entries()) == [entry(i) for i in range(7)]
    raw = (tmp_path / "audit" / "log.bin").read_bytes()
    assert raw.startswith(MAGIC)
    # Record layout: u32 length || entry || leaf hash.
    first = entry(0)
    assert raw[len(MAGIC) : len(MAGIC) + 4] == len(first).to_bytes(4, "big")
    assert raw[len(MAGIC) + 4 + len(first) : len(MAGIC) + 36 + len(first)] == leaf_hash(first)


def test_entries_must_be_canonical_json_objects_with_the_four_keys(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    for bad in (
        b"",
        b"not json",
        b'{"type":"x"}',
        b'{ "actor":"a","details":{},"time":"t","type":"x"}',
    ):
        with pytest.raises(UsageError):
            log.append(bad)
    assert log.size() == 0


def test_a_crash_between_log_write_and_cache_write_is_recovered(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_many([entry(i) for i in range(3)])
    e = entry(3)
    with open(log.log_path, "ab") as f:  # the record reached the log, the cache row did not
        f.write(len(e).to_bytes(4, "big") + e + leaf_hash(e))
    assert log.size() == 4
    assert log.append(entry(4)) == 4
    log.cache_path.unlink()  # the cache is derived: rebuilt from the log
    assert log.size() == 5 and log.entry(4) == entry(4)


def test_a_torn_tail_is_detected_on_open_and_repair_truncates_only_it(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_many([entry(i) for i in range(4)])
    good = log.log_path.read_bytes()
    e = entry(4)
    with open(log.log_path, "ab") as f:
        f.write((len(e).to_bytes(4, "big") + e)[: len(e) // 2])  # crash mid-append
    with pytest.raises(TornTail, match=r"torn final record.*pgov audit repair"):
        AuditLog(tmp_path / "audit").append(entry(5))
    with pytest.raises(TornTail):
        log.size()
    done = log.repair(actor="ops")
    assert done is not None and done["entries_kept"] == 4 and done["offset"] == len(good)
    assert log.log_path.read_bytes().startswith(good)
    rows = log.query(type="audit_log_repaired")
    assert len(rows) == 1 and rows[0]["actor"] == "ops" and rows[0]["index"] == 4
    assert log.repair() is None


def test_a_final_record_with_a_wrong_hash_is_torn_but_a_middle_one_is_tampering(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_many([entry(i) for i in range(2)])
    log.cache_path.unlink()
    data = bytearray(log.log_path.read_bytes())
    data[-1] ^= 1
    log.log_path.write_bytes(bytes(data))
    with pytest.raises(TornTail):
        log.size()
    data[-1] ^= 1
    data[len(MAGIC) + 10] ^= 1  # inside entry 0
    log.log_path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match=r"entry 0.*altered"):
        log.size()


def test_a_log_shorter_than_its_cache_is_reported_as_truncated(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_many([entry(i) for i in range(3)])
    e = entry(2)
    size = log.log_path.stat().st_size
    os.truncate(log.log_path, size - (len(e) + 36))
    with pytest.raises(VerificationFailed, match="deleted or truncated"):
        log.append(entry(9))


def _worker(directory: str, proc: int, n: int) -> None:
    log = AuditLog(Path(directory))
    for i in range(n):
        t = (T0 + timedelta(microseconds=proc * 10_000 + i)).isoformat()
        log.append(
            canonical_json({"type": "t", "actor": f"p{proc}", "time": t, "details": {"i": i}})
        )


def test_concurrent_processes_never_interleave_or_lose_entries(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    procs, n = 4, 150
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(str(directory), p, n)) for p in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    log = AuditLog(directory)
    assert log.size() == procs * n
    seen: dict[str, list[int]] = {}
    for raw in log.entries():
        obj = json.loads(raw)
        seen.setdefault(obj["actor"], []).append(obj["details"]["i"])
    assert seen == {f"p{p}": list(range(n)) for p in range(procs)}
    kr = SigningKeyring(tmp_path / "k", tmp_path / "trust.json")
    kr.init()
    log.checkpoint(kr.signer(), "test/log")
    rep = log.verify(kr.trust())
    assert rep.ok, rep.to_dict()


def test_query_filters_by_actor_type_and_time(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append(entry(0, actor="a", type_="refresh_requested"))
    log.append(entry(10, actor="b", type_="refresh_denied"))
    log.append(entry(20, actor="a", type_="version_published"))
    assert [r["index"] for r in log.query(actor="a")] == [0, 2]
    assert [r["index"] for r in log.query(type="refresh_denied")] == [1]
    assert [r["index"] for r in log.query(since=T0 + timedelta(seconds=5))] == [1, 2]
    assert log.query(actor="a", type="refresh_denied") == []
    assert log.query(since=datetime.now(UTC) + timedelta(days=1)) == []


def test_a_read_only_copy_can_be_queried_without_taking_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_many([entry(i) for i in range(3)])

    def read_only() -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(log, "_acquire", read_only)
    assert [r["index"] for r in log.query()] == [0, 1, 2]
    assert list(log.entries()) == [entry(i) for i in range(3)]


def test_verifying_while_another_process_appends_never_reports_a_torn_log(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "audit"
    kr = SigningKeyring(tmp_path / "k", tmp_path / "trust.json")
    kr.init()
    log = AuditLog(directory)
    log.append(entry(0, at=datetime.now(UTC)))
    log.checkpoint(kr.signer(), "test/log")
    ctx = multiprocessing.get_context("fork")
    writer = ctx.Process(target=_now_writer, args=(str(directory), 200))
    writer.start()
    try:
        while writer.is_alive():
            rep = log.verify(kr.trust())
            assert "log-format" not in {c.name for c in rep.failures}, rep.to_dict()
    finally:
        writer.join(timeout=120)
    assert writer.exitcode == 0
    assert log.size() == 202


def _now_writer(directory: str, n: int) -> None:
    log = AuditLog(Path(directory))
    for i in range(n):
        log.append(entry(i, at=datetime.now(UTC)))
