"""A filing's new entries as segment rows (sealing.py): the order is token order whatever
the input order, repeats and tied top bits; the rows are those of sealing the sorted
entries in one go, across the runs a worker thread prepares; the segment is named by the
digest of its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

import engine.pseudonym.sealing as sealing
from engine.pseudonym import native_hmac
from engine.pseudonym.blocks import BlockCipher, row_blocks, with_ciphertexts
from engine.pseudonym.sealing import seal_new, token_order
from engine.pseudonym.vault_files import write_segment


def _entries(xs: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"v": [f"value-{x:x}" for x in xs], "x": pl.Series(xs, dtype=pl.UInt128)})


def _sorted_unique(df: pl.DataFrame) -> pl.DataFrame:
    """The reference: one row per token, in token order (the first of a repeated one)."""
    return df.unique(subset="x", keep="first", maintain_order=True).sort("x")


def test_token_order_when_top_bits_tie_and_tokens_repeat() -> None:
    same64 = 0x0123456789ABCDEF << 64
    same40 = 0xFEDCBA9876 << 88  # shares its top 40 bits only
    xs = [
        same64 | 9,
        same64 | 3,
        same40 | (5 << 60),
        same64 | 7,
        same64 | 3,  # a repeat: its first row is kept
        2**128 - 1,
        0,
        same40 | 1,
        same40 | (5 << 60),
    ]
    df = _entries(xs)
    order = token_order(df)
    assert df["x"].gather(order).to_list() == sorted(set(xs))
    assert order.tolist()[sorted(set(xs)).index(same64 | 3)] == 1
    assert token_order(df.reverse())[0] == len(xs) - 1 - 6  # 0 is first, whatever the input order


def test_token_order_of_many_random_tokens_with_repeats() -> None:
    rng = np.random.default_rng(7)
    hi = rng.integers(0, 2**20, 5000, dtype=np.uint64) << np.uint64(44)  # many tied tops
    lo = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    xs = [(int(h) << 64) | int(low) for h, low in zip(hi, lo, strict=True)]
    xs += xs[::7]  # repeats
    df = _entries(xs)
    order = token_order(df)
    assert df["x"].gather(order).to_list() == sorted(set(xs))
    assert token_order(df.head(0)).tolist() == []


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("run", [1, 3, 64])
def test_sealing_in_runs_gives_the_rows_of_sealing_the_sorted_entries(
    monkeypatch: pytest.MonkeyPatch, run: int, native: bool
) -> None:
    # With the native library the runs' plaintexts are gathered by it, else by Polars.
    if native and not native_hmac.available():
        pytest.skip("native library not built")
    if not native:
        monkeypatch.setattr(native_hmac, "_LIB", None)
    monkeypatch.setattr(sealing, "RUN", run)
    rng = np.random.default_rng(11)
    xs = [int(a) << 64 | int(b) for a, b in rng.integers(0, 2**62, (700, 2), dtype=np.uint64)]
    xs += xs[:50]  # repeated tokens, as a memo's raw table may hold
    df = _entries(xs).with_columns(
        # Values of every length, multi-byte UTF-8 and empty included.
        pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(pl.col("v") + "ÿ€" * 9)
        .when(pl.int_range(pl.len()) % 11 == 0)
        .then(pl.lit(""))
        .otherwise(pl.col("v"))
        .alias("v")
    )
    cipher = BlockCipher(AESSIV(bytes(range(64))), "customer_id", 1, size=16)
    got = seal_new(df, cipher)
    want = cipher.seal(_sorted_unique(df))
    assert got.height == len(set(xs)) and got["b"].max() == (len(set(xs)) - 1) // 16
    assert got.equals(want)


def test_sealing_nothing_gives_no_rows() -> None:
    cipher = BlockCipher(AESSIV(bytes(range(64))), "customer_id", 1)
    assert seal_new(_entries([]), cipher).height == 0


def test_a_segment_is_named_by_the_digest_of_its_bytes(tmp_path: Path) -> None:
    cipher = BlockCipher(AESSIV(bytes(range(64))), "customer_id", 1, size=8)
    rows = seal_new(_entries([int.from_bytes(os.urandom(16), "big") for _ in range(100)]), cipher)
    name, digest = write_segment(tmp_path, rows)
    body = (tmp_path / name).read_bytes()
    assert hashlib.sha256(body).hexdigest() == digest and name == f"seg-{digest[:24]}.parquet"
    assert pl.read_parquet(tmp_path / name).equals(rows)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


def test_ciphertext_column_holds_each_block_on_its_first_row_only() -> None:
    x = pl.Series("x", range(10), dtype=pl.UInt128)
    sealed = [bytes([i]) * (17 + 5 * i) for i in range(4)]  # AES-SIV output: > 16 bytes
    rows = with_ciphertexts(row_blocks(x, 3), sealed)
    assert rows.columns == ["x", "b", "c"] and rows.schema["c"] == pl.Binary
    assert rows["b"].to_list() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert rows["c"].to_list() == [
        sealed[0], None, None, sealed[1], None, None, sealed[2], None, None, sealed[3]
    ]  # fmt: skip
    with pytest.raises(ValueError, match="missing"):
        with_ciphertexts(row_blocks(x, 3), sealed[:3])
    with pytest.raises(ValueError, match="impossible length"):
        with_ciphertexts(row_blocks(x, 3), [b"short", *sealed[1:]])


def _random_bodies(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    xs = [int(a) << 64 | int(b) for a, b in rng.integers(0, 2**63, (n, 2), dtype=np.uint64)]
    xs[10:20] = [xs[0] + i for i in range(10)]  # top bits tie
    return xs + xs[:30]  # repeats


def test_token_order_reading_the_bodies_in_place_is_the_order_through_polars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df = _entries(_random_bodies(2_000, seed=5))
    assert sealing.u128_view(df["x"]) is not None  # the in-place path is the one taken
    in_place = token_order(df)
    two_chunks = pl.concat([df.head(700), df.tail(df.height - 700)], rechunk=False)
    assert two_chunks["x"].n_chunks() == 2 and sealing.u128_view(two_chunks["x"]) is None
    assert np.array_equal(token_order(two_chunks), in_place)  # through Polars
    monkeypatch.setattr(sealing, "u128_view", lambda x: None)
    assert np.array_equal(token_order(df), in_place)


def test_a_bodies_view_is_handed_out_only_when_it_reads_back() -> None:
    from engine.pseudonym.blocks import u128_view

    x = pl.Series("x", [1, 2**100 + 5, 2**128 - 1], dtype=pl.UInt128)
    view = u128_view(x)
    assert view is not None and not view.flags.writeable
    assert [int.from_bytes(row.tobytes(), "little") for row in view] == x.to_list()
    assert u128_view(x.head(0)) is None
    assert u128_view(pl.concat([x, x], rechunk=False)) is None  # two buffers
    assert u128_view(pl.Series("x", [1, None], dtype=pl.UInt128)) is None
    assert u128_view(x.cast(pl.UInt64, wrap_numerical=True)) is None
