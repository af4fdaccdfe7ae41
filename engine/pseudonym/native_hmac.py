"""The native HMAC: keyed tokens of a whole string column at C speed, when it is built;
and, from the same library, vault block plaintexts gathered in one pass (`Gatherer`).

`native/hmac_tokens.c` computes HMAC-SHA256 (OpenSSL's SHA-256) with the key's pads hashed
once, where polars-hash re-derives them and formats 64 hex digits for every value: a value
costs about a third as much. The tokens are the same bytes either way (the test suite
compares them value by value), so whether the library is there changes speed, never a
token: without it (no compiler or OpenSSL headers when the package was installed, or
`PGOV_NATIVE=off`) `available()` is False and callers use polars-hash.

The library is built by the package's build hook (hatch_build.py) at install. It is loaded
through ctypes, which releases the GIL for each call; the library splits a column between
POSIX threads of its own, so no Python thread is started here (one started from inside a
Polars UDF registers Polars' worker thread with Python for good, and `threading` then
counts it). Nothing here logs, keeps or copies key material beyond the call.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

LIBRARY = Path(__file__).with_name("native") / "libpgovhmac.so"
BODY_BYTES = 16  # the token body: 128 bits of the MAC, 32 hex digits
# Rows per call: a piece's token buffer is addressed by 32-bit offsets (2 GiB).
_MAX_PIECE = 16_777_216
_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_I32 = ctypes.c_int32


def _load() -> ctypes.CDLL | None:
    if os.environ.get("PGOV_NATIVE", "").lower() in {"off", "0", "no", "false"}:
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:
        return None
    fn = lib.pgov_hmac_tokens
    fn.restype = ctypes.c_int
    fn.argtypes = [_P, _I64, _I64, _P, _P, _P, _I64, _P, _I64, _P, ctypes.c_int32, _P, _P, _P, _I32]
    gather = lib.pgov_gather_plain
    gather.restype = _I64
    gather.argtypes = [_P, _I64, _P, _P, _I64, _P, _I64, _P, _I64]
    return lib


_LIB = _load()


def available() -> bool:
    """Whether the native library is loaded (else callers hash with polars-hash)."""
    return _LIB is not None


def hmac_tokens(
    values: pl.Series, key: bytes, prefix: str, *, keyed: bool, threads: int = 2
) -> tuple[pl.Series, pl.Series | None]:
    """Tokens `prefix + hex(HMAC-SHA256(key, value)[:16])` of a String Series (nulls stay
    null), in row order, and with `keyed` the bodies as UInt128 (big-endian: integer order
    is hex order). Raises RuntimeError when the library is not loaded."""
    if _LIB is None:
        raise RuntimeError("the native HMAC library is not loaded")
    arrow = values.cast(pl.String).to_arrow(compat_level=pl.CompatLevel.newest())
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    pieces = [c.slice(start, _MAX_PIECE) for c in chunks for start in range(0, len(c), _MAX_PIECE)]
    raw = prefix.encode()
    # One call per piece: the library splits it between its own threads.
    done = [_piece(p, key, raw, keyed, threads) for p in pieces]
    name = values.name
    if not done:
        empty = pl.Series(name, [], dtype=pl.String)
        return empty, (pl.Series("x", [], dtype=pl.UInt128) if keyed else None)
    tokens = pl.concat([pl.Series(name, t) for t, _ in done], rechunk=False)
    if not keyed:
        return tokens, None
    bodies = pl.concat([b for _, b in done if b is not None], rechunk=False)
    return tokens, bodies


def _piece(
    arr: pa.Array, key: bytes, prefix: bytes, keyed: bool, threads: int = 1
) -> tuple[pa.Array, pl.Series | None]:
    assert _LIB is not None
    n = len(arr)
    width = len(prefix) + 2 * BODY_BYTES
    validity, views, *data = arr.buffers()
    addresses = np.array([b.address for b in data], dtype=np.uint64)
    sizes = np.array([b.size for b in data], dtype=np.int64)
    out_views = np.empty(16 * n, dtype=np.uint8)
    out_data = np.empty(width * n, dtype=np.uint8)
    out_body = np.empty(BODY_BYTES * n, dtype=np.uint8) if keyed else None
    has_nulls = arr.null_count > 0
    rc = _LIB.pgov_hmac_tokens(
        key,
        len(key),
        n,
        views.address + 16 * arr.offset,
        addresses.ctypes.data,
        sizes.ctypes.data,
        len(data),
        validity.address if has_nulls and validity is not None else None,
        arr.offset,
        prefix,
        len(prefix),
        out_views.ctypes.data,
        out_data.ctypes.data,
        out_body.ctypes.data if out_body is not None else None,
        threads,
    )
    if rc != 0:
        raise ValueError("malformed string column handed to the native HMAC")
    mask = pc.is_valid(arr).buffers()[1] if has_nulls else None
    tokens = pa.Array.from_buffers(
        pa.string_view(),
        n,
        [mask, pa.py_buffer(out_views), pa.py_buffer(out_data)],
        null_count=arr.null_count,
    )
    if out_body is None:
        return tokens, None
    return tokens, _bodies(out_body, n, mask)


def _bodies(raw: np.ndarray, n: int, mask: pa.Buffer | None) -> pl.Series:
    """16 bytes a row (big-endian) -> UInt128. Through a binary-view column whose views
    point into `raw` (Polars takes it without a copy; a fixed-size binary column is
    converted to views first, twice the time), then reinterpreted."""
    views = np.empty((n, 4), dtype="<i4")
    views[:, 0] = BODY_BYTES
    views[:, 1] = raw.view("<i4").reshape(n, BODY_BYTES // 4)[:, 0]  # Arrow's 4-byte prefix
    views[:, 2] = 0
    views[:, 3] = np.arange(0, BODY_BYTES * n, BODY_BYTES, dtype=np.int64)
    arr = pa.Array.from_buffers(pa.binary_view(), n, [mask, pa.py_buffer(views), pa.py_buffer(raw)])
    return pl.Series("x", arr).bin.reinterpret(dtype=pl.UInt128, endianness="big")


class Gatherer:
    """Vault block plaintexts (blocks.py: the values' UTF-8 lengths as uint32 little-endian,
    then their bytes) of rows of one String column without nulls, gathered by the native
    library straight from Polars' string views, reads prefetched (the rows come in token
    order, at random in the column). Holds the column while it is used."""

    def __init__(self, values: pl.Series) -> None:
        if _LIB is None:
            raise RuntimeError("the native library is not loaded")
        if values.null_count():
            raise ValueError("vault values cannot be null")
        values = values.cast(pl.String).rechunk()
        arrow = values.to_arrow(compat_level=pl.CompatLevel.newest())
        arr = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        _, views, *data = arr.buffers()
        self._keep = (values, arr)
        self._n = len(arr)
        self._views = (views.address if views is not None else 0) + 16 * arr.offset
        self._addresses = np.array([b.address for b in data], dtype=np.uint64)
        self._sizes = np.array([b.size for b in data], dtype=np.int64)
        self._lens = values.str.len_bytes().to_numpy().astype(np.int64)

    def plain(self, rows: np.ndarray) -> np.ndarray:
        """The plaintext of the values at `rows` (row numbers), in that order."""
        assert _LIB is not None
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self._n):
            raise IndexError("row out of range")
        size = 4 * len(rows) + int(self._lens[rows].sum())
        out = np.empty(size, dtype=np.uint8)
        got = _LIB.pgov_gather_plain(
            self._views,
            self._n,
            self._addresses.ctypes.data,
            self._sizes.ctypes.data,
            len(self._addresses),
            rows.ctypes.data,
            len(rows),
            out.ctypes.data,
            size,
        )
        if got != size:
            raise ValueError("malformed string column handed to the native gather")
        return out
