"""The token vault: kyc-domain token -> authenticated encryption of the value, at rest.

A `kv<version>.` kyc token is a keyed HMAC of the normalised value (vectorised, see
tokens.py): it cannot be reversed. What makes it re-identifiable is this vault, one store
per (key context, key version):

    <workspace>/vault/kyc/<context>/v<version>/
        MANIFEST.json             {"format": "pgov-vault/1", "segments": [names]}
        seg-<sha256[:24]>.parquet columns t (token, String) and c (AES-SIV ciphertext,
                                  Binary), sorted by t; named by its own digest
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
import os
import re
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import structlog
from filelock import FileLock

from engine.errors import StorageError, VerificationFailed, storage_error
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

FORMAT = "pgov-vault/1"
MANIFEST = "MANIFEST.json"
_SEG_RE = re.compile(r"^seg-[0-9a-f]{24}\.parquet$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
# A vault with more segments than this merges its small ones at the next append: every
# anti-join reads every segment, and many small files cost more than one larger one.
MAX_SEGMENTS = 8
_RETRIES = 5
SCHEMA = {"t": pl.String, "c": pl.Binary, "x": pl.UInt128}


def token_key(col: str = "t") -> pl.Expr:
    """The 128-bit body of a kv token as one integer, `x`.

    Finding which tokens a store already holds is the cost of a steady refresh: joining
    128-bit integers is several times cheaper than hashing millions of strings, and exact
    (the body is the whole token within one store: same prefix, fixed-width lower-case hex,
    so integer order is token order too)."""
    body = pl.col(col).str.slice(-32, 32)
    return body.str.to_integer(base=16, dtype=pl.UInt128).alias("x")


def not_held(candidates: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The rows of `candidates` (with x) whose token is not in `held` (with x)."""
    if held.height == 0:
        return candidates
    return candidates.join(held.select("x"), on="x", how="anti")


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


