"""Reading a source file: the raw lazy scan with a row number, the jurisdiction-scoped scan,
the file's digest for lineage (reused across processes through engine/digest_cache.py), and
the check that its columns are exactly the declared ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import polars as pl
import structlog

from engine import digest_cache
from engine.config import SourceSpec
from engine.digest_cache import DigestCache, StatKey
from engine.errors import BadInputError, ConfigError
from engine.integrity import check_parquet
from engine.workspace import Workspace

log = structlog.get_logger("pgov.sources")

ROW = "_row"


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    key: StatKey  # the file's state the digest describes (see `check_unchanged`)
    outcome: str  # "hashed", "cached" (the sealed cross-process cache) or "memo"


# Digests this process took, by file state; racy states are never kept (digest_cache.py).
_memo: dict[StatKey, str] = {}
_MEMO_MAX = 256


def clear_digest_memo() -> None:
    """Forget this process's digests (a benchmark modelling a fresh process calls it)."""
    _memo.clear()


def _remember(key: StatKey, sha: str) -> None:
    if len(_memo) >= _MEMO_MAX:  # a long-lived worker sees many file states
        _memo.clear()
    _memo[key] = sha


def _changed(path: Path) -> BadInputError:
    return BadInputError(
        f"{path}: the source file changed while it was being read (its size, mtime or ctime "
        "moved), so its rows and its digest may not describe the same bytes; refusing it: "
        "run again once the file is complete"
    )


def digest_file(path: Path, cache: DigestCache | None = None) -> FileDigest:
    """sha256 of the file's bytes: from this process's memo, from the sealed cache when its
    entry matches the file's exact state, or read in full. The state must be the same after
    the read as before it (else the file was being written: refused, see `_changed`)."""
    with open(path, "rb") as fh:
        before = StatKey.of(os.fstat(fh.fileno()))
        outcome = "memo"
        sha = _memo.get(before)
        if sha is None and cache is not None:
            outcome, sha = "cached", cache.lookup(before)
            if sha is not None:  # sealed and not racy (lookup): as good as hashed here
                _remember(before, sha)
        if sha is None:
            outcome, started = "hashed", digest_cache.now_ns()
            h = hashlib.sha256()
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                h.update(view[:n])  # hashlib releases the GIL: Polars reads meanwhile
            sha = h.hexdigest()
            if StatKey.of(os.fstat(fh.fileno())) != before:
                raise _changed(path)
            if cache is not None:
                cache.store(before, started, sha)
            if not before.racy(started):
                _remember(before, sha)
    # The path must still name the file read (a rename over it moves no fstat field).
    check_unchanged(path, before)
    log.debug("source.digest", outcome=outcome, size=before.size)
    return FileDigest(sha, before, outcome)


def known_digest(path: Path, cache: DigestCache | None) -> FileDigest | None:
    """The digest already taken of the file's current state (this process's memo, or the
    sealed cache's entry for exactly that state), without reading the file; None when none
    is known. Neither is ever racy, so the digest stands for the bytes of that state (the
    pre-pass cache keys on it before the file is read: engine/source_prepass.py)."""
    try:
        state = StatKey.of(path.stat())
    except OSError:
        return None
    outcome, sha = "memo", _memo.get(state)
    if sha is None and cache is not None:
        outcome, sha = "cached", cache.lookup(state)
    return None if sha is None else FileDigest(sha, state, outcome)


def check_unchanged(path: Path, key: StatKey) -> None:
    """Refuse a file whose state moved since `key` was taken (it was written meanwhile)."""
    try:
        now = StatKey.of(path.stat())
    except OSError:
        raise _changed(path) from None
    if now != key:
        raise _changed(path)


def read_state(path: Path) -> StatKey:
    """The file's state before its rows are read (see `FileDigests.bound`)."""
    try:
        return StatKey.of(path.stat())
    except OSError:
        raise _changed(path) from None


def _digest_at(where: Callable[[], Path], cache: DigestCache | None) -> FileDigest:
    return digest_file(where(), cache)


