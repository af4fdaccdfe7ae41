"""Sealed blocks (pgov-vault/2): many entries per AES-SIV call, each block bound to its
column, key version and exact list of tokens; v1 stores (one ciphertext per entry) stay
readable, erasable and re-identifiable, alone or mixed with v2 segments."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from vault_v1_support import write_v1_store

import engine.pseudonym.blocks as blocks_mod
from engine.errors import KeyMaterialError
from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.blocks import Block
from engine.pseudonym.keyring import KeyVersion
from engine.pseudonym.segments import rows_v2
from engine.pseudonym.vault import MAX_SEGMENTS, Vault

COL = "customer_id"


def _ring() -> Keyring:
    return Keyring({1: KeyVersion(1, "2026-01-01", bytes(range(32)))})


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"CUST-{i:07d}" for i in range(start, start + n)]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many blocks from a few hundred values (the real size is 16,384).
    monkeypatch.setattr(blocks_mod, "BLOCK", 64)


def _file(vault: Vault, values: list[str]) -> list[str]:
    p = Pseudonymiser(_ring(), vault=vault)
    toks = p.tokenise(list(values), COL, "kyc")  # type: ignore[arg-type]
    p.flush()
    return [t for t in toks if t]


def _segment(vault: Vault) -> Path:
    [seg] = vault.directory(COL, 1).glob("seg-*.parquet")
    return seg


def _reveal(vault: Vault, toks: list[str]) -> list[str]:
    return Pseudonymiser(_ring(), vault=vault).reveal(toks, COL)


def test_round_trip_across_many_blocks(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    values = [*_ids(1000), "ünïcode-ÿ@example.com", "x"]
    toks = _file(vault, values)
    rows = pl.read_parquet(_segment(vault))
    assert rows.columns == ["x", "b", "c"]  # no token and no value column on disk
    assert rows["b"].n_unique() == 16 and rows["c"].drop_nulls().len() == 16  # 1002 / 64
    assert rows["x"].is_sorted() and rows.height == len(set(toks))
    assert _reveal(vault, toks) == values
    assert _reveal(Vault(tmp_path), toks[::-37]) == values[::-37]
    manifest = json.loads((vault.directory(COL, 1) / "MANIFEST.json").read_text())
    assert manifest["format"] == "pgov-vault/2"
    assert set(vault.tokens(COL, 1)) == set(toks)  # tokens rebuilt from their bodies


def test_two_runs_give_byte_identical_segments(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _file(Vault(tmp_path / name), _ids(700))
    a, b = _segment(Vault(tmp_path / "a")), _segment(Vault(tmp_path / "b"))
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


def _rewrite(seg: Path, rows: pl.DataFrame) -> None:
    rows.write_parquet(seg, compression="lz4", statistics=True)


def test_a_flipped_byte_in_a_block_is_refused(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    toks = _file(vault, _ids(300))
    seg = _segment(vault)
    rows = pl.read_parquet(seg)
    first = rows.filter(pl.col("b") == 2)["c"].drop_nulls()[0]
    bad = first[:40] + bytes([first[40] ^ 1]) + first[41:]
    _rewrite(
        seg,
        rows.with_columns(
            pl.when(pl.col("c") == first).then(pl.lit(bad)).otherwise(pl.col("c")).alias("c")
        ),
    )
    in_block = [t for t, b in zip(toks, _blocks_of(vault, toks), strict=True) if b == 2]
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        _reveal(vault, in_block[:1])
    other = [t for t, b in zip(toks, _blocks_of(vault, toks), strict=True) if b == 3]
    assert len(_reveal(vault, other)) == len(other)  # the other blocks still open


def _blocks_of(vault: Vault, toks: list[str]) -> list[int]:
    rows = pl.read_parquet(_segment(vault))
    body = pl.col("t").str.slice(-32, 32).str.to_integer(base=16, dtype=pl.UInt128)
    keyed = pl.DataFrame({"t": toks}).with_columns(body.alias("x"))
    return keyed.join(rows, on="x", how="left", maintain_order="left")["b"].to_list()


def test_swapped_block_ciphertexts_are_refused(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    toks = _file(vault, _ids(300))
    seg = _segment(vault)
    rows = pl.read_parquet(seg)
    swap = pl.when(pl.col("b") == 0).then(1).when(pl.col("b") == 1).then(0).otherwise("b")
    # Each block's ciphertext now sits with the other block's tokens.
    heads = rows.filter(pl.col("c").is_not_null()).select("b", "c")
    heads = heads.with_columns(swap.cast(pl.UInt32).alias("b"))
    moved = rows.drop("c").join(heads, on="b", how="left")
    first = pl.col("x") == pl.col("x").min().over("b")
    moved = moved.with_columns(pl.when(first).then(pl.col("c")).alias("c")).sort("x")
    _rewrite(seg, moved.select("x", "b", "c"))
    blocks = _blocks_of(vault, toks)
    for b in (0, 1):
        with pytest.raises(KeyMaterialError, match="failed authentication"):
            _reveal(vault, [t for t, k in zip(toks, blocks, strict=True) if k == b][:1])
    assert _reveal(vault, [t for t, k in zip(toks, blocks, strict=True) if k == 2][:1])


def test_a_token_moved_to_another_block_is_refused(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    toks = _file(vault, _ids(300))
    seg = _segment(vault)
    rows = pl.read_parquet(seg)
    # The last row of block 0 now claims to be in block 1: both blocks' token lists change.
    last0 = rows.filter(pl.col("b") == 0)["x"].max()
    _rewrite(
        seg,
        rows.with_columns(
            pl.when(pl.col("x") == last0).then(pl.lit(1, pl.UInt32)).otherwise("b").alias("b")
        ),
    )
    blocks = _blocks_of(vault, toks)
    for b in (0, 1):
        with pytest.raises(KeyMaterialError, match="failed authentication"):
            _reveal(vault, [t for t, k in zip(toks, blocks, strict=True) if k == b][:1])
    # A row dropped from a block (its token deleted by hand) makes the block fail too.
    _rewrite(seg, rows.filter(pl.col("x") != last0))
    blocks = _blocks_of(vault, toks)
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        _reveal(vault, [t for t, k in zip(toks, blocks, strict=True) if k == 0][:1])


def test_a_block_opens_only_for_its_column_version_and_key(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    toks = _file(vault, _ids(100))
    ring = _ring()
    rows = rows_v2(_segment(vault)).filter(pl.col("b") == 0)
    block = Block(rows["x"], bytes(rows["c"].drop_nulls()[0]))
    assert len(Pseudonymiser(ring).vault_cipher(COL, 1).open(block)) == rows.height
    for cipher in (
        Pseudonymiser(ring).vault_cipher("email", 1),
        Pseudonymiser(Keyring({1: KeyVersion(1, "", b"\x07" * 32)})).vault_cipher(COL, 1),
    ):
        with pytest.raises(Exception, match=r"InvalidTag|^$"):
            cipher.open(block)
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        Pseudonymiser(Keyring({1: KeyVersion(1, "", b"\x07" * 32)}), vault=vault).reveal(
            toks[:1], COL
        )


def test_erasure_inside_a_block_reseals_it_without_the_value(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    values = _ids(300)
    toks = _file(vault, values)
    p = Pseudonymiser(_ring(), vault=vault)
    gone = p.forget([values[5], values[200]], COL)
    with pytest.raises(KeyMaterialError, match="needs the vault key"):
        vault.erase(COL, 1, pl.Series(gone))  # a sealed block cannot be edited blind
    w = vault.erase(COL, 1, pl.Series(gone), p.vault_cipher(COL, 1))
    assert w.erased == 2 and vault.read(COL, 1).height == 298
    for i in (5, 200):
        with pytest.raises(KeyMaterialError, match="not in the token vault"):
            p.reveal([toks[i]], COL)
    keep = [i for i in range(300) if i not in (5, 200)]
    assert p.reveal([toks[i] for i in keep], COL) == [values[i] for i in keep]
    # No ciphertext left holds the erased values: every block opened, none has them.
    rows = rows_v2(_segment(vault))
    cipher = p.vault_cipher(COL, 1)
    opened = []
    for (_,), part in rows.group_by("b"):
        part = part.sort("x")
        opened += cipher.open(Block(part["x"], bytes(part["c"].drop_nulls()[0])))
    assert len(opened) == 298 and values[5].encode() not in opened
    assert values[200].encode() not in opened
    assert vault.erase(COL, 1, pl.Series(gone), cipher).erased == 0  # idempotent


def test_a_v1_store_stays_readable_erasable_and_takes_v2_appends(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    ring = _ring()
    old = write_v1_store(tmp_path, ring, [_ids(20), _ids(20, 20)])
    p = Pseudonymiser(ring, vault=vault)
    assert p.reveal(old, COL) == _ids(40)
    before = vault.digest(COL, 1)
    assert vault.read(COL, 1).height == 40 and set(vault.tokens(COL, 1)) == set(old)
    # Erasure of v1 entries needs no key (each entry is its own ciphertext).
    gone = p.forget([_ids(40)[3]], COL)
    assert vault.erase(COL, 1, pl.Series(gone)).erased == 1
    with pytest.raises(KeyMaterialError, match="not in the token vault"):
        p.reveal([old[3]], COL)
    # A refresh appends v2 blocks beside the v1 segments: a mixed store, manifest v2.
    new = _file(vault, _ids(100, 30))  # 10 values held already, 90 new
    manifest = json.loads((vault.directory(COL, 1) / "MANIFEST.json").read_text())
    assert manifest["format"] == "pgov-vault/2" and len(manifest["segments"]) == 3
    assert vault.read(COL, 1).height == 39 + 90
    both = [t for i, t in enumerate(old) if i != 3] + new
    assert p.reveal(both, COL) == [v for i, v in enumerate(_ids(40)) if i != 3] + _ids(100, 30)
    assert before != vault.digest(COL, 1)


def test_v1_per_entry_ciphertexts_swapped_are_refused(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    toks = write_v1_store(tmp_path, _ring(), [["C1", "C2"]])
    [seg] = vault.directory(COL, 1).glob("seg-*.parquet")
    df = pl.read_parquet(seg)
    df.with_columns(pl.col("c").reverse()).write_parquet(seg)
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        _reveal(vault, toks[:1])


def test_merging_v1_and_v2_segments_keeps_every_entry_revealing(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    ring = _ring()
    old = write_v1_store(tmp_path, ring, [_ids(30, 1000 * k) for k in range(3)])
    new: list[str] = []
    for k in range(3, MAX_SEGMENTS + 1):
        new += _file(vault, _ids(100, 1000 * k))
    d = vault.directory(COL, 1)
    segs = json.loads((d / "MANIFEST.json").read_text())["segments"]
    assert len(segs) == 2  # merged: the largest kept, the rest in one file
    values = [v for k in range(3) for v in _ids(30, 1000 * k)]
    values += [v for k in range(3, MAX_SEGMENTS + 1) for v in _ids(100, 1000 * k)]
    p = Pseudonymiser(ring, vault=vault)
    assert p.reveal(old + new, COL) == values
    merged = [rows_v2(d / s) for s in segs]
    assert sum(r["b"].null_count() for r in merged) == 90  # v1 entries carried as they were
    # Erasure reaches both kinds inside the merged file.
    gone = p.forget([values[0], values[-1]], COL)
    assert vault.erase(COL, 1, pl.Series(gone), p.vault_cipher(COL, 1)).erased == 2
    assert p.reveal((old + new)[1:-1], COL) == values[1:-1]


_MERGE_SCRIPT = """
import numpy as np, polars as pl, sys
from pathlib import Path
from engine.pseudonym.blocks import SEALED
from engine.pseudonym.segments import rows_v2
from engine.pseudonym.vault_files import write_segment
d = Path(sys.argv[1]); rng = np.random.default_rng(1); size = 16384; parts = []; base = 0
for _ in range(8):
    n = 250_000
    x = pl.Series("x", np.sort(rng.integers(0, 2**63, n, dtype=np.uint64))).cast(pl.UInt128)
    b = pl.Series("b", (np.arange(n) // size).astype(np.uint32))
    c = [bytes(rng.integers(0, 255, size * 25, dtype=np.uint8)) if i % size == 0 else None
         for i in range(n)]
    name, _ = write_segment(d, pl.DataFrame({"x": x, "b": b, "c": pl.Series(c, dtype=pl.Binary)}))
    rows = rows_v2(d / name)
    parts.append(rows.with_columns(pl.col("b") + base)); base += int(rows["b"].max()) + 1
write_segment(d, pl.concat(parts).cast(SEALED).sort("x"))
print("merged")
"""


@pytest.mark.slow
def test_segments_read_back_and_merged_write_in_proportion_to_their_data(tmp_path: Path) -> None:
    # The vault's merge (and an erasure) writes rows read back from segments. As read, a
    # column of block ciphertexts made Polars' writer allocate far beyond the data (a 10M
    # kyc merge was killed at 22.8 GiB); 2M rows in eight segments (about 80 MB of
    # ciphertext) needed more than 8 GB. Under a 3 GiB address-space limit it must pass.
    import subprocess
    import sys

    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
    out = subprocess.run(
        [sys.executable, "-c", limit + _MERGE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "merged" in out.stdout, out.stderr[-2000:]
