"""A pgov-vault/1 store exactly as main wrote it before sealed blocks (2026-11-30 to
2026-12-01): one AES-SIV ciphertext per entry, associated data
`kyc_vault|<column>|<version>|<token>`; segments with columns t, c, x sorted by x, lz4,
named by their sha256; a manifest of format pgov-vault/1. Tests of v1 stores build them
here, so the reader of old vaults is tested against the old bytes, not the new writer
(checked once against main 81c84a2's writer: the same segment files, byte for byte)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from engine.pseudonym import Keyring, Pseudonymiser
from engine.pseudonym.tokens import KYC_VAULT, vault_aad


def write_v1_store(
    root: Path, ring: Keyring, batches: list[list[str]], column: str = "customer_id"
) -> list[str]:
    """One v1 segment per batch of values (version 1); returns the tokens of all values."""
    d = root / "kyc" / column / "v1"
    d.mkdir(parents=True, exist_ok=True)
    siv = AESSIV(ring.derive(KYC_VAULT, column, 1, length=64))
    names, tokens = [], []
    for values in batches:
        toks = [str(t) for t in Pseudonymiser(ring).tokenise(list(values), column, "kyc")]
        tokens += toks
        sealed = [
            siv.encrypt(v.encode(), [vault_aad(column, 1, t)])
            for v, t in zip(values, toks, strict=True)
        ]
        df = pl.DataFrame({"t": toks, "c": sealed}, schema={"t": pl.String, "c": pl.Binary})
        body = pl.col("t").str.slice(-32, 32).str.to_integer(base=16, dtype=pl.UInt128)
        df = df.with_columns(body.alias("x")).select("t", "c", "x").unique(subset="x").sort("x")
        tmp = d / "seg.tmp"
        df.write_parquet(tmp, compression="lz4", statistics=True)
        name = f"seg-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:24]}.parquet"
        tmp.rename(d / name)
        names.append(name)
    body = json.dumps({"format": "pgov-vault/1", "segments": sorted(names)}, indent=1) + "\n"
    (d / "MANIFEST.json").write_text(body)
    return tokens
