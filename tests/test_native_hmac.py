"""The native HMAC makes the same kv tokens as polars-hash and Python's hmac, byte for byte.

Whether the library is built must change speed only: every token published before it
existed keeps its value, so a vault filed by one path is read by the other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import subprocess
import sys

import numpy as np
import polars as pl
import polars_hash  # noqa: F401
import pyarrow as pa
import pytest

from engine.pseudonym import native_hmac
from engine.pseudonym.memo import TokenMemo, vault_tokens

needs_native = pytest.mark.skipif(
    not native_hmac.available() and os.environ.get("PGOV_REQUIRE_NATIVE") != "1",
    reason="native HMAC not built (make test requires it)",
)


def _corpus(seed: int, n: int) -> list[str | None]:
    rnd = random.Random(seed)
    edge: list[str | None] = [None, "", "a", "x" * 12, "y" * 13, "é" * 6, "€" * 5]
    edge += ["z" * k for k in (55, 56, 63, 64, 65, 119, 120, 200)]
    alphabet = "abcXYZ019 -+@.é€ü\t"
    for _ in range(n):
        if rnd.random() < 0.05:
            edge.append(None)
        else:
            edge.append("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 90))))
    return edge


def _reference(values: list[str | None], key: bytes) -> list[str | None]:
    return [
        None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32]
        for v in values
    ]


def test_the_library_is_built_where_make_test_runs() -> None:
    if os.environ.get("PGOV_REQUIRE_NATIVE") != "1":
        pytest.skip("only `make test` requires the native library")
    assert native_hmac.available(), f"{native_hmac.LIBRARY} missing: reinstall (pip install -e .)"


@needs_native
@pytest.mark.parametrize("key_len", [16, 64, 65, 100])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_tokens_equal_pythons_hmac_and_polars_hash(key_len: int, threads: int) -> None:
    key = bytes(random.Random(key_len).randrange(32, 127) for _ in range(key_len))
    values = _corpus(key_len, 3_000)
    series = pl.Series("v", values, dtype=pl.String)
    tokens, bodies = native_hmac.hmac_tokens(series, key, "kv7.", keyed=True, threads=threads)
    expected = _reference(values, key)
    assert tokens.name == "v"
    assert tokens.to_list() == [None if e is None else "kv7." + e for e in expected]
    assert bodies is not None and bodies.dtype == pl.UInt128
    assert bodies.to_list() == [None if e is None else int(e, 16) for e in expected]
    via_polars_hash = series.to_frame().select(
        pl.col("v").chash.hmac_sha256(key=key.decode()).str.slice(0, 32)
    )["v"]
    assert tokens.str.slice(4).to_list() == via_polars_hash.to_list()


@needs_native
@pytest.mark.parametrize("prefix", ["kv1.", "m1.", "", "kv123456789."])
def test_sliced_and_chunked_columns_keep_their_rows(prefix: str) -> None:
    key = b"k" * 64
    values = _corpus(5, 4_000)
    whole = pl.Series("v", values, dtype=pl.String)
    chunked = pl.concat([whole.slice(0, 1_234), whole.slice(1_234)], rechunk=False)
    assert chunked.n_chunks() == 2
    for s in (whole.slice(17, 3_000), chunked, whole.slice(4_000, 10)):
        tokens, _ = native_hmac.hmac_tokens(s, key, prefix, keyed=False)
        assert tokens.to_list() == [
            None if e is None else prefix + e for e in _reference(s.to_list(), key)
        ]
    empty, empty_x = native_hmac.hmac_tokens(whole.slice(0, 0), key, "kv1.", keyed=True)
    assert empty.len() == 0 and empty_x is not None and empty_x.len() == 0


@needs_native
def test_vault_tokens_and_their_pairs_are_the_same_without_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = pl.Series("customer_id", [f"C{i % 700}" for i in range(2_000)] + [None])
    key_hex = "ab" * 32

    def run() -> tuple[list[str | None], pl.DataFrame]:
        memo = TokenMemo()
        out = vault_tokens(ids, key_hex, "kv1.", memo, "customer_id", lambda p: p)
        ((_, pairs),) = memo.pending()
        return out.to_list(), pairs.sort("v")

    native_out, native_pairs = run()
    monkeypatch.setattr(native_hmac, "_LIB", None)
    assert not native_hmac.available()
    hashed_out, hashed_pairs = run()
    assert native_out == hashed_out
    assert native_pairs.equals(hashed_pairs)
    assert native_pairs.columns == ["v", "t", "x"]


@needs_native
def test_a_view_pointing_outside_its_buffers_is_refused() -> None:
    data = pa.py_buffer(b"0123456789abcdefghij")
    views = np.zeros(4, dtype=np.int32)
    views[0], views[2], views[3] = 15, 0, 10  # 15 bytes from offset 10 of a 20-byte buffer
    bad = pa.Array.from_buffers(pa.string_view(), 1, [None, pa.py_buffer(views), data])
    with pytest.raises(ValueError, match="malformed"):
        native_hmac._piece(bad, b"k", b"kv1.", False)


def test_pgov_native_off_falls_back_to_polars_hash() -> None:
    probe = "from engine.pseudonym import native_hmac; print(native_hmac.available())"
    env = {**os.environ, "PGOV_NATIVE": "off"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


@needs_native
def test_gathered_plaintexts_are_lengths_then_bytes_in_the_rows_order() -> None:
    values = [v for v in _corpus(9, 2_000) if v is not None]
    column = pl.Series("v", values, dtype=pl.String)
    gather = native_hmac.Gatherer(column.slice(3))  # an offset into the buffers
    rows = np.random.default_rng(4).permutation(len(values) - 3)[:700]
    picked = [values[3 + r].encode() for r in rows]
    want = np.array([len(p) for p in picked], dtype="<u4").tobytes() + b"".join(picked)
    assert gather.plain(rows).tobytes() == want
    assert gather.plain(rows[:0]).tobytes() == b""
    with pytest.raises(IndexError):
        gather.plain(np.array([len(values)]))
    with pytest.raises(ValueError, match="null"):
        native_hmac.Gatherer(pl.Series("v", ["a", None]))


@needs_native
@pytest.mark.parametrize("domain", ["marketing", "kyc"])
def test_pseudonymiser_tokens_are_the_same_with_and_without_the_library(
    monkeypatch: pytest.MonkeyPatch, domain: str
) -> None:
    from engine.pseudonym import Keyring, Pseudonymiser

    ring = Keyring.generate()
    values: list[str | None] = [" Ada@Example.COM ", None, "bo@x.org", "", "ada@example.com"]
    native = Pseudonymiser(ring).tokenise(values, "email", domain, "email")
    monkeypatch.setattr(native_hmac, "_LIB", None)
    fallback = Pseudonymiser(ring).tokenise(values, "email", domain, "email")
    assert native == fallback
    assert native[0] == native[4] and native[1] is None


@needs_native
def test_tokens_minted_inside_a_polars_plan_start_no_python_thread() -> None:
    # A Python thread started from Polars' worker thread registers that worker with Python
    # for good (threading.active_count() counts it); the audit log's parallel verification
    # is only taken in a single-threaded process.
    import threading

    from engine.pseudonym import Keyring, Pseudonymiser

    p = Pseudonymiser(Keyring.generate())
    frame = pl.DataFrame(
        {
            "email": [f"u{i}@x.org" for i in range(200_000)],
            "alt": [f"a{i}@y.org" for i in range(200_000)],
        }
    )
    before = threading.active_count()
    for domain in ("marketing", "kyc"):
        # Two token columns in one select: Polars evaluates them on its own worker threads.
        both = [p.token_expr("email", domain, "email"), p.token_expr("alt", domain, "email")]
        frame.select(both)
        frame.lazy().select(both).collect(engine="streaming")
    assert threading.active_count() == before
