"""The sealed file-digest cache (engine/digest_cache.py): a digest is reused across processes
only for the exact file state it was taken from, only when its MAC verifies under the
workspace's master key, and never for a racy file state.

Fresh test files are always racy (their ctime is "now"), so most tests move the hashing
clock (`digest_cache.now_ns`) 10 s ahead: deterministic, no sleeping, no timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from test_byod_support import AS_OF, credit_table, pgov

import engine.source_files as source_files
from engine import digest_cache
from engine.digest_cache import DigestCache, StatKey
from engine.errors import BadInputError, ExitCode
from engine.pseudonym.keyring import Keyring
from engine.source_files import check_unchanged, clear_digest_memo, digest_file
from engine.workspace import Workspace

LATER = 10_000_000_000


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    clear_digest_memo()  # every test starts as a fresh process would
    yield
    clear_digest_memo()


@pytest.fixture
def later_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing happens 10 s after the file's last change: not racy."""
    import time

    monkeypatch.setattr(digest_cache, "now_ns", lambda: time.time_ns() + LATER)


@pytest.fixture
def cache(tmp_path: Path) -> DigestCache:
    keyring = Keyring.generate()
    return DigestCache(tmp_path / "cache", 1, keyring.derive("digest-cache", "sha256", 1))


def _file(tmp_path: Path, content: bytes = b"a,b\n1,2\n" * 100) -> Path:
    p = tmp_path / "src.csv"
    p.write_bytes(content)
    return p


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_an_unchanged_file_is_hashed_once_then_read_from_the_sealed_cache(
    tmp_path: Path, cache: DigestCache, later_clock: None
) -> None:
    p = _file(tmp_path)
    first = digest_file(p, cache)
    clear_digest_memo()
    second = digest_file(p, cache)
    assert (first.outcome, second.outcome) == ("hashed", "cached")
    assert first.sha256 == second.sha256 == _sha(p)
    (entry,) = list(cache.root.glob("*.json"))
    # Neither the file's name nor the key is in the cache; the digest and a MAC are.
    text = entry.read_text()
    assert "src.csv" not in entry.name and "src.csv" not in text
    assert cache._key.hex() not in text


def test_same_size_change_with_restored_mtime_is_rehashed_because_ctime_moved(
    tmp_path: Path, cache: DigestCache, later_clock: None
) -> None:
    p = _file(tmp_path, b"x" * 4096)
    before = os.stat(p)
    assert digest_file(p, cache).outcome == "hashed"
    with open(p, "r+b") as fh:  # same size, other bytes
        fh.write(b"y")
    os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    # The kernel sets ctime on each utime: repeat until its coarse clock has ticked past
    # the original write, so the precondition holds whatever the machine's speed.
    while os.stat(p).st_ctime_ns == before.st_ctime_ns:
        os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(p)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    clear_digest_memo()
    again = digest_file(p, cache)
    assert again.outcome == "hashed"
    assert again.sha256 == _sha(p) == hashlib.sha256(b"y" + b"x" * 4095).hexdigest()


def test_a_tampered_or_forged_entry_is_ignored_with_a_warning_naming_no_path(
    tmp_path: Path, cache: DigestCache, later_clock: None
) -> None:
    p = _file(tmp_path)
    digest_file(p, cache)
    (entry,) = list(cache.root.glob("*.json"))
    doc = json.loads(entry.read_text())
    doc["sha256"] = "0" * 64  # tampered digest, MAC left as it was
    entry.write_text(json.dumps(doc))
    clear_digest_memo()
    with capture_logs() as logs:
        got = digest_file(p, cache)
    assert (got.outcome, got.sha256) == ("hashed", _sha(p))
    warned = [e for e in logs if e["event"] == "digest_cache.entry_ignored"]
    assert [e["reason"] for e in warned] == ["mac"]
    assert str(tmp_path) not in repr(warned) and "src.csv" not in repr(warned)
    # Forged: a whole entry sealed under another key, at the name the real one uses.
    other = DigestCache(cache.root, 1, Keyring.generate().derive("digest-cache", "sha256", 1))
    key = StatKey.of(os.stat(p))
    assert other.store(key, key.ctime_ns + LATER, "1" * 64)
    other.entry_path(key).replace(cache.entry_path(key))
    clear_digest_memo()
    forged = digest_file(p, cache)
    assert (forged.outcome, forged.sha256) == ("hashed", _sha(p))


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"format": "pgov-digest-cache/1"}'])
def test_a_corrupt_entry_is_ignored_and_rebuilt(
    tmp_path: Path, cache: DigestCache, later_clock: None, content: bytes
) -> None:
    p = _file(tmp_path)
    digest_file(p, cache)
    (entry,) = list(cache.root.glob("*.json"))
    entry.write_bytes(content)
    clear_digest_memo()
    assert digest_file(p, cache).outcome == "hashed"
    clear_digest_memo()
    assert digest_file(p, cache).outcome == "cached"  # rewritten whole


