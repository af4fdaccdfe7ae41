"""The token vault: kyc-domain token -> authenticated encryption of the value, at rest.

A `kv<version>.` kyc token is a keyed HMAC of the normalised value (vectorised, see
tokens.py): it cannot be reversed. What makes it re-identifiable is this vault, one store
per (key context, key version):

    <workspace>/vault/kyc/<context>/v<version>/
        MANIFEST.json             {"format": "pgov-vault/2", "segments": [names]}
        seg-<sha256[:24]>.parquet the entries, sorted by token, named by the file's digest:
                                  v2, blocks of entries sealed by one AES-SIV call each
                                  (segments.py, blocks.py; a filing's order and sealing:
                                  sealing.py); v1 (written before 2026-12-01),
                                  one ciphertext per entry, still read, merged and erased
        .lock                     flock: one writer at a time (the kernel drops it on kill -9)

Segments are immutable; only the manifest says which are live. A write (append of new
entries, erasure, merge) happens under the lock: new segment -> temp file, fsync, rename;
then the manifest -> temp file, fsync, rename; only then are replaced segments unlinked.
A kill -9 anywhere leaves the previous manifest and its segments intact (readable); files
the manifest does not list are garbage the next writer removes. A full disk leaves the
vault as it was (the temp file is removed) and surfaces as a StorageError (exit 9).

Entries are personal data at rest (ciphertexts of identifiers): the vault holds only what
re-identification needs, `erase` removes a subject's entries, and nothing here ever logs a
value or a token (counts and digests only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import structlog
from filelock import FileLock

from engine.errors import VerificationFailed, storage_error
from engine.pseudonym.blocks import SEALED, BlockCipher
from engine.pseudonym.sealing import seal_new
from engine.pseudonym.segments import Sealed, erase_rows, find, read_rows, rows_v2
from engine.pseudonym.vault_files import (
    MANIFEST,
    crash_point,
    fsync_dir,
    write_manifest,
    write_segment,
)
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

FORMAT = "pgov-vault/2"  # what every write leaves; a v1 store is read as is
FORMATS = ("pgov-vault/1", FORMAT)
_SEG_RE = re.compile(r"^seg-[0-9a-f]{24}\.parquet$")
_KV_RE = re.compile(r"^kv[1-9][0-9]{0,8}\.[0-9a-f]{32}$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
# A vault with more segments than this merges its small ones at the next append: every
# anti-join reads every segment, and many small files cost more than one larger one.
MAX_SEGMENTS = 8
_RETRIES = 5
SCHEMA = {"t": pl.String, "c": pl.Binary, "x": pl.UInt128, "b": pl.UInt32}


def token_key(col: str = "t") -> pl.Expr:
    """The 128-bit body of a kv token as one integer, `x`.

    Finding which tokens a store already holds is the cost of a steady refresh: joining
    128-bit integers is several times cheaper than hashing millions of strings, and exact
    (the body is the whole token within one store: same prefix, fixed-width lower-case hex,
    so integer order is token order too)."""
    body = pl.col(col).str.slice(-32, 32)
    return body.str.to_integer(base=16, dtype=pl.UInt128).alias("x")


def not_held(candidates: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The rows of `candidates` (with x) whose token is not in `held` (with x), in their
    order.

    A steady refresh asks this of every kyc context's minted tokens, each held already: 10M
    against 10M. A hash lookup of each (is_in, anti-join) is a cache miss per token, 1.4-2 s
    here; instead both sides' bodies are sorted (a store's segment is sorted already) and
    Polars joins sorted keys by merging them, 0.1 s; the candidates are then filtered by
    the few bodies found missing, a hash table that stays in cache."""
    if held.height == 0 or candidates.height == 0:
        return candidates
    mine, theirs = candidates.get_column("x"), held.get_column("x")
    mine = mine.sort() if not mine.flags["SORTED_ASC"] else mine
    theirs = theirs.sort() if not theirs.flags["SORTED_ASC"] else theirs
    found = pl.DataFrame({"x": theirs, "held": pl.repeat(True, theirs.len(), eager=True)})
    missing = (
        mine.drop_nulls()
        .to_frame("x")
        .join(found, on="x", how="left")
        .filter(pl.col("held").is_null())
        .get_column("x")
    )
    if missing.len() == 0 and mine.null_count() == 0:
        return candidates.clear()
    wanted = pl.col("x").is_in(missing.implode()).fill_null(True)  # no body: not held
    return candidates.filter(wanted)


@dataclass(frozen=True)
class VaultWrite:
    """What one write did, for lineage: counts and file digests, never tokens or values."""

    context: str
    version: int
    added: int = 0
    erased: int = 0
    segment: str | None = None  # the new segment's name (its digest prefix), if any
    segment_sha256: str | None = None
    segments: int = 0  # live segments after the write


def _context_dir_name(context: str) -> str:
    # A column name becomes a directory name: anything that is not plainly safe is hex-coded,
    # so no declared name can walk the tree.
    return (
        context
        if _SAFE.fullmatch(context) and ".." not in context
        else "x-" + context.encode("utf-8").hex()
    )


