"""A filing with nothing new to file takes no vault lock (engine/pseudonym/vault.py, append):
a steady refresh mints only tokens the vault holds, and waiting on the store's lock for them
would only make refreshes of other jurisdictions wait on each other. What it reports, and
what the vault holds, are what a locked no-op gave."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.keyring import KeyVersion
from engine.pseudonym.vault import Vault, VaultWrite

COLS = ("customer_id", "email")


def _ring() -> Keyring:
    return Keyring({1: KeyVersion(1, "2026-01-01", bytes(range(32)))})


def _refresh(vault: Vault, n: int) -> list[VaultWrite]:
    """Two key contexts tokenised, one repetitive (the remapped path), one distinct (the
    row-by-row path), then filed."""
    p = Pseudonymiser(_ring(), vault=vault)
    ids = [f"CUST-{i:07d}" for i in range(n)]
    p.tokenise(ids * 3, "customer_id", "kyc")
    p.tokenise([f"{i}@example.org" for i in ids], "email", "kyc")
    return p.flush()


@pytest.fixture
def locks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The contexts whose store lock was taken."""
    taken: list[str] = []
    real = Vault._locked

    @contextlib.contextmanager
    def locked(self: Vault, context: str, version: int) -> Iterator[Path]:
        taken.append(context)
        with real(self, context, version) as d:
            yield d

    monkeypatch.setattr(Vault, "_locked", locked)
    return taken


def _segments(root: Path) -> dict[str, bytes]:
    files = sorted(f for f in root.rglob("*") if f.is_file())
    return {str(f.relative_to(root)): f.read_bytes() for f in files}


def test_a_refresh_with_nothing_new_takes_no_lock(tmp_path: Path, locks: list[str]) -> None:
    vault = Vault(tmp_path)
    first = _refresh(vault, 2000)
    assert sorted(locks) == sorted(COLS) and all(w.added for w in first)
    before = _segments(tmp_path)
    locks.clear()

    again = _refresh(vault, 2000)  # every token held: the memo keeps no pair to file
    assert locks == []
    assert [(w.context, w.added, w.segments, w.segment) for w in again] == [
        (c, 0, 1, None) for c in COLS
    ]
    assert _segments(tmp_path) == before


def test_pairs_held_since_they_were_minted_take_no_lock_either(
    tmp_path: Path, locks: list[str]
) -> None:
    """Minted while another writer filed them: pending, but nothing left after the check
    against the store, which is then not locked."""
    vault = Vault(tmp_path)
    late = Pseudonymiser(_ring(), vault=vault)
    late.tokenise([f"CUST-{i:07d}" for i in range(500)], "customer_id", "kyc")
    _refresh(vault, 500)  # files the same values first
    locks.clear()
    [w] = late.flush()
    assert locks == [] and (w.added, w.segments) == (0, 1)
    assert late._memo.pending() == []


def test_anything_new_is_still_filed_under_the_lock(tmp_path: Path, locks: list[str]) -> None:
    vault = Vault(tmp_path)
    _refresh(vault, 1000)
    locks.clear()
    writes = _refresh(vault, 1100)  # 100 new per context
    assert sorted(locks) == sorted(COLS)
    assert [w.added for w in writes] == [100, 100]
    assert vault.read("customer_id", 1).height == 1100
    assert vault.read("email", 1).height == 1100


def test_a_killed_writers_strays_wait_for_the_next_writer(tmp_path: Path) -> None:
    """Files a killed writer left (a temp file, an unlisted segment) are swept under the
    lock; a filing with nothing new takes none, so they wait, unread, for the next write."""
    vault = Vault(tmp_path)
    _refresh(vault, 300)
    d = vault.directory("customer_id", 1)
    stray = d / ".seg-0123456789ab.tmp"
    stray.write_bytes(b"torn")
    _refresh(vault, 300)  # nothing new
    assert stray.exists()
    assert vault.read("customer_id", 1).height == 300
    _refresh(vault, 301)  # one new value: a writer, which sweeps
    assert not stray.exists()
