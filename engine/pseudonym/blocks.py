"""Sealed blocks of the token vault (format pgov-vault/2): one AES-SIV call per block of
entries instead of one per entry.

A block is up to BLOCK entries of one store, consecutive in token order:

    plaintext        the n values' UTF-8 byte lengths (uint32, little-endian), then the n
                     values' bytes, both in token order
    ciphertext       AES-SIV under the store's vault key (HKDF `kyc_vault|<column>|<version>`,
                     the key per-entry ciphertexts use), associated data the four components
                     "kyc_vault_block", <column>, <version>, sha256(the n tokens' 128-bit
                     bodies, 16 bytes big-endian each, in token order)

So a block opens only for its column, key version and exact list of tokens: a block moved
under other tokens, a token moved into another block, two blocks' ciphertexts swapped or a
flipped byte all fail authentication. The components are passed to AES-SIV as a vector
(S2V keeps them apart), so no choice of column name makes two different lists collide, and
the label keeps a block from ever opening as a per-entry ciphertext or the reverse.

Sealing is vectorised but for one library call per block: the lengths and bytes come out of
the Arrow buffers of the sorted values, the token digests out of the integer bodies. Holds
cleartext values only for the call; nothing here logs or raises with a value or a token.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

# Entries per block. Reading one token decrypts its whole block (~16k values, a few hundred
# KiB: under a millisecond); sealing costs one call per block, so past a few thousand
# entries the per-call overhead no longer matters (measured in docs/keys.md).
BLOCK = 16_384
LABEL = b"kyc_vault_block"
_TWO64 = 2**64
SEALED = {"x": pl.UInt128, "b": pl.UInt32, "c": pl.Binary}


@dataclass(frozen=True, eq=False)
class Block:
    """One sealed block as read from a segment: its tokens' bodies in token order, and the
    ciphertext (empty when the segment does not hold exactly one for the block, which then
    fails authentication like any other alteration)."""

    x: pl.Series
    cipher: bytes


def u128_view(x: pl.Series) -> np.ndarray | None:
    """A read-only (n, 16) uint8 view of a UInt128 Series' values as Polars holds them
    (16 bytes little-endian each), or None when they are not one buffer Polars hands out.

    NumPy work on the view allocates only its own result: the same figures through Polars
    expressions (a 128-bit division, casts, an integer range) allocate a column per step,
    and at 10M rows those columns' page faults were a third of sealing.token_order's time
    (docs/performance.md, "The fourteenth session"). The address comes from Polars'
    `as_single_ptr`, an internal call, so it is checked (the first and last rows must read
    back) and anything unexpected means None, never a guess. The view borrows x's memory:
    use it only while x is alive, and never return it (copy what outlives the call)."""
    n = x.len()
    if x.dtype != pl.UInt128 or n == 0 or x.n_chunks() != 1 or x.null_count():
        return None
    try:
        address = int(x._s.as_single_ptr())
    except Exception:  # an internal call: any failure means "not available"
        return None
    if address == 0:
        return None
    raw = (ctypes.c_uint8 * (16 * n)).from_address(address)
    view = np.frombuffer(memoryview(raw), dtype=np.uint8).reshape(n, 16)
    ends = [int.from_bytes(view[i].tobytes(), "little") for i in (0, n - 1)]
    if ends != [x[0], x[n - 1]]:
        return None
    view.flags.writeable = False
    return view


def x_bytes(x: pl.Series) -> np.ndarray:
    """128-bit token bodies as 16 bytes big-endian each, in order (what a block's
    associated data digests), as a flat uint8 array: slices of it hash without a copy."""
    two64 = pl.lit(_TWO64, dtype=pl.UInt128)
    halves = (
        x.rename("x")
        .to_frame()
        .select(
            (pl.col("x") // two64).cast(pl.UInt64).alias("hi"),
            pl.col("x").cast(pl.UInt64, wrap_numerical=True).alias("lo"),
        )
    )
    out = np.empty((x.len(), 2), dtype=">u8")
    out[:, 0] = halves["hi"].to_numpy()
    out[:, 1] = halves["lo"].to_numpy()
    return out.reshape(-1).view(np.uint8)


def tokens_from_x(x: pl.Series, prefix: str) -> pl.Series:
    """kv tokens from their bodies: prefix + 32 lower-case hex digits (what a v2 segment
    leaves out: within one store the token is its prefix and its body)."""
    import pyarrow as pa

    raw = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), x.len(), [None, pa.py_buffer(x_bytes(x))]
    )
    hexed = pl.Series("t", raw, dtype=pl.Binary).bin.encode("hex")
    return (prefix + hexed).rename("t")


def utf8_buffers(values: pl.Series) -> tuple[np.ndarray, memoryview]:
    """Offsets and data of a String column's UTF-8 bytes (one contiguous copy, made by
    Polars itself: the oldest Arrow layout is a large_string, no string views)."""
    arr = values.to_arrow(compat_level=pl.CompatLevel.oldest())
    if hasattr(arr, "combine_chunks"):
        arr = arr.combine_chunks()
    if str(arr.type) == "string_view":
        import pyarrow as pa

        arr = arr.cast(pa.large_string())
    _, offsets, data = arr.buffers()
    wide = np.int64 if str(arr.type) == "large_string" else np.int32
    offs = np.frombuffer(offsets, dtype=wide)[arr.offset : arr.offset + len(arr) + 1]
    return offs.astype(np.int64), memoryview(data) if data is not None else memoryview(b"")


class BlockCipher:
    """Seals and opens the blocks of one store (column, key version)."""

    def __init__(self, siv: AESSIV, column: str, version: int, size: int | None = None) -> None:
        self._siv = siv
        self._head = [LABEL, column.encode("utf-8"), str(int(version)).encode("ascii")]
        self.size = size or BLOCK

    def __repr__(self) -> str:
        return f"BlockCipher(size={self.size})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("BlockCipher holds key material and cannot be serialised")

    def _aad(self, xb: np.ndarray) -> list[bytes]:
        return [*self._head, hashlib.sha256(xb.data).digest()]

    def encrypt(self, plain: bytes | memoryview, xb: np.ndarray) -> bytes:
        """One block's ciphertext: its plaintext (lengths, then bytes) under the associated
        data of its tokens' bodies (x_bytes, in token order)."""
        return self._siv.encrypt(plain, self._aad(xb))

    def seal(self, entries: pl.DataFrame) -> pl.DataFrame:
        """Entries (v: String, x: UInt128), sorted by x and unique -> segment rows (x, b, c):
        block b = row // size; c the block's ciphertext on its first (smallest) row, null on
        the others. Equal entries give equal rows, byte for byte."""
        n = entries.height
        if n == 0:
            return pl.DataFrame(schema=SEALED)
        offs, data = utf8_buffers(entries["v"].cast(pl.String))
        lens = np.diff(offs).astype("<u4")
        xb = x_bytes(entries["x"])
        size = self.size
        sealed = []
        for a in range(0, n, size):
            b = min(a + size, n)
            plain = lens[a:b].tobytes() + data[offs[a] : offs[b]]
            sealed.append(self.encrypt(plain, xb[16 * a : 16 * b]))
        return sealed_rows(entries["x"], sealed, size)

    def open(self, block: Block) -> list[bytes]:
        """The block's values, aligned with block.x. Raises InvalidTag (altered, moved or
        foreign block) or ValueError (a malformed plaintext, which authentication makes
        impossible short of a bug)."""
        plain = self._siv.decrypt(block.cipher, self._aad(x_bytes(block.x)))
        n = block.x.len()
        lens = np.frombuffer(plain, dtype="<u4", count=n).astype(np.int64)
        ends = 4 * n + np.cumsum(lens)
        if n and int(ends[-1]) != len(plain):
            raise ValueError("malformed vault block")
        starts = ends - lens
        return [plain[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def sealed_rows(x: pl.Series, sealed: list[bytes], size: int) -> pl.DataFrame:
    """Segment rows (x, b, c) of entries sorted by x whose blocks of `size` were sealed
    into `sealed`, in order: block b = row // size, its ciphertext on its first row."""
    return with_ciphertexts(row_blocks(x, size), sealed)


def row_blocks(x: pl.Series, size: int) -> pl.DataFrame:
    """x, b (the row's block) and `first` (the block's number on its first row, else
    null): all of a segment's rows but the ciphertexts, known before any block is sealed."""
    row = pl.int_range(0, x.len(), dtype=pl.UInt32)
    return pl.select(
        x,
        (row // size).alias("b"),
        pl.when(row % size == 0).then(row // size).alias("first"),
    )


def with_ciphertexts(skeleton: pl.DataFrame, sealed: list[bytes]) -> pl.DataFrame:
    """row_blocks + the blocks' ciphertexts in order -> segment rows (x, b, c).

    `c` is built as an Arrow binary-view column over the ciphertexts as they are: a view on
    each block's first row pointing into that block's own buffer, every other row null. No
    ciphertext byte is copied (a gather with a mostly-null index cost ~0.6 s per 10M rows)."""
    import pyarrow as pa

    n = skeleton.height
    first = skeleton["first"]
    rows = np.flatnonzero(first.is_not_null().to_numpy())
    blob = first.gather(rows).to_numpy().astype(np.int64)
    lens = np.array([len(c) for c in sealed], dtype=np.int64)
    # Arrow keeps values of up to 12 bytes inside the view; a ciphertext is never that short
    # (AES-SIV adds a 16-byte tag), so every view here points into a buffer.
    if len(rows) and (blob.max() >= len(sealed) or not 12 < lens.min() < 2**31):
        raise ValueError("a block's ciphertext is missing or of an impossible length")
    views = np.zeros((n, 4), dtype="<i4")
    views[rows, 0] = lens[blob]
    heads = b"".join(bytes(c[:4]) for c in sealed)  # each view repeats its value's first 4 bytes
    views[rows, 1] = np.frombuffer(heads, dtype="<i4")[blob] if heads else 0
    views[rows, 2] = blob
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    validity = pa.py_buffer(np.packbits(mask, bitorder="little"))
    buffers = [validity, pa.py_buffer(views), *(pa.py_buffer(c) for c in sealed)]
    arr = pa.Array.from_buffers(pa.binary_view(), n, buffers, null_count=n - len(rows))
    c = pl.Series("c", arr)
    return skeleton.select("x", "b").with_columns(c)
