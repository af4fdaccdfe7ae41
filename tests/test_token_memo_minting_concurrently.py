"""Two sources governed side by side tokenise one key context at once (engine/enforce.py):
`TokenMemo.minting` makes the look-up, mint and add of one context one step, so every value
is minted once, the memo's table stays distinct, and the vault files what a one-at-a-time
run files, byte for byte.

The race is forced: the minting waits at a barrier, so without the lock both threads find
nothing known and both mint (the barrier then opens at once); with it the second thread
waits for the first's add, the barrier times out and the second mints only what is new."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import polars as pl
import pytest

import engine.pseudonym.memo as memo_module
from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.keyring import KeyVersion
from engine.pseudonym.memo import TokenMemo
from engine.pseudonym.vault import Vault

CTX = "customer_id"


def _ring() -> Keyring:
    return Keyring({1: KeyVersion(1, "2026-01-01", bytes(range(32)))})


def _column(start: int, stop: int) -> pl.DataFrame:
    # Every id four times (an id per transaction): the memo's distinct, remapped path.
    ids = [f"CUST-{i:07d}" for i in range(start, stop)] * 4
    return pl.DataFrame({CTX: ids})


FIRST, SECOND = _column(0, 3000), _column(2000, 5000)  # 1000 ids in common


def _counting(monkeypatch: pytest.MonkeyPatch, barrier: threading.Barrier | None) -> list[int]:
    """Values hashed per mint, each mint first waiting (briefly) for the other thread's."""
    minted: list[int] = []
    real = memo_module._hmac_tokens

    def hmac_tokens(values: pl.Series, *args: object) -> pl.DataFrame:
        if barrier is not None:
            # Broken: the other thread waits for our lock, so this one mints alone.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=0.5)
        minted.append(values.len())
        return real(values, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(memo_module, "_hmac_tokens", hmac_tokens)
    return minted


def _race(p: Pseudonymiser) -> list[pl.Series]:
    expr = p.token_expr(CTX, "kyc")
    out: list[pl.Series] = [pl.Series(), pl.Series()]
    errors: list[BaseException] = []

    def run(i: int, frame: pl.DataFrame) -> None:
        try:
            out[i] = frame.select(expr)[CTX]
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate((FIRST, SECOND))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _segments(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("seg-*.parquet"))}


def test_two_threads_minting_one_context_mint_each_value_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One at a time: the reference tokens and vault.
    alone = Pseudonymiser(_ring(), vault=Vault(tmp_path / "alone"))
    expected = [FIRST.select(alone.token_expr(CTX, "kyc"))[CTX]]
    expected.append(SECOND.select(alone.token_expr(CTX, "kyc"))[CTX])
    alone.flush()

    minted = _counting(monkeypatch, threading.Barrier(2))
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path / "raced"))
    got = _race(p)

    assert sum(minted) == 5000  # each distinct value once, whichever thread came first
    assert all(g.equals(e) for g, e in zip(got, expected, strict=True))
    (ctx, table), *_ = p._memo.pending()
    assert ctx == CTX and table.height == table["v"].n_unique() == 5000
    p.flush()
    raced, reference = _segments(tmp_path / "raced"), _segments(tmp_path / "alone")
    assert raced and raced == reference


def test_without_the_lock_both_threads_mint_the_shared_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the barrier does force the race the lock prevents."""

    def unlocked(self: TokenMemo, ctx: str) -> AbstractContextManager[None]:
        return nullcontext()

    monkeypatch.setattr(TokenMemo, "minting", unlocked)
    minted = _counting(monkeypatch, threading.Barrier(2))
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    _race(p)
    assert sum(minted) == 6000  # the 1000 shared ids minted twice
    (_, table), *_ = p._memo.pending()
    assert table.height > table["v"].n_unique()
