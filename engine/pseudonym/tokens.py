"""Pseudonymiser: identifiers -> tokens, per pseudonymisation domain (EDPB 01/2025).

    marketing   HMAC-SHA256 (the native HMAC, else polars-hash: the same bytes) of the
                normalised value, truncated to 128 bits: "m<version>.<32 hex>". Irreversible.
    kyc         reversible only with the key, through engine.pseudonym.reidentify; two kinds:
      vault     (new tokens, the default) HMAC-SHA256 of the normalised value under a
                kyc-token key, truncated to 128 bits: "kv<version>.<32 hex>", vectorised like
                marketing; the value itself is kept AES-SIV-encrypted once per distinct
                token in the workspace's token vault (vault.py), written by `flush()`.
      siv       AES-SIV ciphertext as the token, associated data "kyc|<column>|<version>":
                "k<version>.<base64url>". Tokens already published keep re-identifying; a
                workspace may keep minting them (`[keys].kyc_tokens = "siv"`).

Keys are derived per (domain, column, version), so the same value gives the same token in
every source (joins work) while different domains or columns give unrelated tokens.

WARNING: the expressions returned by `token_expr` embed key material (polars-hash takes the
key as a literal; the AES-SIV closure holds the key). A serialised LazyFrame plan shows it
in clear text. Never serialise, pickle, log or print a plan or expression built from them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from engine.errors import KeyMaterialError, PolicyError
from engine.pseudonym import native_hmac
from engine.pseudonym.blocks import Block, BlockCipher
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.memo import TokenMemo, mint, siv_tokens, vault_tokens
from engine.pseudonym.normalise import normalise_expr
from engine.pseudonym.vault import Vault, VaultWrite, not_held, token_key

MARKETING = "marketing"
KYC = "kyc"
DOMAINS = (MARKETING, KYC)
SIV = "siv"
VAULT = "vault"
KYC_SCHEMES = (VAULT, SIV)
# Key-derivation domains of the vault scheme: distinct from "kyc" (whose HKDF output is the
# AES-SIV token key: HKDF outputs of one info string are prefixes of each other, so the
# token key and the vault key must not share an info string with it or with each other).
KYC_TOKEN = "kyc_token"
KYC_VAULT = "kyc_vault"
_PREFIX = {MARKETING: "m", KYC: "k"}
HMAC_HEX_CHARS = 32  # 128 bits kept: collisions stay negligible (birthday bound 2^64)
_TOKEN_RE = re.compile(r"^(?P<p>m|kv|k)(?P<v>[1-9][0-9]{0,8})\.(?P<body>[A-Za-z0-9_\-]+)")
_HEX_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ParsedToken:
    domain: str
    version: int
    body: str
    scheme: str = ""  # "hmac" (marketing), "siv" or "vault" (kyc)


def parse_token(token: str) -> ParsedToken:
    """Split a token into domain, key version and body; refuse anything else."""
    m = _TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
    if m is None or (m["p"] == "kv" and not _HEX_RE.fullmatch(m["body"])):
        raise KeyMaterialError(
            "not a pseudonym token (expected m<version>.…, k<version>.… or kv<version>.…)"
        )
    if m["p"] == "m":
        return ParsedToken(MARKETING, int(m["v"]), m["body"], "hmac")
    return ParsedToken(KYC, int(m["v"]), m["body"], VAULT if m["p"] == "kv" else SIV)


def _aad(column: str, version: int) -> bytes:
    return f"{KYC}|{column}|{version}".encode()


def vault_aad(column: str, version: int, token: str) -> bytes:
    """Associated data of a vault entry: the entry only opens for the token it was filed under
    (a ciphertext moved to another token, column or version fails authentication)."""
    return f"{KYC_VAULT}|{column}|{version}|{token}".encode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pseudonymiser:
    """Builds token expressions under one keyring (current version for new tokens).

    `scheme` chooses how new kyc tokens are made ("vault" or "siv"); `vault` is where the
    vault scheme files its encrypted values (`flush()` writes them) and where `reveal` looks
    `kv` tokens up. Without a vault, kv tokens are still minted (joins work) but cannot be
    revealed.
    """

    def __init__(
        self,
        keyring: Keyring,
        version: int | None = None,
        *,
        scheme: str = VAULT,
        vault: Vault | None = None,
    ) -> None:
        self._keyring = keyring
        # Fail now, not mid-plan, on an unknown version.
        keyring.derive("probe", "probe", version)
        if scheme not in KYC_SCHEMES:
            raise KeyMaterialError(f"unknown kyc token scheme '{scheme}' (vault or siv)")
        self.version = keyring.current_version if version is None else version
        self.scheme = scheme
        self.vault = vault
        self._memo = TokenMemo()

    @classmethod
    def for_workspace(cls, ws: Any, keyring: Keyring | None = None) -> Pseudonymiser:
        """The workspace's scheme (`[keys].kyc_tokens`) and token vault."""
        ring = keyring if keyring is not None else Keyring.load(ws)
        return cls(ring, scheme=ws.config.keys.kyc_tokens, vault=Vault.for_workspace(ws))

    def __repr__(self) -> str:
        return f"Pseudonymiser(version={self.version}, kyc={self.scheme})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("Pseudonymiser holds key material and cannot be serialised")

    @staticmethod
    def method(domain: str, scheme: str = VAULT) -> str:
        """The lineage name of a domain's tokenisation method."""
        if _check_domain(domain) == MARKETING:
            return "hmac_sha256_128"
        return "hmac_sha256_128+vault_aes_siv" if scheme == VAULT else "aes_siv"

    def _token_key_hex(self, domain: str, ctx: str) -> str:
        # polars-hash uses the UTF-8 bytes of this string as the HMAC key.
        return self._keyring.derive(domain, ctx, self.version).hex()

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
        if domain == MARKETING:
            prefix, key_hex = f"m{self.version}.", self._token_key_hex(MARKETING, ctx)
            if native_hmac.available():
                key = key_hex.encode()

                def marketing(s: pl.Series) -> pl.Series:
                    return native_hmac.hmac_tokens(s, key, prefix, keyed=False)[0]

                return value.map_batches(marketing, return_dtype=pl.String).alias(column)
            hashed: pl.Expr = value.chash.hmac_sha256(key=key_hex)  # type: ignore[attr-defined]
            return (pl.lit(prefix) + hashed.str.slice(0, HMAC_HEX_CHARS)).alias(column)
        memo = self._memo
        if self.scheme == VAULT:
            key_hex, prefix = self._token_key_hex(KYC_TOKEN, ctx), f"kv{self.version}."
            vault, version = self.vault, self.version

            def unheld(pairs: pl.DataFrame) -> pl.DataFrame:
                # What the vault holds needs no filing (flush checks again under its lock).
                # The pairs keep their bodies `x`: the filing sorts and seals by them.
                if vault is None or pairs.height == 0:
                    return pairs
                return not_held(pairs, vault.keys(ctx, version))

            # Without a vault nothing is filed: no bodies, no anti-join.
            check = unheld if vault is not None else None

            def tokens(s: pl.Series) -> pl.Series:
                return mint(memo, ctx, lambda m: vault_tokens(s, key_hex, prefix, m, ctx, check))

            return value.map_batches(tokens, return_dtype=pl.String).alias(column)
        siv = AESSIV(self._keyring.derive(KYC, ctx, self.version, length=64))
        aad = [_aad(ctx, self.version)]
        siv_prefix = f"k{self.version}."

        def encrypt(s: pl.Series) -> pl.Series:
            return mint(memo, ctx, lambda m: siv_tokens(s, siv, aad, siv_prefix, m, ctx))

        return value.map_batches(encrypt, return_dtype=pl.String).alias(column)

    def tokenise(
        self, values: list[str | None], column: str, domain: str, normaliser: str | None = None
    ) -> list[str | None]:
        """Convenience for small lists (tests, single lookups)."""
        df = pl.DataFrame({column: values}, schema={column: pl.String})
        return df.select(self.token_expr(column, domain, normaliser))[column].to_list()

    def flush(self, used: Mapping[str, pl.Series] | None = None) -> list[VaultWrite]:
        """File every kv token minted since the last flush in the vault: values the vault
        has never seen are encrypted (AES-SIV, once per block of entries, blocks.py) and
        appended as one new segment per key context; tokens it holds already cost an
        anti-join, nothing else. Call it before publishing anything that carries the
        tokens (a published token must re-identify).

        `used` (key context -> the tokens the output carries) files only those: enforcement
        mints a token for every subject, and a subject the version excluded (erasure, consent)
        must not have its identifier stored in the vault because of this refresh."""
        pending = self._memo.pending() if self.scheme == VAULT else []
        if not pending:
            return []
        if self.vault is None:
            raise KeyMaterialError("kyc vault tokens were minted but no token vault is configured")
        prefix = f"kv{self.version}."
        jobs = []
        for ctx, minted in pending:
            if used is not None and ctx not in used:
                self._memo.filed(ctx)  # nothing published carries this context's tokens
                continue
            jobs.append((ctx, minted, None if used is None else used[ctx]))
        # Two contexts at a time (a kyc_aml refresh files six): one's Polars work (order,
        # gathering, the segment write) runs while the other seals blocks, which holds the
        # GIL. The writes come back in context order; a context whose write failed stays
        # pending (the others are filed: each store is written on its own).
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vault-file") as pool:
            done = [pool.submit(self._file, ctx, minted, pub, prefix) for ctx, minted, pub in jobs]
            wait(done)
        return [f.result() for f in done]

    def _file(
        self, ctx: str, minted: pl.DataFrame, published: pl.Series | None, prefix: str
    ) -> VaultWrite:
        """File one key context's pending pairs (see flush)."""
        assert self.vault is not None
        table = minted if "x" in minted.columns else minted.with_columns(token_key())
        # A column tokenised once, on the rows it publishes (an identifier of the subjects
        # source), publishes exactly the pairs minted, in order: nothing to filter.
        # Otherwise tokens are compared as their 128-bit bodies (`x`): every minted token
        # has this version's prefix, a published one without it equals none of them, so
        # equal bodies are equal tokens (an is_in over millions of 36-character strings
        # cost about four times the integers').
        if published is not None and table.height and not published.equals(minted["t"]):
            published = published.filter(published.str.starts_with(prefix))
            wanted = published.to_frame("t").select(token_key()).to_series()
            table = table.filter(pl.col("x").is_in(wanted.implode()))
        if table.height:  # pairs the vault held when minted were not kept (`unheld`)
            table = not_held(table, self.vault.keys(ctx, self.version))
        cipher = self.vault_cipher(ctx, self.version)
        write = self.vault.append(ctx, self.version, table.select("v", "x"), cipher)
        self._memo.filed(ctx)
        return write

    def vault_cipher(self, column: str, version: int) -> BlockCipher:
        """Seals and opens the vault blocks of (column, version): AES-SIV under the vault
        key, the key per-entry (v1) ciphertexts use. Holds key material."""
        siv = AESSIV(self._keyring.derive(KYC_VAULT, column, version, length=64))
        return BlockCipher(siv, column, version)

    def forget(self, values: list[str], column: str, normaliser: str | None = None) -> list[str]:
        """The kv tokens of these values under every key version of the keyring (what
        erasure removes from the vault). Values are never logged."""
        out = []
        for v in self._keyring.versions:
            p = Pseudonymiser(self._keyring, v, scheme=VAULT)
            out += [t for t in p.tokenise(list(values), column, KYC, normaliser) if t]
        return out

    def reveal(self, tokens: list[str], column: str) -> list[str]:
        """KYC tokens -> normalised cleartext. Marketing tokens are refused (irreversible);
        a wrong key, wrong column or altered token fails authentication, never garbage.

        Not an access-controlled entry point: callers go through reidentify(), which
        authorises and audits.
        """
        parsed = []
        for i, tok in enumerate(tokens):
            p = parse_token(tok)
            if p.domain != KYC:
                raise KeyMaterialError(
                    f"token #{i + 1} is a marketing-domain token: those are irreversible "
                    "HMAC pseudonyms and cannot be re-identified"
                )
            parsed.append(p)
        held = self._vault_entries(
            [(t, p.version) for t, p in zip(tokens, parsed, strict=True) if p.scheme == VAULT],
            column,
        )
        out: list[str] = []
        ciphers: dict[tuple[str, int], AESSIV] = {}
        opened: dict[int, dict[int, bytes]] = {}  # id(Block) -> body -> value
        for i, (tok, p) in enumerate(zip(tokens, parsed, strict=True)):
            domain = KYC_VAULT if p.scheme == VAULT else KYC
            siv = ciphers.get((domain, p.version))
            if siv is None:
                siv = AESSIV(self._keyring.derive(domain, column, p.version, length=64))
                ciphers[(domain, p.version)] = siv
            try:
                if p.scheme == VAULT:
                    sealed = held.get(tok)
                    if sealed is None:
                        raise KeyMaterialError(
                            f"token #{i + 1} is not in the token vault for column '{column}' "
                            "(erased, minted for another column, or never filed)"
                        )
                    if isinstance(sealed, Block):
                        value = self._open_block(sealed, siv, column, p.version, opened)[
                            int(p.body, 16)
                        ]
                    else:
                        value = siv.decrypt(sealed, [vault_aad(column, p.version, tok)])
                    self._check_binding(tok, value, column, p.version, i)
                else:
                    value = siv.decrypt(_unb64(p.body), [_aad(column, p.version)])
                out.append(value.decode("utf-8"))
            except (InvalidTag, ValueError, KeyError):
                raise KeyMaterialError(
                    f"token #{i + 1} failed authentication for column '{column}' "
                    "(wrong key, wrong column or altered token)"
                ) from None
        return out

    @staticmethod
    def _open_block(
        block: Block, siv: AESSIV, column: str, version: int, opened: dict[int, dict[int, bytes]]
    ) -> dict[int, bytes]:
        # One decryption per block, however many of its tokens the call asks for.
        values = opened.get(id(block))
        if values is None:
            plain = BlockCipher(siv, column, version).open(block)
            values = dict(zip(block.x.to_list(), plain, strict=True))
            opened[id(block)] = values
        return values

    def _vault_entries(
        self, wanted: list[tuple[str, int]], column: str
    ) -> dict[str, bytes | Block]:
        if not wanted:
            return {}
        if self.vault is None:
            raise KeyMaterialError("kv tokens re-identify through the token vault: none is set")
        held: dict[str, bytes | Block] = {}
        for v in sorted({v for _, v in wanted}):
            self._keyring.derive(KYC_VAULT, column, v)  # an unknown version refuses here
            held.update(self.vault.lookup(column, v, [t for t, tv in wanted if tv == v]))
        return held

    def _check_binding(self, token: str, value: bytes, column: str, version: int, i: int) -> None:
        # Defence in depth: the decrypted value must hash to the token it was filed under.
        key = self._keyring.derive(KYC_TOKEN, column, version).hex().encode()
        body = hmac.new(key, value, hashlib.sha256).hexdigest()[:HMAC_HEX_CHARS]
        if not hmac.compare_digest(body, parse_token(token).body):
            raise KeyMaterialError(
                f"token #{i + 1}: the vault entry does not belong to this token (altered vault)"
            )


def _check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise PolicyError(
            f"unknown pseudonymisation domain '{domain}' (known: {', '.join(DOMAINS)})"
        )
    return domain
