"""Pseudonymiser: identifiers -> tokens, per pseudonymisation domain (EDPB 01/2025).

    marketing   HMAC-SHA256 (polars-hash, vectorised) of the normalised value, truncated to
                128 bits: "m<version>.<32 hex>". Irreversible.
    kyc         deterministic AES-SIV (cryptography) with associated data
                "kyc|<column>|<version>": "k<version>.<base64url>". Reversible only with the
                key, through engine.pseudonym.reidentify.

Keys are derived per (domain, column, version), so the same value gives the same token in
every source (joins work) while different domains or columns give unrelated tokens.

WARNING: the expressions returned by `token_expr` embed key material (polars-hash takes the
key as a literal; the AES-SIV closure holds the key). A serialised LazyFrame plan shows it
in clear text. Never serialise, pickle, log or print a plan or expression built from them.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from engine.errors import KeyMaterialError, PolicyError
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.normalise import normalise_expr

MARKETING = "marketing"
KYC = "kyc"
DOMAINS = (MARKETING, KYC)
_PREFIX = {MARKETING: "m", KYC: "k"}
HMAC_HEX_CHARS = 32  # 128 bits kept: collisions stay negligible (birthday bound 2^64)
_TOKEN_RE = re.compile(r"^(?P<p>[mk])(?P<v>[1-9][0-9]{0,8})\.(?P<body>[A-Za-z0-9_\-]+)")


@dataclass(frozen=True)
class ParsedToken:
    domain: str
    version: int
    body: str


def parse_token(token: str) -> ParsedToken:
    """Split a token into domain, key version and body; refuse anything else."""
    m = _TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
    if m is None:
        raise KeyMaterialError("not a pseudonym token (expected m<version>.… or k<version>.…)")
    domain = MARKETING if m["p"] == "m" else KYC
    return ParsedToken(domain, int(m["v"]), m["body"])


def _aad(column: str, version: int) -> bytes:
    return f"{KYC}|{column}|{version}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pseudonymiser:
    """Builds token expressions under one keyring (current version for new tokens)."""

    def __init__(self, keyring: Keyring, version: int | None = None) -> None:
        self._keyring = keyring
        # Fail now, not mid-plan, on an unknown version.
        keyring.derive("probe", "probe", version)
        self.version = keyring.current_version if version is None else version
        self._memo = _SivMemo()

    def __repr__(self) -> str:
        return f"Pseudonymiser(version={self.version})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("Pseudonymiser holds key material and cannot be serialised")

    @staticmethod
    def method(domain: str) -> str:
        """The lineage name of a domain's tokenisation method."""
        return {MARKETING: "hmac_sha256_128", KYC: "aes_siv"}[_check_domain(domain)]

    def token_expr(
        self,
        column: str,
        domain: str,
        normaliser: str | None = None,
        *,
        key_column: str | None = None,
    ) -> pl.Expr:
        """Tokens for pl.col(column) (nulls stay null), named `column`.

        `key_column` names the key-derivation context when it differs from the source
        column (e.g. a source calls its subject column "cust_ref" but it must join with
        "customer_id" tokens elsewhere); re-identification then uses that name too.
        The result embeds key material: never serialise or log it (see module docstring).
        """
        _check_domain(domain)
        ctx = key_column or column
        value = normalise_expr(column, normaliser)
        prefix = f"{_PREFIX[domain]}{self.version}."
        if domain == MARKETING:
            # polars-hash uses the UTF-8 bytes of this string as the HMAC key.
            key_hex = self._keyring.derive(MARKETING, ctx, self.version).hex()
            hashed: pl.Expr = value.chash.hmac_sha256(key=key_hex)  # type: ignore[attr-defined]
            digest = hashed.str.slice(0, HMAC_HEX_CHARS)
            return (pl.lit(prefix) + digest).alias(column)
        siv = AESSIV(self._keyring.derive(KYC, ctx, self.version, length=64))
        aad = [_aad(ctx, self.version)]

        def encrypt(s: pl.Series) -> pl.Series:
            return _siv_tokens(s, siv, aad, prefix, self._memo, ctx)

        return value.map_batches(encrypt, return_dtype=pl.String).alias(column)

    def tokenise(
        self, values: list[str | None], column: str, domain: str, normaliser: str | None = None
    ) -> list[str | None]:
        """Convenience for small lists (tests, single lookups)."""
        df = pl.DataFrame({column: values}, schema={column: pl.String})
        return df.select(self.token_expr(column, domain, normaliser))[column].to_list()

    def reveal(self, tokens: list[str], column: str) -> list[str]:
        """KYC tokens -> normalised cleartext. Marketing tokens are refused (irreversible);
        a wrong key, wrong column or altered token fails authentication, never garbage.

        Not an access-controlled entry point: callers go through reidentify(), which
        authorises and audits.
        """
        out: list[str] = []
        ciphers: dict[int, AESSIV] = {}
        for i, tok in enumerate(tokens):
            parsed = parse_token(tok)
            if parsed.domain != KYC:
                raise KeyMaterialError(
                    f"token #{i + 1} is a marketing-domain token: those are irreversible "
                    "HMAC pseudonyms and cannot be re-identified"
                )
            siv = ciphers.get(parsed.version)
            if siv is None:
                siv = AESSIV(self._keyring.derive(KYC, column, parsed.version, length=64))
                ciphers[parsed.version] = siv
            try:
                blob = _unb64(parsed.body)
                out.append(siv.decrypt(blob, [_aad(column, parsed.version)]).decode("utf-8"))
            except (InvalidTag, ValueError):
                raise KeyMaterialError(
                    f"token #{i + 1} failed authentication for column '{column}' "
                    "(wrong key, wrong column or altered token)"
                ) from None
        return out


