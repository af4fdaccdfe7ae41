"""Reading a source file: the raw lazy scan with a row number, the jurisdiction-scoped scan,
the file's digest for lineage, and the check that its columns are exactly the declared ones.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import polars as pl

from engine.config import SourceSpec
from engine.errors import BadInputError, ConfigError
from engine.integrity import check_parquet
from engine.workspace import Workspace

ROW = "_row"


@lru_cache(maxsize=64)
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes (cached per size and mtime: refreshes re-read files)."""
    st = path.stat()
    return _digest_cached(str(path), st.st_size, st.st_mtime_ns)


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