def _crash_point(stage: str) -> None:
    """Test hook: PGOV_CRASH_AT=<stage> kills this process here with SIGKILL (kill -9)."""
    if os.environ.get("PGOV_CRASH_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sorted_unique(entries: pl.DataFrame) -> pl.DataFrame:
    """One row per token, in token order, so equal content gives byte-identical segments."""
    keyed = entries if "x" in entries.columns else entries.with_columns(token_key())
    return keyed.select("t", "c", "x").unique(subset="x").sort("x")


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
        if doc.get("format") != FORMAT or not isinstance(segs, list):
            raise VerificationFailed(f"{d / MANIFEST}: not a {FORMAT} manifest")
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
        """Every live entry of one store (duplicates across segments removed), unsorted."""
        d = self.directory(context, version)
        for _ in range(_RETRIES):
            segs = self._manifest(d)
            if not segs:
                return pl.DataFrame(schema={c: SCHEMA[c] for c in columns})
            try:
                df = pl.concat([pl.read_parquet(d / s, columns=list(columns)) for s in segs])
            except FileNotFoundError:
                continue  # a writer replaced a segment between our manifest read and now
            return df.unique(subset="t") if dedupe and len(segs) > 1 and "t" in columns else df
        raise VerificationFailed(f"{d}: the vault kept changing while it was read")

    def tokens(self, context: str, version: int) -> pl.Series:
        return self.read(context, version, ("t",))["t"]

    def keys(self, context: str, version: int) -> pl.DataFrame:
        """`x` of every held token: what a refresh compares its tokens against."""
        return self.read(context, version, ("x",), dedupe=False)

    def lookup(self, context: str, version: int, tokens: list[str]) -> dict[str, bytes]:
        """token -> ciphertext for the tokens held; absent tokens are simply not in the result."""
        d = self.directory(context, version)
        wanted = pl.Series("t", sorted(set(tokens)), dtype=pl.String)
        for _ in range(_RETRIES):
            segs = self._manifest(d)
            try:
                parts = [
                    pl.scan_parquet(d / s).filter(pl.col("t").is_in(wanted.implode())).collect()
                    for s in segs
                ]
            except FileNotFoundError:
                continue
            return {
                str(t): bytes(c)
                for df in parts
                for t, c in zip(df["t"].to_list(), df["c"].to_list(), strict=True)
            }
        raise VerificationFailed(f"{d}: the vault kept changing while it was read")

    def digest(self, context: str, version: int) -> str:
        """sha256 over the store's entries in token order: equal for equal content however
        the entries are split into segments (so two runs compare whatever their timing)."""
        df = self.read(context, version).sort("t")
        h = hashlib.sha256()
        step = 1_000_000
        for start in range(0, df.height, step):
            part = df.slice(start, step).select(
                pl.concat_str(pl.col("t"), pl.col("c").bin.encode("hex"), separator=":")
            )
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

    def _write_segment(self, d: Path, df: pl.DataFrame) -> tuple[str, str]:
        tmp = d / f".seg-{secrets.token_hex(6)}.tmp"
        try:
            with tmp.open("wb") as fh:
                # lz4: ciphertexts do not compress, and zstd costs twice the time for the
                # tokens' hex.
                df.write_parquet(fh, compression="lz4", statistics=True)
                fh.flush()
                os.fsync(fh.fileno())
            digest = _sha256(tmp)
            name = f"seg-{digest[:24]}.parquet"
            _crash_point("vault_segment_temp")
            os.replace(tmp, d / name)
            _fsync_dir(d)
        except BaseException as exc:
            _discard(tmp, exc)
            raise
        return name, digest

    def _write_manifest(self, d: Path, segments: list[str]) -> None:
        tmp = d / f".{MANIFEST}.{secrets.token_hex(6)}.tmp"
        body = json.dumps({"format": FORMAT, "segments": sorted(segments)}, indent=1) + "\n"
        try:
            with tmp.open("wb") as fh:
                fh.write(body.encode("ascii"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, d / MANIFEST)
            _fsync_dir(d)
        except BaseException as exc:
            _discard(tmp, exc)
            raise

    def append(self, context: str, version: int, entries: pl.DataFrame) -> VaultWrite:
        """Add entries (t, c) whose tokens the store does not hold yet; idempotent.

        The caller filtered against a snapshot of the store; another writer (a refresh of
        another jurisdiction) may have added some of the same tokens since, so the filter is
        repeated under the lock against the live store before anything is written.
        """
        entries = entries.select(pl.col("t").cast(pl.String), pl.col("c").cast(pl.Binary))
        entries = entries.with_columns(token_key())
        with self._locked(context, version) as d:
            segs = self._manifest(d)
            if segs and entries.height:
                entries = not_held(entries, self.keys(context, version))
            entries = _sorted_unique(entries)
            if entries.height == 0:
                return VaultWrite(context, version, segments=len(segs))
            name, digest = self._write_segment(d, entries)
            _crash_point("vault_before_manifest")
            live = [*segs, name]
            self._write_manifest(d, live)
            live = self._merge_small(d, live)
        log.info("vault.appended", version=version, added=entries.height, segments=len(live))
        return VaultWrite(
            context,
            version,
            added=entries.height,
            segment=name,
            segment_sha256=digest,
            segments=len(live),
        )

    def _merge_small(self, d: Path, live: list[str]) -> list[str]:
        if len(live) <= MAX_SEGMENTS:
            return live
        sizes = sorted(live, key=lambda s: ((d / s).stat().st_size, s))
        small, keep = sizes[:-1], sizes[-1:]
        merged = _sorted_unique(pl.concat([pl.read_parquet(d / s) for s in small]))
        name, _ = self._write_segment(d, merged)
        out = [*keep, name]
        self._write_manifest(d, out)
        for s in small:
            with contextlib.suppress(OSError):
                (d / s).unlink()
        return out

    def erase(self, context: str, version: int, tokens: pl.Series) -> VaultWrite:
        """Remove the entries of these tokens (a subject's erasure): every segment holding
        one is rewritten without it, the manifest swapped, then the old segment unlinked.
        Returns how many entries were removed."""
        wanted = pl.DataFrame({"t": tokens.cast(pl.String).drop_nulls().unique()})
        if wanted.height == 0 or not self.directory(context, version).is_dir():
            return VaultWrite(context, version)
        removed = 0
        with self._locked(context, version) as d:
            live = self._manifest(d)
            replaced: list[str] = []
            out: list[str] = []
            for s in live:
                seg = pl.read_parquet(d / s)
                rest = seg.join(wanted, on="t", how="anti")
                if rest.height == seg.height:
                    out.append(s)
                    continue
                removed += seg.height - rest.height
                replaced.append(s)
                if rest.height:
                    out.append(self._write_segment(d, rest)[0])
            if replaced:
                self._write_manifest(d, out)
                _crash_point("vault_erase_before_unlink")
                for s in replaced:
                    with contextlib.suppress(OSError):
                        (d / s).unlink()
                _fsync_dir(d)
        log.info("vault.erased", version=version, erased=removed)
        return VaultWrite(context, version, erased=removed, segments=len(out))


def _discard(tmp: Path, exc: BaseException) -> None:
    """A write failed: its temp file goes, and a full disk or I/O error becomes exit 9."""
    with contextlib.suppress(OSError):
        tmp.unlink()
    err = storage_error(exc)
    if isinstance(err, StorageError):
        raise err from None
