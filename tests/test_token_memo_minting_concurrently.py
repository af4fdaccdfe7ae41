"""Two sources governed side by side tokenise one key context at once (engine/enforce.py):
`TokenMemo.minting` makes the look-up, mint and add of one context one step, so every value
is minted once, the memo's table stays distinct, and the vault files what a one-at-a-time
run files, byte for byte.

The race is forced: the minting waits at a barrier, so without the lock both threads find
nothing known and both mint (the barrier then opens at once); with it the second thread
waits for the first's add, the barrier times out and the second mints only what is new.

A mint never waits for ever: a thread that holds the lock already (a Polars pool worker that
runs another token UDF while it waits inside its own mint) or that waited MINT_WAIT seconds
mints with a memo of its own, whose pairs join as not clean: the same tokens and filing."""

from __future__ import annotations

import contextlib
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import polars as pl
import pytest

import engine.pseudonym.memo as memo_module
from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.keyring import KeyVersion
from engine.pseudonym.memo import TokenMemo
from engine.pseudonym.tokens import KYC_TOKEN
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


def _vault_tokens(p: Pseudonymiser, s: pl.Series, memo: TokenMemo) -> pl.Series:
    """What token_expr's UDF mints for one Series, bodies and all (the vault holds nothing
    yet, so nothing is dropped)."""
    key_hex = p._token_key_hex(KYC_TOKEN, CTX)
    return memo_module.vault_tokens(s, key_hex, f"kv{p.version}.", memo, CTX, lambda t: t)


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

    def unlocked(self: TokenMemo, ctx: str) -> AbstractContextManager[bool]:
        return nullcontext(True)  # "held", but nothing is

    monkeypatch.setattr(TokenMemo, "minting", unlocked)
    minted = _counting(monkeypatch, threading.Barrier(2))
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    _race(p)
    assert sum(minted) == 6000  # the 1000 shared ids minted twice
    (_, table), *_ = p._memo.pending()
    assert table.height > table["v"].n_unique()


def test_a_thread_holding_the_lock_mints_again_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work stealing: the worker that holds a context's lock runs another UDF of the same
    context while it waits inside its mint. It must not wait for itself (not even
    MINT_WAIT: the holder is known)."""
    monkeypatch.setattr(memo_module, "MINT_WAIT", 60.0)
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path / "v"))
    memo = p._memo
    with memo.minting(CTX) as held:
        assert held
        started = time.monotonic()
        first = memo_module.mint(memo, CTX, lambda m: _vault_tokens(p, FIRST[CTX], m))
        assert time.monotonic() - started < 30
        with memo.minting(CTX) as again:
            assert not again
    [(_, clean)] = memo._parts[CTX]
    assert not clean  # minted on its own, joined as not clean
    expr = p.token_expr(CTX, "kyc")
    second = SECOND.select(expr)[CTX]
    alone = Pseudonymiser(_ring(), vault=Vault(tmp_path / "alone"))
    assert first.equals(FIRST.select(alone.token_expr(CTX, "kyc"))[CTX])
    assert second.equals(SECOND.select(alone.token_expr(CTX, "kyc"))[CTX])
    table = memo.get(CTX)
    assert table is not None and table.height == table["v"].n_unique() == 5000
    p.flush()
    alone.flush()
    assert _segments(tmp_path / "v") == _segments(tmp_path / "alone")


def test_a_lock_held_too_long_is_not_waited_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pool workers each waiting for the other's lock: after MINT_WAIT one mints alone."""
    monkeypatch.setattr(memo_module, "MINT_WAIT", 0.2)
    p = Pseudonymiser(_ring(), vault=Vault(tmp_path))
    memo = p._memo
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with memo.minting(CTX):
            holding.set()
            release.wait(timeout=30)

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert holding.wait(timeout=30)
        got = FIRST.select(p.token_expr(CTX, "kyc"))[CTX]  # returns after 0.2 s, not 30
    finally:
        release.set()
        other.join()
    alone = Pseudonymiser(_ring())
    assert got.equals(FIRST.select(alone.token_expr(CTX, "kyc"))[CTX])
    table = memo.get(CTX)
    assert table is not None and table.height == table["v"].n_unique() == 3000


def test_side_by_side_selects_with_several_token_udfs_never_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two selects at once, each with two token UDFs of one context (a key column shared)
    and one of another: Polars' two pool workers steal each other's UDFs while they wait
    inside a mint. A plain per-context lock hung here in the first round."""
    monkeypatch.setattr(memo_module, "MINT_WAIT", 0.3)

    def frame(start: int, n: int) -> pl.DataFrame:
        ids = [f"C{i:08d}" for i in range(start, start + n)]
        return pl.DataFrame({CTX: ids * 3, "email": [f"{i}@example.org" for i in ids] * 3})

    frames = [frame(0, 60_000), frame(40_000, 60_000)]

    def exprs(p: Pseudonymiser) -> list[pl.Expr]:
        shared = p.token_expr("email", "kyc", key_column=CTX).alias("shared")
        return [p.token_expr(CTX, "kyc"), p.token_expr("email", "kyc"), shared]

    ref = Pseudonymiser(_ring(), vault=Vault(tmp_path / "ref"))
    expected = [f.select(exprs(ref)) for f in frames]
    ref.flush()
    for rnd in range(4):
        p = Pseudonymiser(_ring(), vault=Vault(tmp_path / f"r{rnd}"))
        out: list[pl.DataFrame | None] = [None, None]

        def run(i: int, p: Pseudonymiser = p, out: list[pl.DataFrame | None] = out) -> None:
            out[i] = frames[i].select(exprs(p))

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), f"hung in round {rnd}"
        assert all(o is not None and o.equals(e) for o, e in zip(out, expected, strict=True))
        p.flush()
        assert _segments(tmp_path / f"r{rnd}") == _segments(tmp_path / "ref")