class _SivMemo:
    """Tokens already computed in this refresh, per key context, for identifiers that repeat
    across sources (the customer id is in every source: without this each source pays the
    same AES-SIV calls again). Only contexts that repeat are kept: a column whose values are
    all distinct and seen in one source (an e-mail) is never stored."""

    def __init__(self) -> None:
        self._tables: dict[str, pl.DataFrame] = {}
        self._lock = threading.Lock()

    def get(self, ctx: str) -> pl.DataFrame | None:
        with self._lock:
            return self._tables.get(ctx)

    def add(self, ctx: str, table: pl.DataFrame) -> None:
        with self._lock:
            known = self._tables.get(ctx)
            self._tables[ctx] = table if known is None else pl.concat([known, table])


def _siv_tokens(
    s: pl.Series,
    siv: AESSIV,
    aad: list[bytes],
    prefix: str,
    memo: _SivMemo | None = None,
    ctx: str = "",
) -> pl.Series:
    """AES-SIV over a whole Series: one Python call per distinct value not already known,
    with base64url and the prefix applied as vectorised string operations."""
    s = s.cast(pl.String)
    uniq = s.drop_nulls().unique()
    known = memo.get(ctx) if memo is not None else None
    # Repeated ids (transactions, events) cost one encryption per distinct value. Mostly
    # distinct columns (the subjects source) with nothing known skip the remap, which would
    # cost more than it saves; the unique() spent deciding is small next to one AES-SIV call
    # per row.
    dedup = uniq.len() < 0.5 * s.len()
    if known is None and not dedup:
        return _encrypt(s, siv, aad, prefix).rename(s.name)
    todo = uniq if known is None else uniq.filter(~uniq.is_in(known["v"].implode()))
    fresh = pl.DataFrame({"v": todo, "t": _encrypt(todo, siv, aad, prefix)})
    if memo is not None and fresh.height:
        memo.add(ctx, fresh)
    table = fresh if known is None else pl.concat([known, fresh])
    return s.replace_strict(table["v"], table["t"], return_dtype=pl.String)


def _encrypt(values: pl.Series, siv: AESSIV, aad: list[bytes], prefix: str) -> pl.Series:
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


_SIV_SLICE = 262_144


def _check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise PolicyError(
            f"unknown pseudonymisation domain '{domain}' (known: {', '.join(DOMAINS)})"
        )
    return domain