def _prefix(version: int) -> str:
    return f"kv{int(version)}."


class Vault:
    """All token vaults of one workspace (a directory); see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_workspace(cls, ws: Workspace) -> Vault:
        return cls(ws.root / "vault")

    def __repr__(self) -> str:
        return f"Vault(root={str(self.root)!r})"

    # ------------------------------------------------------------ layout

    def directory(self, context: str, version: int) -> Path:
        return self.root / "kyc" / _context_dir_name(context) / f"v{int(version)}"

    def stores(self) -> list[tuple[str, int]]:
        """(directory name of the context, version) of every store that has a manifest."""
        out = []
        for m in sorted(self.root.glob(f"kyc/*/v*/{MANIFEST}")):
            with contextlib.suppress(ValueError):
                out.append((m.parent.parent.name, int(m.parent.name[1:])))
        return out

    def _manifest(self, d: Path) -> list[str]:
        try:
            doc = json.loads((d / MANIFEST).read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise VerificationFailed(f"{d / MANIFEST}: unreadable vault manifest ({exc})") from None
        segs = doc.get("segments") if isinstance(doc, dict) else None
        if doc.get("format") not in FORMATS or not isinstance(segs, list):
            raise VerificationFailed(f"{d / MANIFEST}: not a pgov-vault/1 or /2 manifest")
        if not all(isinstance(s, str) and _SEG_RE.fullmatch(s) for s in segs):
            raise VerificationFailed(f"{d / MANIFEST}: a segment name is malformed")
        return list(segs)

    # ------------------------------------------------------------ reading

    def read(
        self,
        context: str,
        version: int,
        columns: tuple[str, ...] = ("t", "c"),
        *,
        dedupe: bool = True,
    ) -> pl.DataFrame:
        """Every live entry of one store (duplicates across segments removed), unsorted.
        Columns: t, c, x, b (segments.py: c is per entry where b is null, else the block's
        ciphertext on its first row)."""
        d = self.directory(context, version)
        for _ in range(_RETRIES):
            segs = self._manifest(d)
            if not segs:
                return pl.DataFrame(schema={c: SCHEMA[c] for c in columns})
            try:
                df = pl.concat([read_rows(d / s, columns, _prefix(version)) for s in segs])
            except FileNotFoundError:
                continue  # a writer replaced a segment between our manifest read and now
            return df.unique(subset="t") if dedupe and len(segs) > 1 and "t" in columns else df
        raise VerificationFailed(f"{d}: the vault kept changing while it was read")

    def tokens(self, context: str, version: int) -> pl.Series:
        return self.read(context, version, ("t",))["t"]

    def keys(self, context: str, version: int) -> pl.DataFrame:
        """`x` of every held token: what a refresh compares its tokens against."""
        return self.read(context, version, ("x",), dedupe=False)

    def lookup(self, context: str, version: int, tokens: list[str]) -> dict[str, Sealed]:
        """token -> its sealed entry (a per-entry ciphertext, or the Block holding it) for
        the tokens held; absent tokens are simply not in the result."""
        d = self.directory(context, version)
        mine = sorted({t for t in tokens if _KV_RE.fullmatch(t) and t.startswith(_prefix(version))})
        wanted = pl.DataFrame({"t": pl.Series(mine, dtype=pl.String)}).with_columns(token_key())
        for _ in range(_RETRIES):
            segs = self._manifest(d)
            try:
                found = [find(d / s, wanted) for s in segs] if mine else []
            except FileNotFoundError:
                continue
            return {t: sealed for part in found for t, sealed in part.items()}
        raise VerificationFailed(f"{d}: the vault kept changing while it was read")

    def digest(self, context: str, version: int) -> str:
        """sha256 over the store's entries in token order, a line each: `t:<hex of c>` for
        an entry with its own ciphertext (v1), `t` for an entry in a sealed block (whose
        ciphertext depends on which entries were filed together, not on the content; the
        token determines the value under the key, and the block authenticates when it is
        opened). Equal for equal content however the entries are split into segments."""
        df = self.read(context, version, ("t", "c", "b")).sort("t")
        line = (
            pl.when(pl.col("b").is_null())
            .then(pl.concat_str(pl.col("t"), pl.col("c").bin.encode("hex"), separator=":"))
            .otherwise(pl.col("t"))
        )
        h = hashlib.sha256()
        step = 1_000_000
        for start in range(0, df.height, step):
            part = df.slice(start, step).select(line)
            h.update(part.to_series().str.join("\n").item().encode("ascii"))
            h.update(b"\n")
        return h.hexdigest()

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _locked(self, context: str, version: int) -> Iterator[Path]:
        d = self.directory(context, version)
        try:
            d.mkdir(parents=True, exist_ok=True)
            lock = FileLock(d / ".lock", preserve_lock_file=True, poll_interval=0.02)
            lock.acquire(timeout=600)
        except OSError as exc:
            raise storage_error(exc) from None
        try:
            self._sweep(d)
            yield d
        finally:
            lock.release()

    def _sweep(self, d: Path) -> None:
        """Under the lock: remove what a killed writer left (temp files, unlisted segments)."""
        live = set(self._manifest(d))
        for p in d.iterdir():
            stray = p.name.endswith(".tmp") or (_SEG_RE.fullmatch(p.name) and p.name not in live)
            if stray:
                with contextlib.suppress(OSError):
                    p.unlink()

    def append(
        self, context: str, version: int, entries: pl.DataFrame, cipher: BlockCipher
    ) -> VaultWrite:
        """File entries (v: value, x: token body) whose tokens the store does not hold yet,
        sealed in blocks by `cipher`; idempotent.

        The caller filtered against a snapshot of the store; another writer (a refresh of
        another jurisdiction) may have added some of the same tokens since, so the filter is
        repeated under the lock against the live store, and only then are blocks sealed
        (their boundaries depend on exactly which entries are filed).

        Nothing to file (a steady refresh: every token it minted was held already) takes no
        lock: there is nothing to check again, and the lock would make refreshes of other
        jurisdictions that file nothing wait on each other. The manifest is read as any
        reader reads it (it is replaced by rename, never rewritten in place).
        """
        if entries.height == 0:
            segs = self._manifest(self.directory(context, version))
            return VaultWrite(context, version, segments=len(segs))
        entries = entries.select(pl.col("v").cast(pl.String), pl.col("x"))
        with self._locked(context, version) as d:
            segs = self._manifest(d)
            if segs and entries.height:
                entries = not_held(entries, self.keys(context, version))
            rows = seal_new(entries, cipher)
            if rows.height == 0:
                return VaultWrite(context, version, segments=len(segs))
            name, digest = write_segment(d, rows)
            crash_point("vault_before_manifest")
            live = [*segs, name]
            write_manifest(d, FORMAT, live)
            live = self._merge_small(d, live)
        log.info("vault.appended", version=version, added=rows.height, segments=len(live))
        return VaultWrite(
            context,
            version,
            added=rows.height,
            segment=name,
            segment_sha256=digest,
            segments=len(live),
        )

    def _merge_small(self, d: Path, live: list[str]) -> list[str]:
        """Merge all but the largest segment into one, blocks kept sealed as they are (no key
        needed): block numbers are renumbered so each stays distinct in the merged file."""
        if len(live) <= MAX_SEGMENTS:
            return live
        sizes = sorted(live, key=lambda s: ((d / s).stat().st_size, s))
        small, keep = sizes[:-1], sizes[-1:]
        parts, base = [], 0
        for s in small:
            rows = rows_v2(d / s)
            parts.append(rows.with_columns(pl.col("b") + base))
            top = rows["b"].max()
            base += 0 if top is None else int(top) + 1  # type: ignore[arg-type]
        # Tokens are unique across segments (append filters under the lock), so no row of a
        # block is ever dropped here: a block with a row missing would not open.
        merged = pl.concat(parts).cast(SEALED).sort("x")  # type: ignore[arg-type]
        name, _ = write_segment(d, merged)
        out = [*keep, name]
        write_manifest(d, FORMAT, out)
        for s in small:
            with contextlib.suppress(OSError):
                (d / s).unlink()
        return out

    def erase(
        self,
        context: str,
        version: int,
        tokens: pl.Series,
        cipher: BlockCipher | None = None,
    ) -> VaultWrite:
        """Remove the entries of these tokens (a subject's erasure): every segment holding
        one is rewritten without it (a sealed block holding one is opened and sealed again
        by `cipher` without it), the manifest swapped, then the old segment unlinked.
        Returns how many entries were removed."""
        toks = tokens.cast(pl.String).drop_nulls().unique()
        # Only this store's tokens: a body is unique within one key version, not across.
        toks = toks.filter(
            toks.str.contains(_KV_RE.pattern) & toks.str.starts_with(_prefix(version))
        )
        if toks.len() == 0 or not self.directory(context, version).is_dir():
            return VaultWrite(context, version)
        wanted = toks.to_frame("t").select(token_key()).to_series()
        removed = 0
        with self._locked(context, version) as d:
            live = self._manifest(d)
            replaced: list[str] = []
            out: list[str] = []
            for s in live:
                rest, gone = erase_rows(rows_v2(d / s), wanted, cipher)
                if not gone:
                    out.append(s)
                    continue
                removed += gone
                replaced.append(s)
                if rest.height:
                    out.append(write_segment(d, rest)[0])
            if replaced:
                write_manifest(d, FORMAT, out)
                crash_point("vault_erase_before_unlink")
                for s in replaced:
                    with contextlib.suppress(OSError):
                        (d / s).unlink()
                fsync_dir(d)
        log.info("vault.erased", version=version, erased=removed)
        return VaultWrite(context, version, erased=removed, segments=len(out))
