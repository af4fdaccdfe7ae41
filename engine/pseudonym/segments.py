"""Vault segment files, in both formats, read as one shape.

    pgov-vault/1   columns t (token), c (AES-SIV of the value, associated data
                   `kyc_vault|<column>|<version>|<t>`), x (t's 128-bit body): an entry a row
    pgov-vault/2   columns x, b (block number), c: each block's ciphertext (blocks.py) on its
                   first row, null on the others; a row with b null carries its own per-entry
                   ciphertext (a v1 entry a merge or an erasure carried over, never
                   re-encrypted). No token column: within a store a token is the store's
                   prefix `kv<version>.` and its body x, so t is rebuilt when asked for.

A segment's format is its columns (a v2 file has `b`). Every segment written since v2 is
v2; v1 files are read, merged and erased as they are. Nothing here logs, and no error
names a token or a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from cryptography.exceptions import InvalidTag

from engine.errors import KeyMaterialError, VerificationFailed
from engine.pseudonym.blocks import SEALED, Block, BlockCipher, tokens_from_x

Sealed = bytes | Block


def blocked(path: Path) -> bool:
    return "b" in pl.read_parquet_schema(path)


def read_rows(path: Path, columns: Sequence[str], prefix: str) -> pl.DataFrame:
    """Columns (any of t, c, x, b) of one segment, whatever its format."""
    if blocked(path):
        stored = [c for c in ("x", "b", "c") if c in columns or (c == "x" and "t" in columns)]
        df = pl.read_parquet(path, columns=stored)
        if "t" in columns:
            df = df.with_columns(tokens_from_x(df["x"], prefix))
    else:
        # A v1 file of the vault's first hours has no x: rebuilt from t.
        has_x = "x" in pl.read_parquet_schema(path)
        wants_t = "t" in columns or ("x" in columns and not has_x)
        stored = [c for c in ("t", "c") if c in columns or (c == "t" and wants_t)]
        df = pl.read_parquet(path, columns=stored + (["x"] if "x" in columns and has_x else []))
        if "x" in columns and not has_x:
            body = pl.col("t").str.slice(-32, 32)
            df = df.with_columns(body.str.to_integer(base=16, dtype=pl.UInt128).alias("x"))
        if "b" in columns:
            df = df.with_columns(pl.lit(None, dtype=pl.UInt32).alias("b"))
    return df.select(columns)


def rows_v2(path: Path) -> pl.DataFrame:
    """A segment as v2 rows (x, b, c), a v1 file's entries as per-entry rows, ready to be
    written again (a merge or an erasure)."""
    rows = read_rows(path, ("x", "b", "c"), "").cast(SEALED)  # type: ignore[arg-type]
    return rows.with_columns(_fresh(rows["c"]))


def _fresh(c: pl.Series) -> pl.Series:
    """The same values in a column of its own. Written back to Parquet as read (Polars
    2.1), a column of block ciphertexts, a few hundred KB each on one row in 16,384, made
    the writer allocate far more than the data: 22.8 GiB for a merge of 10M kyc_aml
    entries, killed by the kernel (reproduced with 2M rows in eight segments, not with a
    freshly built column). Built anew from its non-null cells it writes in proportion."""
    filled = c.is_not_null().arg_true()
    values = pl.Series(c.name, c.gather(filled).to_list(), dtype=pl.Binary)
    return (
        pl.Series(c.name, [None], dtype=pl.Binary)
        .new_from_index(0, c.len())
        .scatter(filled, values)
    )


def _blocks(rows: pl.DataFrame) -> dict[int, Block]:
    """Block number -> Block from v2 rows holding whole blocks."""
    out = {}
    for (b,), part in rows.filter(pl.col("b").is_not_null()).group_by("b"):
        sealed = part["c"].drop_nulls()
        cipher = bytes(sealed[0]) if sealed.len() == 1 else b""
        out[int(b)] = Block(part["x"].sort(), cipher)
    return out


def find(path: Path, wanted: pl.DataFrame) -> dict[str, Sealed]:
    """token -> its sealed entry (bytes, or the Block holding it) for the wanted tokens
    (t, x) this segment holds."""
    lf = pl.scan_parquet(path)
    if not blocked(path):
        hit = lf.filter(pl.col("t").is_in(wanted["t"].implode())).select("t", "c").collect()
        return {str(t): bytes(c) for t, c in zip(hit["t"], hit["c"], strict=True)}
    hit = lf.filter(pl.col("x").is_in(wanted["x"].implode())).select("x", "b", "c").collect()
    if hit.height == 0:
        return {}
    token = dict(zip(wanted["x"].to_list(), wanted["t"].to_list(), strict=True))
    out: dict[str, Sealed] = {}
    for x, c in hit.filter(pl.col("b").is_null()).select("x", "c").iter_rows():
        out[token[x]] = bytes(c)
    needed = hit["b"].drop_nulls().unique()
    if needed.len():
        rows = lf.filter(pl.col("b").is_in(needed.implode())).select("x", "b", "c").collect()
        blocks = _blocks(rows)
        for x, b in hit.filter(pl.col("b").is_not_null()).select("x", "b").iter_rows():
            out[token[x]] = blocks[int(b)]
    return out


def erase_rows(
    rows: pl.DataFrame, wanted: pl.Series, cipher: BlockCipher | None
) -> tuple[pl.DataFrame, int]:
    """v2 rows without the entries whose body is in `wanted` (x), and how many went. A
    per-entry row is dropped; a block holding one is opened and sealed again without it
    (same block number), so the erased value is in no ciphertext left."""
    hit = pl.col("x").is_in(wanted.implode())
    gone = rows.filter(hit)
    if gone.height == 0:
        return rows, 0
    touched = gone["b"].drop_nulls().unique()
    if touched.len() == 0:
        return rows.filter(~hit), gone.height
    if cipher is None:
        raise KeyMaterialError("erasing inside a sealed vault block needs the vault key")
    inside = pl.col("b").is_in(touched.implode())
    parts = [rows.filter(~hit & ~inside.fill_null(False))]
    for b, block in sorted(_blocks(rows.filter(inside)).items()):
        try:
            values = cipher.open(block)
        except (InvalidTag, ValueError):
            raise VerificationFailed(
                "a vault block failed authentication: erasure refused (altered vault)"
            ) from None
        keep = (~block.x.is_in(wanted.implode())).to_list()
        if any(keep):
            kept = [v for v, k in zip(values, keep, strict=True) if k]
            entries = pl.DataFrame(
                {"v": pl.Series(kept, dtype=pl.Binary).cast(pl.String), "x": block.x.filter(keep)}
            )
            parts.append(cipher.seal(entries).with_columns(pl.lit(b, dtype=pl.UInt32).alias("b")))
    return pl.concat(parts).sort("x"), gone.height
