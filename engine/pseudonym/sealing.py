"""A store's new entries as one segment's rows: token order, then blocks sealed while the
next ones are being gathered.

The first filing of a refresh seals every value it tokenised (10M at the limit). Its rows are
exactly those of one sort by token and one `BlockCipher.seal` of the result (block b is rows
[b * size, (b + 1) * size) of the new entries in token order), so the segment is the same,
byte for byte; what differs is how the work is laid out on the machine:

- the order is one sort of 64-bit integers (the token's top bits above the row number), not
  of 128-bit ones, with the few rows whose top bits tie ordered by their full body after;
- the blocks are sealed RUN at a time: while this thread seals a run (AES-SIV holds the GIL),
  two worker threads gather the next runs' values in token order as block plaintexts (the
  native library, reads prefetched; else Polars), and their token bodies (both release
  the GIL); runs are sealed in run order whichever worker made them.

Holds cleartext values only while a run is sealed; nothing here logs or raises with a value.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import polars as pl

from engine.pseudonym import native_hmac
from engine.pseudonym.blocks import (
    SEALED,
    BlockCipher,
    row_blocks,
    u128_view,
    utf8_buffers,
    with_ciphertexts,
    x_bytes,
)
from engine.pseudonym.native_hmac import Gatherer

# Blocks per run handed from a gathering thread to the sealing one: a few MiB of values,
# enough that the per-run overhead is noise, small enough that the first run (sealed with
# nothing to overlap) is a small share of a filing of millions.
RUN = 16
# Worker threads gathering runs, and runs in flight (prepared or being prepared) at most.
PREPARERS = 2
AHEAD = 3
_TWO64 = 2**64


def token_order(keyed: pl.DataFrame) -> np.ndarray:
    """Row numbers of `keyed` (x: the tokens' UInt128 bodies) in token order, one per token
    (the first row of a token that occurs twice).

    One sort of 64-bit integers, each the top (64 - r) bits of x above the row number (r
    bits, 2^r >= the rows): that orders the rows by token except among rows whose top bits
    are equal (a repeated token, or tens of pairs of distinct tokens at 10M rows, which share
    their top 40 bits); those rows alone are then sorted by their full body, and repeats
    dropped. Sorting 64-bit integers costs under a third of sorting the 128-bit bodies."""
    n = keyed.height
    if n == 0:
        return np.empty(0, dtype=np.int64)
    r = max(1, (n - 1).bit_length())
    view = u128_view(keyed["x"])
    if view is not None:
        # The top 64 bits are bytes 8-15 of each little-endian body: read in place.
        hi = view[:, 8:].copy().view("<u8").reshape(-1)
        hi >>= np.uint64(r)
        hi <<= np.uint64(r)
        hi |= np.arange(n, dtype=np.uint64)
        del view
        k = pl.Series("k", hi).sort().to_numpy()
    else:
        step = pl.lit(1 << r, dtype=pl.UInt64)
        top = (pl.col("x") // pl.lit(_TWO64, dtype=pl.UInt128)).cast(pl.UInt64) // step
        key = top * step + pl.int_range(0, pl.len(), dtype=pl.UInt64)
        # An eager sort: Polars sorts one Series on every core (in a lazy select, on one).
        k = keyed.select(key.alias("k"))["k"].sort().to_numpy()
    idx = (k & np.uint64((1 << r) - 1)).astype(np.int64)
    high = k >> np.uint64(r)
    eq = high[1:] == high[:-1]
    if not eq.any():
        return idx
    tie = np.zeros(n, dtype=bool)
    tie[1:] = eq
    tie[:-1] |= eq
    pos = np.flatnonzero(tie)
    # Within the tied rows, sorting by body orders each run of equal top bits (the runs are
    # already in order of their top bits, which the body's order keeps).
    sub = (
        pl.DataFrame({"i": idx[pos]})
        .with_columns(x=keyed["x"].gather(idx[pos]))
        .sort("x", "i")
        .with_columns(dup=pl.col("x").eq_missing(pl.col("x").shift(1)))
    )
    idx[pos] = sub["i"].to_numpy()
    dup = sub["dup"].to_numpy()
    return np.delete(idx, pos[dup]) if dup.any() else idx


Prepared = tuple[pl.Series, list[bytes | memoryview]]


def _prepare(keyed: pl.DataFrame, rows: np.ndarray, size: int, gather: Gatherer | None) -> Prepared:
    """One run, in a worker thread: its bodies `x` in token order and its blocks'
    plaintexts (lengths, then bytes). The values are read at random (token order is not
    row order), the larger half of a filing's work: by the native library when it is built
    (one pass, reads prefetched), else by Polars (a gather, then one contiguous copy out of
    the string views). Both release the GIL, so this overlaps the sealing of the run
    before."""
    if gather is not None:
        x = keyed.get_column("x").gather(pl.Series("i", rows))
        return x, [gather.plain(rows[a : a + size]).data for a in range(0, len(rows), size)]
    part = keyed[pl.Series("i", rows)]
    offs, data = utf8_buffers(part["v"])
    lens = np.diff(offs).astype("<u4")
    plains: list[bytes | memoryview] = []
    for a in range(0, len(lens), size):
        b = min(a + size, len(lens))
        plains.append(lens[a:b].tobytes() + data[offs[a] : offs[b]])
    return part["x"], plains


def seal_new(entries: pl.DataFrame, cipher: BlockCipher) -> pl.DataFrame:
    """Entries (v: String, x: UInt128), in any order, tokens possibly repeated -> segment
    rows (x, b, c) of the distinct tokens, as `cipher.seal` of them sorted by x would give."""
    keyed = entries.select(pl.col("v").cast(pl.String), "x").rechunk()
    order = token_order(keyed)
    if len(order) == 0:
        return pl.DataFrame(schema=SEALED)
    size = cipher.size
    span = size * RUN
    gather = Gatherer(keyed.get_column("v")) if native_hmac.available() else None
    starts = iter(range(0, len(order), span))
    xs: list[pl.Series] = []  # the runs' bodies, in run order
    sealed: list[bytes] = []
    # Two workers gather (GIL-free) while this thread seals: one worker left the gathering
    # the longest part of the loop (10M values: 1.1 s of gathering against 0.64 s of
    # sealing and body bytes here).
    with ThreadPoolExecutor(max_workers=PREPARERS, thread_name_prefix="vault-seal") as pool:

        def submit(a0: int) -> Future[Prepared]:
            return pool.submit(_prepare, keyed, order[a0 : a0 + span], size, gather)

        # A few runs prepared ahead at most: cleartext copies of a few MiB, not of the filing.
        runs = deque(submit(a0) for a0 in itertools.islice(starts, AHEAD))
        skeleton: Future[pl.DataFrame] | None = None
        while runs:
            x, plains = runs.popleft().result()  # in run order, whichever worker made it
            xs.append(x)
            nxt = next(starts, None)
            if nxt is not None:
                runs.append(submit(nxt))
            elif skeleton is None and not runs:
                # After the last run, the rows but their ciphertexts.
                skeleton = pool.submit(lambda: row_blocks(pl.concat(xs, rechunk=True), size))
            xb = x_bytes(x)
            for k, plain in enumerate(plains):
                sealed.append(cipher.encrypt(plain, xb[16 * k * size : 16 * (k + 1) * size]))
            del plains
        assert skeleton is not None
        return with_ciphertexts(skeleton.result(), sealed)
