"""The kyc token vault: kv tokens (vectorised HMAC) + AES-SIV entries filed once per value.

Round trip, determinism, rotation, old AES-SIV tokens, refreshes that only encrypt what is
new, tamper evidence, atomic writes under a full disk, concurrent writers and kill -9 of a
writer (real processes), erasure.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

import engine.pseudonym.vault_files as vault_files
from engine.errors import KeyMaterialError, StorageError
from engine.pseudonym import Keyring, Pseudonymiser, parse_token
from engine.pseudonym.keyring import KeyVersion
from engine.pseudonym.vault import MANIFEST, Vault

MASTER = bytes(range(32))


def _ring() -> Keyring:
    return Keyring({1: KeyVersion(1, "2026-01-01", MASTER)})


def _ids(n: int, start: int = 0) -> list[str | None]:
    return [f"CUST-{i:07d}" for i in range(start, start + n)]


def _refresh(p: Pseudonymiser, values: list[str | None], column: str = "customer_id") -> list:
    """What a refresh does with one column: tokens, then the vault filing."""
    toks = p.tokenise(values, column, "kyc")
    p.flush()
    return toks


def test_round_trip_through_the_vault(tmp_path: Path) -> None:
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    values = [*_ids(300), None, "CUST-0000007"]
    toks = _refresh(p, values)
    assert toks[300] is None and toks[301] == toks[7]
    assert all(parse_token(t).scheme == "vault" for t in toks if t)
    assert all(len(parse_token(t).body) * 4 == 128 for t in toks if t)
    fresh = Pseudonymiser(_ring(), vault=Vault(tmp_path))  # another process, same workspace
    assert fresh.reveal([t for t in toks if t], "customer_id") == [v for v in values if v]


def test_same_inputs_same_tokens_and_same_vault_digest(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        p = Pseudonymiser(_ring(), vault=Vault(tmp_path / name))
        # The same content reached in different steps must give the same digest.
        if name == "a":
            toks = _refresh(p, _ids(500))
        else:
            _refresh(p, _ids(200, 300))
            toks = _refresh(Pseudonymiser(_ring(), vault=Vault(tmp_path / name)), _ids(500))
        v = Vault(tmp_path / name)
        runs.append((toks, v.digest("customer_id", 1)))
    assert runs[0] == runs[1]
    # And the same single-step run writes byte-identical segments (named by their digest).
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path / "c"))
    _refresh(p, _ids(500))
    seg_a = sorted(p.name for p in (tmp_path / "a").rglob("seg-*.parquet"))
    seg_c = sorted(p.name for p in (tmp_path / "c").rglob("seg-*.parquet"))
    assert seg_a == seg_c


def test_a_second_refresh_encrypts_only_new_values(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    p = Pseudonymiser(_ring(), vault=vault)
    p.tokenise(_ids(1000), "customer_id", "kyc")
    [first] = p.flush()
    assert first.added == 1000 and first.segments == 1
    again = Pseudonymiser(_ring(), vault=vault)
    again.tokenise(_ids(1000), "customer_id", "kyc")
    [second] = again.flush()
    assert second.added == 0 and second.segment is None  # nothing new: nothing written
    five = Pseudonymiser(_ring(), vault=vault)
    five.tokenise(_ids(1000, 50), "customer_id", "kyc")  # 5 % new
    [third] = five.flush()
    assert third.added == 50 and third.segments == 2
    assert vault.read("customer_id", 1).height == 1050


def test_pairs_the_vault_holds_are_not_carried_until_the_filing(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    _refresh(Pseudonymiser(_ring(), vault=vault), _ids(1000))
    again = Pseudonymiser(_ring(), vault=vault)
    toks = again.tokenise(_ids(1000, 50), "customer_id", "kyc")  # 50 values are new
    [(ctx, pending)] = again._memo.pending()
    # Only the new values' cleartext waits for the filing, not the 950 the vault holds.
    assert ctx == "customer_id" and sorted(pending["v"]) == _ids(50, 1000)
    published = pl.Series("customer_id", toks)
    [w] = again.flush({"customer_id": published})
    assert w.added == 50 and vault.read("customer_id", 1).height == 1050
    assert again.reveal(toks[-3:], "customer_id") == _ids(1000, 50)[-3:]


def test_tokens_are_the_same_whatever_the_vault_already_holds(tmp_path: Path) -> None:
    distinct = [*_ids(6000), None]
    repeated = [f"CUST-{i % 50:07d}" for i in range(0, 12000, 2)] + [None]
    vault = Vault(tmp_path)
    _refresh(Pseudonymiser(_ring(), vault=vault), _ids(3000))  # half held already
    p = Pseudonymiser(_ring(), vault=vault)
    a, b = p.tokenise(distinct, "customer_id", "kyc"), p.tokenise(repeated, "customer_id", "kyc")
    bare = Pseudonymiser(_ring())
    assert a == bare.tokenise(distinct, "customer_id", "kyc")
    assert b == bare.tokenise(repeated, "customer_id", "kyc")
    [w] = p.flush()
    assert w.added == 3000 and vault.read("customer_id", 1).height == 6000


def test_repeated_ids_across_sources_give_the_same_tokens_as_distinct_ones(
    tmp_path: Path,
) -> None:
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    distinct = [*_ids(6000), None]
    repeated = [f"CUST-{i % 50:07d}" for i in range(6000)] + [None]
    a = p.tokenise(distinct, "customer_id", "kyc")
    b = p.tokenise(repeated, "customer_id", "kyc")
    c = Pseudonymiser(_ring()).tokenise(repeated, "customer_id", "kyc")
    assert b == c and a[:50] == b[:50] and b[50] == a[0] and a[-1] is None
    [w] = p.flush()
    assert w.added == 6000


def test_rotation_each_version_its_own_store_and_old_tokens_still_reveal(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    ring = _ring()
    [t1] = _refresh(Pseudonymiser(ring, vault=vault), ["C1"])
    rotated = ring.with_new_version()
    [t2] = _refresh(Pseudonymiser(rotated, vault=vault), ["C1"])
    assert t1.startswith("kv1.") and t2.startswith("kv2.") and t1 != t2
    assert Pseudonymiser(rotated, vault=vault).reveal([t1, t2], "customer_id") == ["C1", "C1"]
    assert vault.stores() == [("customer_id", 1), ("customer_id", 2)]
    # The key version that minted a token is needed: without it, a refusal, not garbage.
    with pytest.raises(KeyMaterialError, match="unknown"):
        Pseudonymiser(Keyring({2: KeyVersion(2, "", b"\x09" * 32)}), vault=vault).reveal(
            [t1], "customer_id"
        )


def test_old_aes_siv_tokens_stay_valid_beside_vault_tokens(tmp_path: Path) -> None:
    ring = _ring()
    [old] = Pseudonymiser(ring, scheme="siv").tokenise(["C1"], "customer_id", "kyc")
    p = Pseudonymiser(ring, vault=Vault(tmp_path))
    [new] = _refresh(p, ["C1"])
    assert old is not None and old.startswith("k1.") and new.startswith("kv1.")
    assert p.reveal([old, new, old], "customer_id") == ["C1", "C1", "C1"]
    # A workspace may keep minting the old kind ([keys].kyc_tokens = "siv").
    assert Pseudonymiser(ring, scheme="siv", vault=Vault(tmp_path)).flush() == []


def test_the_vault_entry_only_opens_for_its_own_token_column_and_key(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    p = Pseudonymiser(_ring(), vault=vault)
    a, b = _refresh(p, ["C1", "C2"])
    with pytest.raises(KeyMaterialError, match="not in the token vault"):
        p.reveal([a], "national_id")
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        Pseudonymiser(Keyring({1: KeyVersion(1, "", b"\x07" * 32)}), vault=vault).reveal(
            [a], "customer_id"
        )
    with pytest.raises(KeyMaterialError, match="not in the token vault"):
        p.reveal([a[:-1] + ("0" if a[-1] != "0" else "1")], "customer_id")
    # Tampering with sealed blocks: tests/test_vault_blocks.py; with a v1 store's
    # per-entry ciphertexts (swapped between two entries): there too.
    with pytest.raises(KeyMaterialError, match=r"no token vault|none is set"):
        Pseudonymiser(_ring()).reveal([b], "customer_id")


def test_a_full_disk_leaves_the_vault_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault(tmp_path)
    _refresh(Pseudonymiser(_ring(), vault=vault), _ids(100))
    d = vault.directory("customer_id", 1)
    before = sorted(p.name for p in d.iterdir())
    digest = vault.digest("customer_id", 1)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vault_files.os, "fsync", full)
    p = Pseudonymiser(_ring(), vault=vault)
    p.tokenise(_ids(100, 100), "customer_id", "kyc")
    with pytest.raises(StorageError, match="storage full"):
        p.flush()
    monkeypatch.undo()
    assert sorted(p.name for p in d.iterdir()) == before  # no temp file, no new segment
    assert vault.digest("customer_id", 1) == digest
    p.tokenise(_ids(100, 100), "customer_id", "kyc")
    [w] = p.flush()  # space is back: the next refresh files them
    assert w.added == 100


_WRITER = textwrap.dedent(
    """
    import sys
    import polars as pl
    from engine.pseudonym import Keyring, Pseudonymiser
    from engine.pseudonym.keyring import KeyVersion
    from engine.pseudonym.vault import Vault

    root, start, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ring = Keyring({1: KeyVersion(1, "", bytes(range(32)))})
    if rounds == 0:  # erase instead
        p = Pseudonymiser(ring)
        gone = p.forget([f"CUST-{i:07d}" for i in range(start, start + n)], "customer_id")
        Vault(root).erase("customer_id", 1, pl.Series(gone), p.vault_cipher("customer_id", 1))
    for r in range(rounds):
        p = Pseudonymiser(ring, vault=Vault(root))
        lo = start + r * n // 2  # overlaps the other writer and its own last round
        p.tokenise([f"CUST-{i:07d}" for i in range(lo, lo + n)], "customer_id", "kyc")
        p.flush()
        print("round", r, flush=True)
    """
)


def _writer(
    root: Path, start: int, n: int, rounds: int, crash_at: str | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("PGOV_CRASH_AT", None)
    if crash_at:
        env["PGOV_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), str(start), str(n), str(rounds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_concurrent_writers_both_land_and_nothing_is_lost(tmp_path: Path) -> None:
    """Two refreshes of different jurisdictions file overlapping values at the same time."""
    procs = [_writer(tmp_path, 0, 400, 6), _writer(tmp_path, 600, 400, 6)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    vault = Vault(tmp_path)
    expected = sorted({*range(0, 400 + 5 * 200), *range(600, 600 + 400 + 5 * 200)})
    values = [f"CUST-{i:07d}" for i in expected]
    toks = Pseudonymiser(_ring()).tokenise(values, "customer_id", "kyc")  # type: ignore[arg-type]
    held = vault.read("customer_id", 1)
    assert held.height == len(values) and set(held["t"]) == set(toks)
    assert len(list(vault.directory("customer_id", 1).glob("seg-*.parquet"))) <= 8 + 1
    sample = [t for t in toks[::97] if t]
    assert Pseudonymiser(_ring(), vault=vault).reveal(sample, "customer_id") == values[::97]


def test_kill_9_mid_write_leaves_a_readable_vault(tmp_path: Path) -> None:
    """A writer killed at an arbitrary moment: what the manifest lists stays readable and
    complete, stray files go at the next write, and a rerun files what was lost."""
    _refresh(Pseudonymiser(_ring(), vault=Vault(tmp_path)), _ids(50))
    d = Vault(tmp_path).directory("customer_id", 1)
    for delay in (0.4, 0.9, 1.6):
        proc = _writer(tmp_path, 1000, 60_000, 50)
        time.sleep(delay)
        seen = proc.stdout.readline() if delay > 1.5 else ""  # let some rounds land
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, seen
        vault = Vault(tmp_path)
        held = vault.read("customer_id", 1)  # readable: no torn segment is ever listed
        assert held["t"].is_unique().all()
        p = Pseudonymiser(_ring(), vault=vault)
        toks = [t for t in p.tokenise(_ids(50), "customer_id", "kyc") if t]
        assert p.reveal(toks, "customer_id") == _ids(50)  # what was there before survives
    # The next writer sweeps whatever the killed one left behind, and files everything. It
    # files a few values no killed writer had: a filing with nothing new is no writer (it
    # takes no lock, so it sweeps nothing: tests/test_vault_filing_nothing_new.py).
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    p.tokenise([*_ids(2000, 1000), *(f"NEW-{i:03d}" for i in range(10))], "customer_id", "kyc")
    p.flush()
    listed = set(Vault(tmp_path)._manifest(d))
    assert {f.name for f in d.glob("seg-*.parquet")} == listed
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*.tmp"))
    toks = [t for t in p.tokenise(_ids(2000, 1000), "customer_id", "kyc") if t]
    assert p.reveal(toks[::50], "customer_id") == _ids(2000, 1000)[::50]


@pytest.mark.parametrize(
    "stage", ["vault_segment_temp", "vault_before_manifest", "vault_erase_before_unlink"]
)
def test_kill_9_at_each_step_of_a_write(tmp_path: Path, stage: str) -> None:
    """SIGKILL between the steps of a write (temp file written; segment renamed but not
    listed; erasure listed but the old segment not yet unlinked): the vault reads as before
    (or, for the erasure, as after), and the next writer removes the leftovers."""
    _refresh(Pseudonymiser(_ring(), vault=Vault(tmp_path)), _ids(100))
    vault = Vault(tmp_path)
    d = vault.directory("customer_id", 1)
    before = vault.digest("customer_id", 1)
    erase = stage.startswith("vault_erase")
    proc = _writer(tmp_path, 0 if erase else 5000, 10 if erase else 300, 0 if erase else 1, stage)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    held = vault.read("customer_id", 1)
    if erase:
        assert held.height == 90  # the manifest already names the rewritten segment
        assert len(list(d.glob("seg-*.parquet"))) == 2  # the old one is still on disk
    else:
        assert vault.digest("customer_id", 1) == before
        assert list(d.glob("*.tmp")) or len(list(d.glob("seg-*.parquet"))) == 2
    # The next writer sweeps the leftovers (an erased subject's old segment included).
    p = Pseudonymiser(_ring(), vault=vault)
    p.tokenise(_ids(5, 9000), "customer_id", "kyc")
    p.flush()
    assert {f.name for f in d.glob("seg-*.parquet")} == set(vault._manifest(d))
    assert not list(d.glob("*.tmp"))
    assert vault.read("customer_id", 1).height == (95 if erase else 105)


def test_erasure_removes_the_entries_and_the_tokens_stop_revealing(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    p = Pseudonymiser(_ring(), vault=vault)
    toks = _refresh(p, _ids(20))
    _refresh(Pseudonymiser(_ring(), vault=vault), _ids(20, 20))  # a second segment
    gone = p.forget(["CUST-0000003", "CUST-0000025"], "customer_id")
    assert len(gone) == 2
    w = vault.erase("customer_id", 1, pl.Series(gone), p.vault_cipher("customer_id", 1))
    assert w.erased == 2 and vault.read("customer_id", 1).height == 38
    with pytest.raises(KeyMaterialError, match="not in the token vault"):
        p.reveal([toks[3]], "customer_id")
    assert p.reveal([toks[4]], "customer_id") == ["CUST-0000004"]
    # Nothing of the erased entries is left on disk, in any file.
    raw = b"".join(f.read_bytes() for f in vault.directory("customer_id", 1).iterdir())
    assert gone[0].encode() not in raw and gone[1].encode() not in raw
    assert vault.erase("customer_id", 1, pl.Series(gone)).erased == 0  # idempotent, no key


def test_vault_dirs_never_walk_out_of_the_vault(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    for name in ("../../etc", "a/b", "..", "über"):
        d = vault.directory(name, 1)
        assert d.resolve().is_relative_to(tmp_path.resolve())
        assert d.parent.name.startswith("x-")
    assert vault.directory("customer_id", 3).name == "v3"
    assert MANIFEST == "MANIFEST.json"


def test_contexts_filed_together_come_back_in_order_and_a_failed_one_stays_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault(tmp_path)
    p = Pseudonymiser(_ring(), vault=vault)
    cols = ["customer_id", "email", "phone"]
    toks = {c: p.tokenise(_ids(50, 100 * i), c, "kyc") for i, c in enumerate(cols)}
    append = Vault.append

    def failing(self: Vault, context: str, *a: object, **k: object) -> object:
        if context == "email":
            raise StorageError("disk full")
        return append(self, context, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Vault, "append", failing)
    with pytest.raises(StorageError):
        p.flush()
    assert vault.read("customer_id", 1).height == vault.read("phone", 1).height == 50
    assert vault.read("email", 1).height == 0
    monkeypatch.undo()
    writes = p.flush()  # only the failed context was still pending
    assert [(w.context, w.added) for w in writes] == [("email", 50)]
    for c in cols:
        assert p.reveal([t for t in toks[c] if t], c) == _ids(50, 100 * cols.index(c))
    q = Pseudonymiser(_ring(), vault=Vault(tmp_path / "b"))
    for c in reversed(cols):
        q.tokenise(_ids(5), c, "kyc")
    assert [w.context for w in q.flush()] == sorted(cols)