class FileDigests:
    """Every source file's digest, taken on one background thread in the order the files
    are read, all queued at once.

    A refresh's first run hashes every input file (4.3 GB at 10M). Queued file by file
    and awaited before the next file's read, the hashing held each read back until its own
    file was hashed; queued at once it runs beside the whole stage's reads (hashlib
    releases the GIL) and the stage waits for it once, at its end. `bound` then binds each
    digest to the state its rows were read from: the file must be in one state from the
    start of its hashing and of its read until now, else it is refused (`_changed`).
    Leaving the block cancels what has not started (a failed read ends the stage).
    """

    def __init__(
        self, files: Sequence[tuple[str, Callable[[], Path]]], cache: DigestCache | None
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgov-digest")
        self._taken: dict[str, Future[FileDigest]] = {
            name: self._pool.submit(_digest_at, where, cache) for name, where in files
        }

    def __enter__(self) -> FileDigests:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def bound(self, name: str, path: Path, read_from: StatKey) -> FileDigest:
        """The digest of `name`'s file, which must describe the state read at `read_from`."""
        taken = self._taken[name].result()
        if taken.key != read_from:
            raise _changed(path)
        check_unchanged(path, read_from)
        return taken


def file_digest(path: Path, cache: DigestCache | None = None) -> str:
    """sha256 of the file's bytes (see `digest_file`)."""
    return digest_file(path, cache).sha256


def scan(path: Path, fmt: str, *, check: bool = True) -> pl.LazyFrame:
    """The raw lazy scan with `_row`; CSV is read as text so the contract does the typing.

    `check=False` only for a caller that runs `check_parquet` itself before using the rows
    (engine/sources.py runs it beside the read)."""
    if fmt == "parquet":
        if check:  # a corrupted page is bad input, not a silent read (integrity.py)
            check_parquet(path)
        return pl.scan_parquet(path, row_index_name=ROW, row_index_offset=1)
    if fmt == "csv":
        return pl.scan_csv(
            path, infer_schema=False, row_index_name=ROW, row_index_offset=1, encoding="utf8"
        )
    if fmt == "ndjson":
        return pl.scan_ndjson(
            path, row_index_name=ROW, row_index_offset=1, infer_schema_length=None
        )
    raise ConfigError(f"{path}: unknown source format '{fmt}'")  # pragma: no cover


def source_file(ws: Workspace, name: str) -> Path:
    """A source's file; a relative declaration must stay inside the workspace once links are
    followed (a symlink out of it would read data nobody declared)."""
    spec = ws.source(name)
    path = ws.path(spec.path)
    if not Path(spec.path).is_absolute() and path.exists():
        real = path.resolve()
        if not real.is_relative_to(ws.root.resolve()):
            raise BadInputError(
                f"{spec.path}: source '{name}' is a link that leaves the workspace (to "
                f"{real}); refusing to read it: declare an absolute path if that is intended"
            )
    return path


def scoped_scan(ws: Workspace, name: str, jurisdiction: str) -> pl.LazyFrame:
    """Lazy scan of one source with the jurisdiction predicate inside the scan."""
    spec = ws.source(name)
    lf = scan(source_file(ws, name), spec.format)
    return lf.filter(pl.col(spec.jurisdiction_column) == jurisdiction)


def read_schema(lf: pl.LazyFrame, rel: str, name: str, fmt: str) -> pl.Schema:
    try:
        return lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadInputError(
            f"{rel}: source '{name}' is not readable as {fmt} ({type(exc).__name__})"
        ) from None


def check_columns(schema: pl.Schema, spec: SourceSpec, rel: str, name: str) -> None:
    present = [c for c in schema.names() if c != ROW]
    missing = [c for c in spec.columns if c not in present]
    extra = [c for c in present if c not in spec.columns]
    if missing:
        hint = ""
        if any(ch in c for c in present for ch in ";\t|"):
            hint = " (the header looks split on another delimiter: CSV sources must use ',')"
        raise BadInputError(
            f"{rel}: source '{name}' lacks declared column(s): {', '.join(missing)}{hint}"
        )
    if extra:
        raise BadInputError(
            f"{rel}: source '{name}' has undeclared column(s): {', '.join(extra)}; declare "
            "them with a classification in pgov.toml or remove them (undeclared data must "
            "not flow)"
        )