def test_a_racy_file_state_is_neither_stored_nor_trusted(
    tmp_path: Path, cache: DigestCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _file(tmp_path)
    key = StatKey.of(os.stat(p))
    # Hashing begins 1 s after the file's last change: a later change could share its
    # timestamp tick, so nothing is kept, in the cache or in memory.
    monkeypatch.setattr(digest_cache, "now_ns", lambda: key.ctime_ns + 1_000_000_000)
    assert digest_file(p, cache).outcome == "hashed"
    assert digest_file(p, cache).outcome == "hashed"
    assert not list(cache.root.glob("*.json"))
    assert not cache.store(key, key.ctime_ns + 1_000_000_000, _sha(p))
    # And an entry claiming a racy hashing time is refused on lookup, sealed or not.
    fields = {
        "dev": key.dev,
        "ino": key.ino,
        "size": key.size,
        "mtime_ns": key.mtime_ns,
        "ctime_ns": key.ctime_ns,
        "hashed_at_ns": key.ctime_ns,
        "sha256": _sha(p),
        "key_version": 1,
    }
    doc = {"format": digest_cache.FORMAT, **fields, "mac": cache._seal(fields)}
    cache.root.mkdir(parents=True, exist_ok=True)
    cache.entry_path(key).write_text(json.dumps(doc))
    assert cache.lookup(key) is None


def test_a_file_replaced_after_its_digest_was_taken_is_refused_naming_it(
    tmp_path: Path, cache: DigestCache
) -> None:
    p = _file(tmp_path)
    taken = digest_file(p, cache)
    replacement = tmp_path / "new.csv"
    replacement.write_bytes(p.read_bytes())  # same bytes, another inode
    replacement.replace(p)
    with pytest.raises(BadInputError, match=r"src\.csv: the source file changed while"):
        check_unchanged(p, taken.key)


def test_a_second_process_reuses_the_first_ones_entry(tmp_path: Path, later_clock: None) -> None:
    ws = Workspace.open(credit_table(tmp_path / "ws", n=200))
    src = ws.source_path("applicants")
    cache = DigestCache.for_workspace(ws, Keyring.load(ws))
    assert cache is not None
    assert digest_file(src, cache).outcome == "hashed"
    script = textwrap.dedent(
        f"""
        import json
        from engine.digest_cache import DigestCache
        from engine.pseudonym.keyring import Keyring
        from engine.source_files import digest_file
        from engine.workspace import Workspace
        ws = Workspace.open({str(ws.root)!r})
        cache = DigestCache.for_workspace(ws, Keyring.load(ws))
        d = digest_file(ws.source_path("applicants"), cache)
        print(json.dumps([d.outcome, d.sha256]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ws.root
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["cached", _sha(src)]
    # Switched off for that process: hashed again, nothing read from the cache.
    env = {**os.environ, digest_cache.ENV_SWITCH: "off"}
    off = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(off.stdout.strip().splitlines()[-1]) == ["hashed", _sha(src)]


def test_refresh_on_a_workspace_unlike_the_sample_records_the_same_digests_from_the_cache(
    tmp_path: Path, later_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = credit_table(tmp_path / "ws", n=400)
    seen: list[str] = []

    def recorded(path: Path, cache: DigestCache | None) -> object:
        d = digest_file(path, cache)
        seen.append(d.outcome)
        return d

    monkeypatch.setattr(source_files, "digest_file", recorded)
    manifests = []
    for _ in range(2):
        clear_digest_memo()  # each refresh as its own process (the local pool's jobs)
        code, out = pgov(
            "refresh", "-w", str(root), "-j", "UK", "-p", "credit_risk_segmentation",
            "-a", "analyst", "--as-of", AS_OF, "--json",
        )  # fmt: skip
        assert code in (0, ExitCode.GATE_FAILED), out
        latest = sorted((root / "versions" / "UK" / "credit_risk_segmentation").glob("v*"))[-1]
        manifests.append(json.loads((latest / "manifest.json").read_text())["inputs"])
    # Each refresh takes the digest (hashed, then from the cache); the verification `pgov
    # refresh` runs after publishing reuses it ("memo") instead of reading the file again.
    assert seen == ["hashed", "memo", "cached", "memo"]
    expected = {"applicants": _sha(root / "data" / "applicants.csv")}
    assert manifests == [expected, expected]
    code, out = pgov("digests", "status", "-w", str(root), "--json")
    assert code == 0, out
    assert json.loads(out) | {"bytes": 0} == {
        "enabled": True,
        "entries": 1,
        "bytes": 0,
        "verified": 1,
        "ignored": 0,
        "prepass_entries": 1,
    }
    code, out = pgov("digests", "clear", "-w", str(root), "--json")
    assert (code, json.loads(out)) == (0, {"removed": 1, "prepass_removed": 1})
    assert not list((root / digest_cache.CACHE_DIR).glob("*.json"))
