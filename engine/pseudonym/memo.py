"""kyc token batches: the per-refresh memo of (value, token) pairs and the two token kinds.

One refresh tokenises the subject id in every source (crm, transactions, events, ...): the
memo keeps each key context's (value, token) pairs so a value repeated across sources costs
one token computation, not one per row. Under the vault scheme the memo is also the list of
tokens minted this refresh that `Pseudonymiser.flush()` files in the vault.

Holds cleartext values in memory for the refresh's duration, as the source frames do; it
is never written, logged or serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from engine.pseudonym import native_hmac

HMAC_HEX_CHARS = 32
# Rows looked at to guess whether a column is mostly distinct (then it is hashed row by row,
# no unique() first): the guess only chooses the faster path, never the result.
_PROBE = 65_536
_SIV_SLICE = 262_144
# Seconds a mint waits for another thread's mint of the same key context before it mints on
# its own (TokenMemo.minting): short, because two pool workers waiting on each other wait
# this long. A longer mint of the other thread (millions of values) only means the waiter
# hashes its values itself: CPU spent twice, the same tokens.
MINT_WAIT = 1.0


class TokenMemo:
    """(value v, token t) pairs per key context, with which contexts are not yet filed.

    Its own lock guards only dicts and lists, never a Polars call: a token function runs as
    a Polars UDF on a worker of Polars' pool, and a worker waiting inside a Polars call may
    run another UDF meanwhile (work stealing), which would then wait for a lock its own
    thread holds."""

    def __init__(self) -> None:
        # Per context, the pairs in the order they were added, each with whether it is
        # `clean` (no value in it twice, none also in an earlier part).
        self._parts: dict[str, list[tuple[pl.DataFrame, bool]]] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._minting: dict[str, threading.Lock] = {}  # per context, made under `_lock`
        self._owner: dict[str, int] = {}  # context -> the thread holding its minting lock

    def __reduce__(self) -> str | tuple[object, ...]:
        # Cleartext values: a plan holding the memo must never be pickled or shipped.
        raise TypeError("TokenMemo holds cleartext values and cannot be serialised")

    @contextmanager
    def minting(self, ctx: str) -> Iterator[bool]:
        """Whether this thread now holds `ctx`'s minting lock, to be held across one look-up,
        mint and add. Two sources governed side by side (engine/enforce.py) may tokenise one
        key context at once: without it both could find nothing known, both mint and both
        add, leaving a value twice in a part kept as clean (a later remap then fails on the
        repeated value). Other contexts mint meanwhile: the lock is per context.

        False (not held) when this thread holds it already (a UDF it runs while it waits
        inside the mint: work stealing, see the class) or when it stayed busy for
        `MINT_WAIT` seconds (two pool workers each waiting for the other's): the caller then
        mints on its own and adds its pairs as not clean (`mint`), never waiting forever."""
        me = threading.get_ident()
        with self._lock:
            lock = self._minting.setdefault(ctx, threading.Lock())
            again = self._owner.get(ctx) == me
        if again or not lock.acquire(timeout=MINT_WAIT):
            yield False
            return
        try:
            with self._lock:
                self._owner[ctx] = me
            yield True
        finally:
            with self._lock:
                self._owner.pop(ctx, None)
            lock.release()

    def get(self, ctx: str) -> pl.DataFrame | None:
        """Every pair of `ctx`, each value once."""
        with self._lock:
            parts = list(self._parts.get(ctx, ()))
        if not parts:
            return None
        table = parts[0][0] if len(parts) == 1 else pl.concat([p for p, _ in parts])
        if not all(clean for _, clean in parts):
            table = table.unique(subset="v", keep="first")
        if len(parts) > 1 or not parts[0][1]:
            with self._lock:  # kept as one clean part, unless filed or compacted meanwhile
                now = self._parts.get(ctx)
                if (
                    now is not None
                    and len(now) >= len(parts)
                    and all(a is b for (a, _), (b, _) in zip(now, parts, strict=False))
                ):
                    self._parts[ctx] = [(table, True), *now[len(parts) :]]
        return table

    def add(self, ctx: str, table: pl.DataFrame, *, distinct: bool = True) -> None:
        """`distinct`: no value of `table` is twice in it or in the pairs `get` gave the
        minter (which held the context's minting lock since)."""
        with self._lock:
            self._parts.setdefault(ctx, []).append((table, distinct))
            self._pending.add(ctx)

    def pending(self) -> list[tuple[str, pl.DataFrame]]:
        """The contexts with tokens minted since they were last filed, with all their pairs
        (a value may come twice: the filing keeps one entry per token)."""
        with self._lock:
            parts = {n: [p for p, _ in self._parts[n]] for n in sorted(self._pending)}
        return [(n, p[0] if len(p) == 1 else pl.concat(p)) for n, p in parts.items()]

    def filed(self, ctx: str) -> None:
        """`ctx` is in the vault (called only once its write succeeded: a failed write leaves
        it pending for the next attempt). Its pairs are dropped: filing happens once enforce
        is done, and the rest of a refresh should not carry a column of cleartext values; a
        later token_expr just hashes again."""
        with self._lock:
            self._pending.discard(ctx)
            self._parts.pop(ctx, None)


def mint(memo: TokenMemo, ctx: str, tokens: Callable[[TokenMemo], pl.Series]) -> pl.Series:
    """`tokens(m)` (vault_tokens or siv_tokens of one Series, given the memo to use) under
    `ctx`'s minting lock. When the lock is not to be had (see `TokenMemo.minting`) the
    tokens are minted with a memo of their own, whose pairs then join `memo`'s as not clean:
    the same tokens (they are deterministic), some values hashed twice, nothing lost."""
    with memo.minting(ctx) as held:
        if held:
            return tokens(memo)
    own = TokenMemo()
    out = tokens(own)
    for _, pairs in own.pending():
        memo.add(ctx, pairs, distinct=False)
    return out


def _hmac_tokens(values: pl.Series, key_hex: str, prefix: str, keyed: bool) -> pl.DataFrame:
    """Tokens `t` of the values, and with `keyed` their 128-bit bodies `x` (what the vault
    compares and sorts by), computed in the same pass: by the native HMAC when it is built
    (a third of the CPU), else by polars-hash (the same bytes)."""
    if native_hmac.available():
        tokens, bodies = native_hmac.hmac_tokens(values, key_hex.encode(), prefix, keyed=keyed)
        return pl.DataFrame([tokens.rename("t")] + ([bodies] if bodies is not None else []))
    hashed = pl.col("v").chash.hmac_sha256(key=key_hex).str.slice(0, HMAC_HEX_CHARS)  # type: ignore[attr-defined]
    cols = [(pl.lit(prefix) + hashed).alias("t")]
    if keyed:
        cols.append(hashed.str.to_integer(base=16, dtype=pl.UInt128).alias("x"))
    # Streaming: the column is cut into morsels hashed on every core (an eager select over
    # one chunk hashes on one thread). An elementwise select keeps the row order.
    return pl.LazyFrame({"v": values}).select(cols).collect(engine="streaming")


def vault_tokens(
    s: pl.Series,
    key_hex: str,
    prefix: str,
    memo: TokenMemo,
    ctx: str,
    unheld: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> pl.Series:
    """kv tokens over a whole Series, vectorised (HMAC-SHA256, native or polars-hash); every
    pair minted is remembered so the vault can file it, except those `unheld` drops (the
    pairs the vault holds already: a steady refresh then carries no column of cleartext
    values and tokens until the filing). With `unheld` the pairs carry the tokens' bodies `x`
    too (computed with the HMAC, on every core: the vault needs them to compare, sort and
    seal). A mostly distinct column is hashed row by row; a repetitive one (an id in every
    transaction) once per distinct value, then remapped."""
    s = s.cast(pl.String)
    keyed = unheld is not None
    keep = unheld if unheld is not None else (lambda pairs: pairs)
    known = memo.get(ctx)
    if known is None:
        probe = s.slice(0, _PROBE).drop_nulls()
        if probe.len() == 0 or probe.n_unique() >= 0.5 * probe.len():
            hashed = _hmac_tokens(s, key_hex, prefix, keyed)
            pairs = hashed.with_columns(v=s).select("v", pl.exclude("v")).drop_nulls()
            memo.add(ctx, keep(pairs), distinct=False)
            return hashed["t"].rename(s.name)
        todo = s.drop_nulls().unique()
    else:
        uniq = pl.DataFrame({"v": s.drop_nulls().unique()})
        todo = uniq.join(known.select("v"), on="v", how="anti")["v"]
    fresh = _hmac_tokens(todo, key_hex, prefix, keyed).with_columns(v=todo)
    fresh = fresh.select("v", pl.exclude("v"))
    if fresh.height:
        memo.add(ctx, keep(fresh))
    table = fresh if known is None else pl.concat([known.select(fresh.columns), fresh])
    return s.replace_strict(table["v"], table["t"], return_dtype=pl.String).rename(s.name)


def siv_tokens(
    s: pl.Series,
    siv: AESSIV,
    aad: list[bytes],
    prefix: str,
    memo: TokenMemo | None = None,
    ctx: str = "",
) -> pl.Series:
    """AES-SIV (`k` tokens) over a whole Series: one Python call per distinct value not
    already known, with base64url and the prefix applied as vectorised string operations."""
    s = s.cast(pl.String)
    uniq = s.drop_nulls().unique()
    known = memo.get(ctx) if memo is not None else None
    # Repeated ids (transactions, events) cost one encryption per distinct value. Mostly
    # distinct columns (the subjects source) with nothing known skip the remap, which would
    # cost more than it saves; the unique() spent deciding is small next to one AES-SIV call
    # per row.
    dedup = uniq.len() < 0.5 * s.len()
    if known is None and not dedup:
        return _siv_encrypt(s, siv, aad, prefix).rename(s.name)
    todo = uniq if known is None else uniq.filter(~uniq.is_in(known["v"].implode()))
    fresh = pl.DataFrame({"v": todo, "t": _siv_encrypt(todo, siv, aad, prefix)})
    if memo is not None and fresh.height:
        memo.add(ctx, fresh)
    table = fresh if known is None else pl.concat([known, fresh])
    return s.replace_strict(table["v"], table["t"], return_dtype=pl.String)


def _siv_encrypt(values: pl.Series, siv: AESSIV, aad: list[bytes], prefix: str) -> pl.Series:
    encrypt = siv.encrypt
    toks = pl.lit(prefix) + (
        pl.col("b")
        .bin.encode("base64")
        .str.replace_all("+", "-", literal=True)
        .str.replace_all("/", "_", literal=True)
        .str.strip_chars_end("=")
    )
    # Slices bound the Python objects alive at once (a str and a bytes per value): a whole
    # column of tens of millions of ids as Python objects is several GiB.
    parts = []
    for start in range(0, max(values.len(), 1), _SIV_SLICE):
        chunk = values.slice(start, _SIV_SLICE).cast(pl.Binary).to_list()
        blobs = pl.Series([None if v is None else encrypt(v, aad) for v in chunk], dtype=pl.Binary)
        parts.append(pl.DataFrame({"b": blobs}).select(toks.alias("t"))["t"])
    return pl.concat(parts, rechunk=True)
